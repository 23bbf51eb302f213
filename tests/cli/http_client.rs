//! `ota_sign::http` against the scripted fake server (support/fake_http.rs).

use crate::support::fake_http::{FakeServer, Reply, Request};
use base64::Engine;
use ota_sign::credentials::OAuth2Config;
use ota_sign::http::{ClientAuth, ClientOptions, ReposerverClient, UploadOutcome};
use ota_sign::metadata::SignedPayload;
use ota_sign::Error;
use serde_json::json;
use std::time::Duration;
use zeroize::Zeroizing;

const CHECKSUM: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const KEYID: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

fn opts() -> ClientOptions {
    ClientOptions {
        retries: 3,
        retry_base_delay: Duration::from_millis(1),
        retry_max_delay: Duration::from_millis(4),
        ..ClientOptions::default()
    }
}

fn client(server: &FakeServer) -> ReposerverClient {
    ReposerverClient::new(&server.url(), ClientAuth::None, &opts()).unwrap()
}

/// A client of `server` authenticating with OAuth2 at `<server>/<token_path>`.
fn oauth_client(server: &FakeServer, token_path: &str) -> ReposerverClient {
    let token_url = format!("{}{token_path}", server.url());
    ReposerverClient::new(&server.url(), oauth(&token_url), &opts()).unwrap()
}

fn doc(type_: &str, version: u64) -> serde_json::Value {
    json!({"signatures": [{"keyid": KEYID, "method": "ed25519", "sig": "c2ln"}], "signed": {"_type": type_, "version": version}})
}

fn payload(type_: &str, version: u64) -> SignedPayload {
    serde_json::from_value(doc(type_, version)).unwrap()
}

fn oauth(server: &str) -> ClientAuth {
    ClientAuth::OAuth2(OAuth2Config {
        server: server.into(),
        client_id: "client-id".into(),
        client_secret: "s3cret-value".into(),
        scope: "ota-treehub/namespace.default x".into(),
    })
}

/// Token endpoint at any path ending in /token, root.json elsewhere.
fn auth_handler(req: &Request, _: &str) -> Reply {
    if req.method == "POST" && req.path().ends_with("/token") {
        Reply::json(
            200,
            &json!({"access_token": "tok-123", "token_type": "Bearer", "expires_in": 3600}),
        )
    } else {
        Reply::json(200, &doc("Root", 1))
    }
}

fn basic(id: &str, secret: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"))
    )
}

