//! Secrets never leak: the whole OTA Connect procedure (init, key generate,
//! targets pull, move-offline, targets add/sign/push, export-credentials, publish,
//! root pull) over OAuth2 and over mutual TLS, with `OTA_SIGN_LOG=trace --verbose`.
//! Fails if any private key (PEM, its base64 lines or whole DER in base64, hex), the
//! client secret (also as HTTP Basic), a bearer token or PKCS#12 content (whole file
//! or the key inside, base64/hex) appears in stdout, stderr or any file outside
//! `keys/` other than the files whose job is to hold them (credentials zips,
//! config.json, the .p12 copies), which must be 0600. Directories must be 0700 and
//! private keys 0600. Run alone by scripts/secrets-test.sh.

use crate::support::reposerver::{Auth, Options, TestServer};
use crate::support::{mode, publish_args, read_json, zip_entry, Workspace, SHA};
use base64::Engine;
use std::path::Path;

/// Files that hold secrets by design (garage-sign's layout), checked for 0600.
const HOLDERS: &[&str] = &[
    "credentials.zip",
    "config.json",
    "client_auth.p12",
    "server.p12",
    "offline-credentials.zip",
];

fn b64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

/// Every spelling of a private key value (`keyval.private` of a .sec file).
fn key_forms(private: &str, out: &mut Vec<String>) {
    out.push(private.to_string());
    if let Ok(p) = pem::parse(private.as_bytes()) {
        out.push(b64(p.contents()));
        out.push(hex::encode(p.contents()));
        out.extend(
            private
                .lines()
                .filter(|l| l.len() >= 40 && !l.starts_with("-----"))
                .map(str::to_string),
        );
    } else if let Ok(raw) = hex::decode(private) {
        out.push(private[..64].to_string()); // the Ed25519 seed
        out.push(b64(&raw));
        out.push(b64(&raw[..32]));
    }
}

fn sec_forms(sec_file: &[u8], out: &mut Vec<String>) {
    let v: serde_json::Value = serde_json::from_slice(sec_file).unwrap();
    key_forms(v["keyval"]["private"].as_str().unwrap(), out);
}

/// Every secret the procedure handles, in every form looked for.
fn secrets(ws: &Workspace, server_zip: &Path) -> Vec<String> {
    let mut s = Vec::new();
    for dir in walkdir::WalkDir::new(ws.path())
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "sec"))
    {
        sec_forms(&std::fs::read(dir.path()).unwrap(), &mut s);
    }
    if let Some(sec) = zip_entry(server_zip, "targets.sec") {
        sec_forms(&sec, &mut s);
    }
    let treehub = read_json_bytes(&zip_entry(server_zip, "treehub.json").unwrap());
    if let Some(secret) = treehub["oauth2"]["client_secret"].as_str() {
        let id = treehub["oauth2"]["client_id"].as_str().unwrap();
        s.push(secret.to_string());
        s.push(b64(format!("{id}:{secret}").as_bytes()));
    }
    if let Some(p12) = zip_entry(server_zip, "client_auth.p12") {
        s.push(b64(&p12));
        s.push(hex::encode(&p12[..64.min(p12.len())]));
        let ks = p12_keystore::KeyStore::from_pkcs12(&p12, "").unwrap();
        let (_, chain) = ks.private_key_chain().unwrap();
        let der = chain.key();
        s.push(b64(der));
        s.push(hex::encode(der));
        let pem = pem::encode(&pem::Pem::new("PRIVATE KEY", der.to_vec()));
        key_forms(&pem, &mut s);
    }
    s.retain(|x| x.len() >= 24);
    s.sort();
    s.dedup();
    s
}

fn read_json_bytes(b: &[u8]) -> serde_json::Value {
    serde_json::from_slice(b).unwrap()
}

/// Where a secret (or a bearer token) shows up in `text`, if anywhere.
fn leak(text: &str, secrets: &[String]) -> Option<String> {
    if let Some(s) = secrets.iter().find(|s| text.contains(s.as_str())) {
        return Some(format!("secret {}…", &s[..12]));
    }
    let lower = text.to_ascii_lowercase();
    for marker in [
        "bearer ",
        "access_token",
        "authorization: basic",
        "client_secret",
    ] {
        if lower.contains(marker) {
            return Some(format!("marker {marker:?}"));
        }
    }
    None
}