#[test]
fn oauth2_cognito_style_posts_to_the_token_url_with_scope() {
    let server = FakeServer::start(auth_handler);
    let c = oauth_client(&server, "/oauth2/token");
    c.get_root().unwrap();
    c.get_root().unwrap();
    let reqs = server.requests();
    assert_eq!(reqs.len(), 3, "one token request, two GETs: {reqs:?}");
    let t = &reqs[0];
    assert_eq!((t.method.as_str(), t.path()), ("POST", "/oauth2/token"));
    assert_eq!(
        t.header("authorization"),
        Some(basic("client-id", "s3cret-value").as_str())
    );
    assert_eq!(
        t.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(
        String::from_utf8_lossy(&t.body),
        "grant_type=client_credentials&scope=ota-treehub%2Fnamespace.default+x"
    );
    for r in &reqs[1..] {
        assert_eq!(r.path(), "/api/v1/user_repo/root.json");
        assert_eq!(r.header("authorization"), Some("Bearer tok-123"));
        assert!(r.header("user-agent").unwrap().starts_with("ota-sign/"));
    }
}

#[test]
fn oauth2_legacy_auth_plus_appends_token_without_scope() {
    let server = FakeServer::start(auth_handler);
    let c = oauth_client(&server, "/auth");
    c.get_root().unwrap();
    let reqs = server.requests();
    assert_eq!(
        (reqs[0].method.as_str(), reqs[0].path()),
        ("POST", "/auth/token")
    );
    assert_eq!(
        String::from_utf8_lossy(&reqs[0].body),
        "grant_type=client_credentials"
    );
    assert_eq!(
        reqs[0].header("authorization"),
        Some(basic("client-id", "s3cret-value").as_str())
    );
    assert_eq!(reqs[1].header("authorization"), Some("Bearer tok-123"));
}

#[test]
fn refused_credentials_exit_3_and_do_not_leak_the_secret() {
    let server = FakeServer::start(|req, _| {
        if req.path().ends_with("/token") {
            Reply::json(401, &json!({"error": "invalid_client"}))
        } else {
            Reply::json(200, &doc("Root", 1))
        }
    });
    let c = oauth_client(&server, "/oauth2/token");
    let e = c.get_root().unwrap_err();
    assert_eq!(e.exit_code(), 3);
    let msg = e.to_string();
    assert!(
        msg.contains("refused the client credentials")
            && msg.contains("401")
            && msg.contains("invalid_client"),
        "{msg}"
    );
    assert!(!msg.contains("s3cret"), "{msg}");
    assert_eq!(
        server.requests().len(),
        1,
        "no reposerver request without a token"
    );
}

#[test]
fn no_auth_sends_no_authorization_and_keeps_the_path_prefix() {
    let server = FakeServer::start(auth_handler);
    let c = ReposerverClient::new(
        &format!("{}/gateway/repo/", server.url()),
        ClientAuth::None,
        &opts(),
    )
    .unwrap();
    let f = c.get_root().unwrap();
    assert_eq!(f.payload.version(), Some(1));
    let r = &server.requests()[0];
    assert_eq!(r.path(), "/gateway/repo/api/v1/user_repo/root.json");
    assert_eq!(r.header("authorization"), None);
}

#[test]
fn root_versions_and_404() {
    let server = FakeServer::start(|req, _| match req.path() {
        "/api/v1/user_repo/2.root.json" => Reply::json(200, &doc("Root", 2)),
        _ => Reply::error(
            404,
            "root_role_not_found",
            "root role was not found in upstream key store",
            json!(null),
        ),
    });
    let c = client(&server);
    let f = c.get_root_version(2).unwrap().unwrap();
    assert_eq!(f.payload.version(), Some(2));
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&f.raw).unwrap(),
        doc("Root", 2)
    );
    assert!(c.get_root_version(3).unwrap().is_none());
    let e = c.get_root().unwrap_err().to_string();
    assert!(
        e.contains("GET http://")
            && e.contains("/api/v1/user_repo/root.json: 404 root_role_not_found"),
        "{e}"
    );
}

#[test]
fn targets_pull_returns_the_checksum_and_requires_it() {
    let server = FakeServer::scripted(vec![
        Reply::json(200, &doc("Targets", 3)).header("x-ats-role-checksum", CHECKSUM),
        Reply::json(200, &doc("Targets", 3)),
        Reply::json(200, &doc("Targets", 3)).header("x-ats-role-checksum", "not-a-checksum"),
    ]);
    let c = client(&server);
    let t = c.get_targets().unwrap();
    assert_eq!(t.checksum, CHECKSUM);
    assert_eq!(t.payload.version(), Some(3));
    for _ in 0..2 {
        let e = c.get_targets().unwrap_err();
        assert_eq!(e.exit_code(), 1, "{e}");
        assert!(
            e.to_string().contains("TargetsPullError")
                && e.to_string().contains("x-ats-role-checksum"),
            "{e}"
        );
    }
}

#[test]
fn malformed_answers_name_the_url() {
    let server = FakeServer::scripted(vec![
        Reply::status(200).body("<html>hello</html>"),
        Reply::json(200, &json!({"signed": {}})).header("x-ats-role-checksum", CHECKSUM),
    ]);
    let c = client(&server);
    let e = c.get_root().unwrap_err().to_string();
    assert!(
        e.contains("/api/v1/user_repo/root.json") && e.contains("not a signed TUF document"),
        "{e}"
    );
    let e = c.get_targets().unwrap_err().to_string();
    assert!(
        e.contains("/api/v1/user_repo/targets.json") && e.contains("not a signed TUF document"),
        "{e}"
    );
}

#[test]
fn oversized_answers_are_refused() {
    let server = FakeServer::scripted(vec![Reply::status(200).body(vec![b' '; (1 << 20) + 1])]);
    let e = client(&server)
        .get_private_key(KEYID)
        .unwrap_err()
        .to_string();
    assert!(e.contains("larger than"), "{e}");
}