fn procedure(ws: &Workspace, server: &TestServer) -> Vec<(String, String)> {
    let zip = server.credentials_zip();
    let z = zip.to_str().unwrap();
    let publish = publish_args("offline-credentials.zip", "1");
    let steps: Vec<Vec<&str>> = vec![
        vec!["init", "--repo", "r", "--credentials", z],
        vec![
            "key", "generate", "--repo", "r", "--name", "myroot", "--type", "rsa",
        ],
        vec![
            "key",
            "generate",
            "--repo",
            "r",
            "--name",
            "mytargets",
            "--type",
            "ed25519",
        ],
        vec!["targets", "pull", "--repo", "r"],
        vec![
            "move-offline",
            "--repo",
            "r",
            "--old-root-alias",
            "origroot",
            "--new-root",
            "myroot",
            "--new-targets",
            "mytargets",
        ],
        vec![
            "targets",
            "add",
            "--repo",
            "r",
            "--name",
            "fw",
            "--version",
            "1",
            "--length",
            "3",
            "--sha256",
            SHA,
            "--hardwareids",
            "hw",
        ],
        vec!["targets", "sign", "--repo", "r", "--key-name", "mytargets"],
        vec!["targets", "push", "--repo", "r"],
        vec![
            "export-credentials",
            "--repo",
            "r",
            "--key-name",
            "mytargets",
            "--output",
            "offline-credentials.zip",
        ],
        publish.iter().map(String::as_str).collect(),
        vec!["root", "pull", "--repo", "r"],
        vec!["targets", "pull", "--repo", "r"],
    ];
    let mut outputs: Vec<(String, String)> = Vec::new();
    for step in steps {
        let out = ws
            .cmd()
            .env("OTA_SIGN_LOG", "trace")
            .arg("--verbose")
            .args(&step)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(out.status.success(), "{step:?} failed:\n{stderr}");
        outputs.push((format!("{step:?} stdout"), stdout));
        outputs.push((format!("{step:?} stderr"), stderr));
    }
    let all: String = outputs.iter().map(|(_, t)| t.as_str()).collect();
    assert!(
        all.contains("TRACE") && all.contains("DEBUG"),
        "the run must log at trace level to prove anything"
    );
    outputs
}

fn check(auth: Auth) {
    let server = TestServer::with(Options {
        auth,
        ..Options::default()
    });
    let ws = Workspace::new();
    let outputs = procedure(&ws, &server);
    let secrets = secrets(&ws, &server.credentials_zip());
    assert!(
        secrets.len() >= 10,
        "too few secrets collected: {}",
        secrets.len()
    );
    let mut leaks = Vec::new();
    for (what, text) in &outputs {
        if let Some(l) = leak(text, &secrets) {
            leaks.push(format!("{what}: {l}"));
        }
    }
    for e in walkdir::WalkDir::new(ws.path())
        .into_iter()
        .filter_map(Result::ok)
    {
        let p = e.path();
        let rel = p.strip_prefix(ws.path()).unwrap();
        let name = p.file_name().unwrap().to_string_lossy();
        if e.file_type().is_dir() {
            if p.starts_with(ws.home()) && p != ws.home() {
                assert_eq!(mode(p), 0o700, "{}", rel.display());
            }
            continue;
        }
        if rel.components().any(|c| c.as_os_str() == "keys") {
            let want = if name.ends_with(".sec") { 0o600 } else { 0o644 };
            assert_eq!(mode(p), want, "{}", rel.display());
            continue;
        }
        if HOLDERS.contains(&name.as_ref()) {
            assert_eq!(mode(p), 0o600, "{} holds secrets", rel.display());
            continue;
        }
        let text = String::from_utf8_lossy(&std::fs::read(p).unwrap()).to_string();
        if let Some(l) = leak(&text, &secrets) {
            leaks.push(format!("file {}: {l}", rel.display()));
        }
    }
    assert!(
        leaks.is_empty(),
        "{auth:?}: secrets leaked:\n{}",
        leaks.join("\n")
    );
    // The checker itself finds a leak when there is one.
    assert!(leak(&format!("x {} y", secrets[0]), &secrets).is_some());
    assert!(read_json(&ws.repo("r").join("config.json")).is_object());
}

#[test]
fn no_secret_leaks_over_oauth2() {
    check(Auth::OAuth2);
}

#[test]
fn no_secret_leaks_over_mutual_tls() {
    check(Auth::Mtls);
}