#[test]
fn push_sends_checksum_and_returns_the_new_one() {
    let server = FakeServer::scripted(vec![Reply::status(204)
        .header("x-ats-role-checksum", &CHECKSUM.replace('0', "f"))
        .header("x-ats-targets-role-size-limit", "2097152")]);
    let out = client(&server)
        .put_targets(&payload("Targets", 4), Some(CHECKSUM))
        .unwrap();
    assert_eq!(
        out.checksum.as_deref(),
        Some(CHECKSUM.replace('0', "f").as_str())
    );
    assert_eq!(out.size_limit, Some(2097152));
    let r = &server.requests()[0];
    assert_eq!(
        (r.method.as_str(), r.path()),
        ("PUT", "/api/v1/user_repo/targets")
    );
    assert_eq!(r.header("x-ats-role-checksum"), Some(CHECKSUM));
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.json(), doc("Targets", 4));
}

#[test]
fn push_checksum_conflicts_exit_2() {
    let server = FakeServer::scripted(vec![
        Reply::error(
            412,
            "role_checksum_mismatch",
            "Provided checksum of previous role does not match current checksum",
            json!(null),
        ),
        Reply::error(
            428,
            "role_checksum_not_provided",
            "A targets role already exists, you need to provide a checksum",
            json!(null),
        ),
    ]);
    let c = client(&server);
    for code in [
        "412 role_checksum_mismatch",
        "428 role_checksum_not_provided",
    ] {
        let e = c.put_targets(&payload("Targets", 4), None).unwrap_err();
        assert!(matches!(e, Error::ChecksumConflict(_)), "{e:?}");
        assert_eq!(e.exit_code(), 2);
        let msg = e.to_string();
        assert!(msg.contains(code) && msg.contains("targets pull"), "{msg}");
    }
    assert_eq!(server.requests().len(), 2);
}

#[test]
fn push_400_lists_the_causes() {
    let server = FakeServer::scripted(vec![Reply::error(
        400,
        "invalid_offline_targets",
        "Invalid offline targets",
        json!([
            "target app-1 has no hardwareIds",
            "signature of key abc is invalid"
        ]),
    )]);
    let e = client(&server)
        .put_targets(&payload("Targets", 4), Some(CHECKSUM))
        .unwrap_err();
    assert_eq!(e.exit_code(), 3);
    let msg = e.to_string();
    assert!(
        msg.contains("400 invalid_offline_targets: Invalid offline targets"),
        "{msg}"
    );
    assert!(
        msg.contains("- target app-1 has no hardwareIds")
            && msg.contains("- signature of key abc is invalid"),
        "{msg}"
    );
}

#[test]
fn push_409_explains_the_version_rule() {
    let server = FakeServer::scripted(vec![Reply::error(
        409,
        "invalid_version_bump",
        "Cannot bump version from 3 to 5",
        json!(null),
    )]);
    let e = client(&server)
        .put_targets(&payload("Targets", 5), Some(CHECKSUM))
        .unwrap_err();
    assert_eq!(e.exit_code(), 3);
    let msg = e.to_string();
    let expected = format!("PUT {}/api/v1/user_repo/targets: 409 invalid_version_bump: Cannot bump version from 3 to 5", server.url());
    assert!(msg.starts_with(&expected), "{msg}");
    assert!(
        msg.contains("server's version + 1") && msg.contains("version 5"),
        "{msg}"
    );
}

/// A push with an unclear outcome is never blindly resent: the server's state is read
/// back first (here it cannot be, so the original error stands).
#[test]
fn push_is_not_resent_blindly_on_503_or_after_a_dropped_connection() {
    for first in [
        Reply::error(503, "unavailable", "try later", json!(null)),
        Reply::Drop,
    ] {
        let server = FakeServer::scripted(vec![first, Reply::status(204)]);
        let e = client(&server)
            .put_targets(&payload("Targets", 4), Some(CHECKSUM))
            .unwrap_err();
        assert_eq!(e.exit_code(), 3);
        let reqs = server.requests();
        let puts = reqs.iter().filter(|r| r.method == "PUT").count();
        assert_eq!(puts, 1, "PUT targets must be sent once: {e}");
        assert_eq!(
            reqs[1].path(),
            "/api/v1/user_repo/targets.json",
            "read back"
        );
    }
    let server = FakeServer::scripted(vec![Reply::status(503), Reply::status(200)]);
    assert!(client(&server).post_root(&payload("Root", 2)).is_err());
    let reqs = server.requests();
    assert_eq!(reqs.iter().filter(|r| r.method == "POST").count(), 1);
    assert_eq!(reqs[1].path(), "/api/v1/user_repo/2.root.json", "read back");
}

#[test]
fn get_survives_transient_503s_and_a_dropped_connection() {
    let server = FakeServer::scripted(vec![
        Reply::status(503),
        Reply::error(502, "bad_gateway", "upstream", json!(null)),
        Reply::Drop,
        Reply::json(200, &doc("Root", 7)),
    ]);
    let f = client(&server).get_root().unwrap();
    assert_eq!(f.payload.version(), Some(7));
    assert_eq!(server.requests().len(), 4);
}

#[test]
fn retries_are_bounded() {
    let server = FakeServer::start(|_, _| Reply::status(503));
    let e = client(&server).get_root().unwrap_err();
    assert!(e.to_string().contains("503"), "{e}");
    assert_eq!(server.requests().len(), 4, "1 attempt + 3 retries");
}

#[test]
fn dead_server_is_a_clear_error() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let c = ReposerverClient::new(
        &format!("http://127.0.0.1:{port}"),
        ClientAuth::None,
        &opts(),
    )
    .unwrap();
    let e = c.get_root().unwrap_err();
    assert_eq!(e.exit_code(), 3);
    let msg = e.to_string();
    assert!(
        msg.starts_with(&format!(
            "GET http://127.0.0.1:{port}/api/v1/user_repo/root.json: cannot connect"
        )),
        "{msg}"
    );
}

#[test]
fn invalid_root_role_is_explained_with_nested_causes() {
    let nested = json!({"code": "invalid_root_role", "description": "Invalid root role", "cause": ["version must be 3", "root threshold not met"]});
    let server = FakeServer::scripted(vec![Reply::error(
        502,
        "invalid_root_role",
        "Invalid root role",
        nested,
    )]);
    let e = client(&server).post_root(&payload("Root", 4)).unwrap_err();
    assert!(matches!(e, Error::Explained(_)), "{e:?}");
    assert_eq!(e.exit_code(), 1);
    let msg = e.to_string();
    assert!(
        msg.contains("- version must be 3") && msg.contains("- root threshold not met"),
        "{msg}"
    );
    let r = &server.requests()[0];
    assert_eq!(
        (r.method.as_str(), r.path()),
        ("POST", "/api/v1/user_repo/root")
    );
    assert_eq!(r.json(), doc("Root", 4));
}

#[test]
fn private_keys_and_delegations() {
    let pair = json!({"keytype": "ED25519", "keyval": {"public": "pub", "private": "priv"}});
    let server = FakeServer::start(move |req, _| match (req.method.as_str(), req.path()) {
        ("GET", p) if p.ends_with(KEYID) => Reply::json(200, &pair),
        ("DELETE", _) => Reply::status(204),
        ("PUT", "/api/v1/user_repo/delegations/team-a.json") => Reply::status(204),
        ("GET", "/api/v1/user_repo/delegations/team-a.json") => {
            Reply::json(200, &doc("Targets", 1))
        }
        _ => Reply::error(404, "delegations_not_found", "not found", json!(null)),
    });
    let c = client(&server);
    let k: Zeroizing<String> = c.get_private_key(KEYID).unwrap();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&k).unwrap()["keyval"]["private"],
        "priv"
    );
    c.delete_private_key(KEYID).unwrap();
    assert!(c.get_private_key("../../etc").is_err());
    c.put_delegation("team-a", &payload("Targets", 1)).unwrap();
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&c.get_delegation("team-a").unwrap()).unwrap(),
        doc("Targets", 1)
    );
    assert!(c
        .get_delegation("team-b")
        .unwrap_err()
        .to_string()
        .contains("404 delegations_not_found"));
    let reqs = server.requests();
    let paths: Vec<_> = reqs
        .iter()
        .map(|r| format!("{} {}", r.method, r.path()))
        .collect();
    assert_eq!(
        paths[1],
        format!("DELETE /api/v1/user_repo/root/private_keys/{KEYID}")
    );
    assert_eq!(reqs[2].json(), doc("Targets", 1));
}

fn md5_b64(data: &[u8]) -> String {
    use md5::Digest;
    base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(data))
}

#[test]
fn multipart_upload_streams_parts_in_order() {
    let data: Vec<u8> = (0..10u8).collect();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("fw.bin");
    std::fs::write(&file, &data).unwrap();
    let mut failed_once = false;
    let server = FakeServer::start(move |req, base| match (req.method.as_str(), req.path()) {
        ("POST", "/api/v1/user_repo/multipart/initiate/fw-1.0") => {
            Reply::json(200, &json!({"uploadId": "up-1", "partSize": 4}))
        }
        ("GET", "/api/v1/user_repo/multipart/url/fw-1.0") => {
            let part = req.query("part").unwrap();
            Reply::json(
                200,
                &json!({"uri": format!("{base}/s3/bucket/fw-1.0?partNumber={part}&X-Amz-Signature=secret")}),
            )
        }
        ("PUT", "/s3/bucket/fw-1.0") => {
            let part = req.query("partNumber").unwrap();
            if part == "2" && !failed_once {
                failed_once = true;
                return Reply::status(503);
            }
            Reply::status(200).header("ETag", &format!("\"etag-{part}\""))
        }
        ("PUT", "/api/v1/user_repo/multipart/complete/fw-1.0") => Reply::status(200),
        _ => Reply::status(404),
    });
    let pb = indicatif::ProgressBar::hidden();
    let out = client(&server).upload_target("fw-1.0", &file, &pb).unwrap();
    assert_eq!(out, UploadOutcome::Multipart { parts: 3 });
    assert_eq!(pb.position(), 10);

    let reqs = server.requests();
    assert_eq!(reqs[0].query("fileSize").as_deref(), Some("10"));
    let urls: Vec<_> = reqs
        .iter()
        .filter(|r| r.path().contains("/multipart/url/"))
        .collect();
    let parts: Vec<_> = reqs
        .iter()
        .filter(|r| r.path().starts_with("/s3/") && r.method == "PUT")
        .collect();
    assert_eq!(urls.len(), 3);
    assert_eq!(parts.len(), 4, "part 2 retried once after a 503");
    let chunks: Vec<&[u8]> = data.chunks(4).collect();
    for (i, u) in urls.iter().enumerate() {
        assert_eq!(u.query("part").unwrap(), (i + 1).to_string());
        assert_eq!(u.query("uploadId").as_deref(), Some("up-1"));
        assert_eq!(u.query("md5").unwrap(), md5_b64(chunks[i]));
        assert_eq!(
            u.query("contentLength").unwrap(),
            chunks[i].len().to_string()
        );
    }
    let mut order = Vec::new();
    for p in &parts {
        let n: usize = p.query("partNumber").unwrap().parse().unwrap();
        assert_eq!(p.body, chunks[n - 1], "part {n} body");
        assert_eq!(p.header("content-md5").unwrap(), md5_b64(chunks[n - 1]));
        assert_eq!(
            p.header("content-length").unwrap(),
            chunks[n - 1].len().to_string()
        );
        order.push(n);
    }
    assert_eq!(order, vec![1, 2, 2, 3]);
    let complete = reqs.last().unwrap();
    assert_eq!(
        complete.path(),
        "/api/v1/user_repo/multipart/complete/fw-1.0"
    );
    assert_eq!(
        complete.json(),
        json!({"uploadId": "up-1", "partETags": [{"part": 1, "eTag": "\"etag-1\""}, {"part": 2, "eTag": "\"etag-2\""}, {"part": 3, "eTag": "\"etag-3\""}]})
    );
}

#[test]
fn upload_falls_back_to_put_uploads_and_follows_the_redirect() {
    let data = b"a small firmware image".to_vec();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("fw.bin");
    std::fs::write(&file, &data).unwrap();
    let server = FakeServer::start(|req, _| match (req.method.as_str(), req.path()) {
        ("POST", p) if p.starts_with("/api/v1/user_repo/multipart/initiate/") => Reply::error(
            501,
            "not_implemented",
            "multipart uploads are not supported",
            json!(null),
        ),
        ("PUT", "/api/v1/user_repo/uploads/dir/fw-2.0") => {
            Reply::status(302).header("Location", "/blob/fw-2.0?sig=abc")
        }
        ("PUT", "/blob/fw-2.0") => Reply::status(201),
        _ => Reply::status(404),
    });
    let pb = indicatif::ProgressBar::hidden();
    let out = client(&server)
        .upload_target("dir/fw-2.0", &file, &pb)
        .unwrap();
    assert_eq!(out, UploadOutcome::Direct { redirected: true });
    assert_eq!(pb.position(), data.len() as u64);
    let reqs = server.requests();
    let puts: Vec<_> = reqs.iter().filter(|r| r.method == "PUT").collect();
    assert_eq!(puts.len(), 2);
    assert_eq!(puts[1].target, "/blob/fw-2.0?sig=abc");
    for p in puts {
        assert_eq!(p.body, data);
        assert_eq!(p.header("content-length").unwrap(), data.len().to_string());
    }
}

#[test]
fn upload_errors_are_explained() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("fw.bin");
    std::fs::write(&file, b"x").unwrap();
    let server = FakeServer::scripted(vec![Reply::error(
        409,
        "conflicting_entity",
        "exists",
        json!(null),
    )]);
    let e = client(&server)
        .upload_target("fw-1", &file, &indicatif::ProgressBar::hidden())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("409 conflicting_entity") && e.contains("already uploaded"),
        "{e}"
    );
    assert!(client(&server)
        .upload_target("../x", &file, &indicatif::ProgressBar::hidden())
        .is_err());
    assert_eq!(server.requests().len(), 1);
}

mod mtls {
    use super::*;
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose,
        IsCa, KeyPair,
    };
    use std::sync::Arc;

    struct Pki {
        ca_pem: String,
        client_p12: Vec<u8>,
        server_p12: Vec<u8>,
        server_config: Arc<rustls::ServerConfig>,
    }

    fn pki() -> Pki {
        ota_sign::crypto::install_tls_provider();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "ota-sign test CA");
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();

        let server_key = KeyPair::generate().unwrap();
        let server_cert = CertificateParams::new(vec!["127.0.0.1".to_string()])
            .unwrap()
            .signed_by(&server_key, &ca)
            .unwrap();

        let client_key = KeyPair::generate().unwrap();
        let mut client_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        client_params
            .distinguished_name
            .push(DnType::CommonName, "device");
        client_params
            .extended_key_usages
            .push(ExtendedKeyUsagePurpose::ClientAuth);
        let client_cert = client_params.signed_by(&client_key, &ca).unwrap();

        let mut ks = p12_keystore::KeyStore::new();
        let chain = p12_keystore::PrivateKeyChain::new(
            client_key.serialize_der(),
            b"client",
            [
                p12_keystore::Certificate::from_der(client_cert.der()).unwrap(),
                p12_keystore::Certificate::from_der(ca.der()).unwrap(),
            ],
        );
        ks.add_entry(
            "client",
            p12_keystore::KeyStoreEntry::PrivateKeyChain(chain),
        );
        let client_p12 = ks.writer("").write().unwrap();
        let mut trust = p12_keystore::KeyStore::new();
        trust.add_entry(
            "ca",
            p12_keystore::KeyStoreEntry::Certificate(
                p12_keystore::Certificate::from_der(ca.der()).unwrap(),
            ),
        );
        let server_p12 = trust.writer("").write().unwrap();

        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca.der().clone()).unwrap();
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            provider.clone(),
        )
        .build()
        .unwrap();
        let server_config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(
                vec![server_cert.der().clone()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(server_key.serialize_der().into()),
            )
            .unwrap();
        Pki {
            ca_pem: ca.pem(),
            client_p12,
            server_p12,
            server_config: Arc::new(server_config),
        }
    }

    #[test]
    fn client_certificate_from_p12_is_required_and_accepted() {
        let pki = pki();
        let server = FakeServer::start_tls(pki.server_config.clone(), |_, _| {
            Reply::json(200, &doc("Root", 1))
        });

        let auth = ClientAuth::mutual_tls(
            Zeroizing::new(pki.client_p12.clone()),
            Some(pki.server_p12.clone()),
        );
        let c = ReposerverClient::new(&server.url(), auth, &opts()).unwrap();
        assert_eq!(c.get_root().unwrap().payload.version(), Some(1));
        assert_eq!(server.requests().len(), 1);
        assert_eq!(server.requests()[0].header("authorization"), None);

        // Same trust (the CA as --cacert), no client certificate: the handshake fails.
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, &pki.ca_pem).unwrap();
        let o = ClientOptions {
            cacert: Some(ca),
            ..opts()
        };
        let e = ReposerverClient::new(&server.url(), ClientAuth::None, &o)
            .unwrap()
            .get_root()
            .unwrap_err();
        assert_eq!(e.exit_code(), 3);
        assert!(e.to_string().contains("CertificateRequired"), "{e}");
        assert_eq!(
            server.requests().len(),
            1,
            "no request got through without a certificate: {e}"
        );
    }

    #[test]
    fn client_store_from_a_repo_directory() {
        let pki = pki();
        let server = FakeServer::start_tls(pki.server_config.clone(), |_, _| {
            Reply::json(200, &doc("Root", 1))
        });
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("client_auth.p12"), &pki.client_p12).unwrap();
        std::fs::write(dir.path().join("server.p12"), &pki.server_p12).unwrap();
        let cfg = ota_sign::credentials::AuthConfig::MutualTls {
            cert_path: "client_auth.p12".into(),
            server_cert_path: Some("server.p12".into()),
        };
        let auth = ClientAuth::from_config(&cfg, dir.path()).unwrap();
        let c = ReposerverClient::new(&server.url(), auth, &opts()).unwrap();
        c.get_root().unwrap();

        // The server's CA is not trusted without server.p12 or --cacert.
        let auth = ClientAuth::mutual_tls(Zeroizing::new(pki.client_p12.clone()), None);
        let e = ReposerverClient::new(&server.url(), auth, &opts())
            .unwrap()
            .get_root()
            .unwrap_err();
        assert_eq!(e.exit_code(), 3, "{e}");
        assert!(e.to_string().contains("UnknownIssuer"), "{e}");

        let e = ClientAuth::from_config(
            &ota_sign::credentials::AuthConfig::MutualTls {
                cert_path: "missing.p12".into(),
                server_cert_path: None,
            },
            dir.path(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("missing.p12"), "{e}");
        let e = ReposerverClient::new(
            &server.url(),
            ClientAuth::mutual_tls(Zeroizing::new(b"junk".to_vec()), None),
            &opts(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("PKCS#12"), "{e}");
    }
}

#[test]
fn get_follows_redirects_but_the_token_stays_home() {
    let elsewhere = FakeServer::start(|_, _| Reply::json(200, &doc("Root", 9)));
    let other = elsewhere.url();
    let server = FakeServer::start(move |req, _| match (req.method.as_str(), req.path()) {
        ("POST", "/oauth2/token") => Reply::json(200, &json!({"access_token": "tok-123"})),
        ("GET", "/api/v1/user_repo/root.json") => {
            Reply::status(302).header("Location", "/moved/root.json")
        }
        ("GET", "/moved/root.json") => {
            Reply::status(307).header("Location", &format!("{other}/cdn/root.json?sig=1"))
        }
        _ => Reply::status(404),
    });
    let c = oauth_client(&server, "/oauth2/token");
    assert_eq!(c.get_root().unwrap().payload.version(), Some(9));
    let home = server.requests();
    assert_eq!(home.len(), 3);
    assert_eq!(home[2].path(), "/moved/root.json");
    assert_eq!(home[2].header("authorization"), Some("Bearer tok-123"));
    let away = elsewhere.requests();
    assert_eq!(away.len(), 1);
    assert_eq!(away[0].target, "/cdn/root.json?sig=1");
    assert_eq!(
        away[0].header("authorization"),
        None,
        "the bearer token must not follow a redirect to another origin"
    );
}

#[test]
fn multipart_part_urls_on_another_origin_get_no_bearer_token() {
    let store = FakeServer::start(|_, _| Reply::status(200).header("ETag", "\"e1\""));
    let store_url = store.url();
    let server = FakeServer::start(move |req, _| match (req.method.as_str(), req.path()) {
        ("POST", "/oauth2/token") => Reply::json(200, &json!({"access_token": "tok-123"})),
        ("POST", "/api/v1/user_repo/multipart/initiate/fw-1.0") => {
            Reply::json(200, &json!({"uploadId": "up-1", "partSize": 1024}))
        }
        // A part URL on a host that is not S3 and not the reposerver.
        ("GET", "/api/v1/user_repo/multipart/url/fw-1.0") => Reply::json(
            200,
            &json!({"uri": format!("{store_url}/bucket/fw-1.0?partNumber=1")}),
        ),
        ("PUT", "/api/v1/user_repo/multipart/complete/fw-1.0") => Reply::status(200),
        _ => Reply::status(404),
    });
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("fw.bin");
    std::fs::write(&file, b"firmware").unwrap();
    let c = oauth_client(&server, "/oauth2/token");
    let pb = indicatif::ProgressBar::hidden();
    c.upload_target("fw-1.0", &file, &pb).unwrap();
    let parts = store.requests();
    assert_eq!(parts.len(), 1);
    assert_eq!(parts[0].body, b"firmware");
    assert_eq!(
        parts[0].header("authorization"),
        None,
        "the bearer token goes to the reposerver's origin only"
    );
    let home = server.requests();
    assert!(home
        .iter()
        .filter(|r| r.path().starts_with("/api/"))
        .all(|r| r.header("authorization") == Some("Bearer tok-123")));
}

/// The PUT was applied but its answer lost: the read-back shows the pushed document,
/// so the push counts as done and is not sent a second time.
#[test]
fn push_applied_but_answer_lost_is_reconciled_without_a_second_put() {
    let pushed = payload("Targets", 4);
    let pushed_json = serde_json::to_value(&pushed).unwrap();
    let new_sum = "f".repeat(64);
    let server = FakeServer::scripted(vec![
        Reply::Drop,
        Reply::json(200, &pushed_json).header("x-ats-role-checksum", &new_sum),
    ]);
    let out = client(&server)
        .put_targets(&pushed, Some(CHECKSUM))
        .unwrap();
    assert_eq!(out.checksum.as_deref(), Some(new_sum.as_str()));
    let reqs = server.requests();
    assert_eq!(reqs.iter().filter(|r| r.method == "PUT").count(), 1);
}

/// 503 with the old state still there: sent again, not sooner than Retry-After says.
#[test]
fn retry_after_is_honoured_and_a_long_one_is_reported_at_once() {
    let server = FakeServer::scripted(vec![
        Reply::status(503).header("Retry-After", "1"),
        Reply::json(200, &doc("Root", 3)),
    ]);
    let t = std::time::Instant::now();
    assert_eq!(
        client(&server).get_root().unwrap().payload.version(),
        Some(3)
    );
    assert!(t.elapsed() >= Duration::from_secs(1), "{:?}", t.elapsed());

    let server = FakeServer::scripted(vec![
        Reply::status(429).header("Retry-After", "3600"),
        Reply::json(200, &doc("Root", 3)),
    ]);
    let t = std::time::Instant::now();
    let e = client(&server).get_root().unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(5));
    assert!(e.to_string().contains("retry after 3600 s"), "{e}");
    assert_eq!(e.exit_code(), 3);
    assert_eq!(server.requests().len(), 1);

    let now = chrono::Utc::now();
    let date = (now + chrono::Duration::seconds(30)).to_rfc2822();
    let d = ota_sign::http::parse_retry_after(&date, now).unwrap();
    assert!(
        d <= Duration::from_secs(30) && d >= Duration::from_secs(29),
        "{d:?}"
    );
    assert_eq!(ota_sign::http::parse_retry_after("soon", now), None);
}
