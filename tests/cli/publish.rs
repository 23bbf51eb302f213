//! `ota-sign publish` against ota-reposerver (issue 5).

use crate::support::reposerver::TestServer;
use crate::support::steps::publish_image;
use crate::support::{Cmd, Ran, Workspace};
use ota_sign::metadata::SignedPayload;
use ota_sign::verify::TrustedRoot;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// `publish` of `name`-`version` (hardware ids `hw-a,hw-b`) from `image`, in `ws`.
fn publish_cmd(ws: &Workspace, zip: &Path, name: &str, version: &str, image: &Path) -> Cmd {
    publish_image(ws, zip, name, version, "hw-a,hw-b", image).fast_retries()
}

fn write_image(dir: &Path, name: &str, seed: u8, len: usize) -> PathBuf {
    let p = dir.join(name);
    let data: Vec<u8> = (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect();
    std::fs::write(&p, data).unwrap();
    p
}

fn server_targets(server: &TestServer) -> (SignedPayload, u64) {
    let (t, _, _) = server.role("targets.json");
    let v = t.signed["version"].as_u64().unwrap();
    (t, v)
}

fn verify_with_server_root(server: &TestServer, targets: &SignedPayload) {
    let (root, _, _) = server.role("root.json");
    TrustedRoot::from_signed(&root.signed, "root")
        .unwrap()
        .verify("targets", targets, "targets.json")
        .unwrap();
}

#[test]
fn sixteen_concurrent_publishers_all_land() {
    let server = TestServer::start();
    let ws = Workspace::new();
    let (_, v0) = server_targets(&server);
    let images: Vec<PathBuf> = (0..16)
        .map(|i| write_image(ws.path(), &format!("img{i}.bin"), i as u8, 1000 + i * 7))
        .collect();
    let children: Vec<_> = images
        .iter()
        .enumerate()
        .map(|(i, img)| {
            let app = format!("app{i}");
            publish_cmd(&ws, &server.credentials_zip(), &app, "1.0", img)
                .args(["--retries", "60", "--json"])
                .spawn()
        })
        .collect();
    let mut attempts = 0;
    for child in children {
        let summary = Ran::of_child(child).success().json();
        assert_eq!(summary["pushed"], true);
        attempts += summary["attempts"].as_u64().unwrap();
    }
    assert!(attempts >= 16);
    let (targets, v) = server_targets(&server);
    assert_eq!(v, v0 + 16, "each publisher pushed exactly once");
    for (i, img) in images.iter().enumerate() {
        let data = std::fs::read(img).unwrap();
        let item = &targets.signed["targets"][format!("app{i}-1.0")];
        assert_eq!(
            item["hashes"]["sha256"],
            ota_sign::crypto::sha256_hex(&data)
        );
        assert_eq!(item["length"], data.len());
        assert_eq!(
            item["custom"]["hardwareIds"],
            serde_json::json!(["hw-a", "hw-b"])
        );
    }
    verify_with_server_root(&server, &targets);
}

#[test]
fn publishing_the_same_image_twice_pushes_once() {
    let server = TestServer::start();
    let ws = Workspace::new();
    let img = write_image(ws.path(), "img.bin", 1, 4096);
    let publish = |img: &Path| publish_cmd(&ws, &server.credentials_zip(), "app", "2.0", img);
    let first = publish(&img).ok();
    assert!(first.starts_with("published app-2.0"), "{first}");
    let (t1, v1) = server_targets(&server);
    let second = publish(&img).ok();
    assert!(second.contains("already published"), "{second}");
    let (t2, v2) = server_targets(&server);
    assert_eq!(v1, v2);
    assert_eq!(t1, t2);
    // A changed image under the same name and version is republished.
    let img2 = write_image(ws.path(), "img2.bin", 2, 4096);
    publish(&img2).ok();
    assert_eq!(server_targets(&server).1, v2 + 1);
}

/// A copy of `zip` with `targets.pub`/`targets.sec` replaced by a fresh key.
fn zip_with_other_key(zip: &Path, out: &Path) {
    let key = ota_sign::keys::PrivateKey::generate(ota_sign::keys::KeyType::Ed25519, None).unwrap();
    let creds = ota_sign::credentials::Credentials::read(zip).unwrap();
    let pub_file = key.to_pub_file();
    let sec_file = key.to_sec_file();
    let mut entries: Vec<(&str, &[u8])> = vec![
        ("targets.pub", pub_file.as_bytes()),
        ("targets.sec", sec_file.as_bytes()),
    ];
    entries.extend(creds.entries().filter(|(n, _)| !n.starts_with("targets.")));
    ota_sign::credentials::write_zip(out, &entries).unwrap();
}

#[test]
fn wrong_targets_key_and_forged_root_fail_before_any_push() {
    let mut server = TestServer::start();
    let ws = Workspace::new();
    let img = write_image(ws.path(), "img.bin", 3, 100);
    let other = ws.path().join("other.zip");
    zip_with_other_key(&server.credentials_zip(), &other);
    let (_, v0) = server_targets(&server);
    let err = publish_cmd(&ws, &other, "app", "1", &img).fails(1);
    let expected_id = server.role("root.json").0.signed["roles"]["targets"]["keyids"][0]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        err.contains("expects") && err.contains(&expected_id),
        "{err}"
    );
    assert_eq!(server_targets(&server).1, v0);
    assert!(
        !server.log().contains("PUT /api/v1/user_repo/targets"),
        "nothing was pushed"
    );

    // A forged root v2 on the server stops publish too. (Keep the zip as issued: the
    // test server rewrites its own copy at every start.)
    let issued = ws.path().join("issued.zip");
    std::fs::copy(server.credentials_zip(), &issued).unwrap();
    crate::support::reposerver::inject_forged_root(&mut server);
    let err = publish_cmd(&ws, &issued, "app", "1", &img).fails(3);
    assert!(err.contains("2.root.json"), "{err}");
    assert_eq!(server_targets(&server).1, v0);
}

/// Every file below `dir` whose content contains `needle`.
fn files_containing(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .filter(|e| {
            std::fs::read(e.path()).is_ok_and(|d| d.windows(needle.len()).any(|w| w == needle))
        })
        .map(|e| e.path().to_path_buf())
        .collect()
}

#[test]
fn the_private_key_never_touches_the_disk() {
    let server = TestServer::start();
    let ws = Workspace::new();
    let watched_tmp = ws.path().join("tmp");
    let watched_cwd = ws.path().join("work");
    std::fs::create_dir_all(&watched_tmp).unwrap();
    std::fs::create_dir_all(&watched_cwd).unwrap();
    let secret = serde_json::from_slice::<Value>(
        &crate::support::zip_entry(&server.credentials_zip(), "targets.sec").unwrap(),
    )
    .unwrap()["keyval"]["private"]
        .as_str()
        .unwrap()
        .to_string();
    let seed_hex = secret[..64].to_string();
    let img = write_image(&watched_cwd, "img.bin", 4, 3 << 20);
    let mut child = publish_cmd(&ws, &server.credentials_zip(), "app", "9", &img)
        .args(["--upload"])
        .env("TMPDIR", &watched_tmp)
        .current_dir(&watched_cwd)
        .spawn();
    // Watch while it runs, then once more after it exits.
    let mut scans = 0;
    loop {
        for dir in [&watched_tmp, &watched_cwd] {
            assert_eq!(
                files_containing(dir, seed_hex.as_bytes()),
                Vec::<PathBuf>::new()
            );
        }
        scans += 1;
        if child.0.try_wait().unwrap().is_some() {
            break;
        }
    }
    Ran::of_child(child).success();
    for dir in [&watched_tmp, &watched_cwd] {
        assert_eq!(
            files_containing(dir, seed_hex.as_bytes()),
            Vec::<PathBuf>::new()
        );
    }
    assert!(scans >= 1);
    // The image was uploaded and registered as cliUploaded.
    let (targets, _) = server_targets(&server);
    assert_eq!(
        targets.signed["targets"]["app-9"]["custom"]["cliUploaded"],
        true
    );
}

#[test]
fn dry_run_keep_versions_ostree_and_refusals() {
    let server = TestServer::start();
    let ws = Workspace::new();
    let zip = server.credentials_zip();
    for v in 1..=3 {
        let img = write_image(ws.path(), &format!("v{v}.bin"), v as u8, 64);
        publish_cmd(&ws, &zip, "app", &v.to_string(), &img).ok();
        std::thread::sleep(std::time::Duration::from_millis(1100)); // distinct createdAt
    }
    let img = write_image(ws.path(), "v4.bin", 4, 64);
    publish_cmd(&ws, &zip, "app", "4", &img)
        .args(["--keep-versions", "2"])
        .ok();
    let (targets, v) = server_targets(&server);
    let names: Vec<&String> = targets.signed["targets"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert_eq!(names, ["app-3", "app-4"]);

    // Dry run: nothing pushed, the signed document is written where asked.
    let dry = ws.path().join("dry.json");
    ws.ota(&[
        "publish",
        "--credentials",
        zip.to_str().unwrap(),
        "--name",
        "os",
        "--version",
        "abc",
        "--hardwareids",
        "m",
    ])
    .args([
        "--format",
        "ostree",
        "--sha256",
        &"ab".repeat(32),
        "--dry-run",
        "--output",
        dry.to_str().unwrap(),
    ])
    .ok();
    assert_eq!(server_targets(&server).1, v);
    let doc = SignedPayload::parse(&std::fs::read(&dry).unwrap(), "dry").unwrap();
    assert_eq!(doc.signed["version"].as_u64(), Some(v + 1));
    assert_eq!(doc.signed["targets"]["os-abc"]["length"], 0);
    assert_eq!(
        doc.signed["targets"]["os-abc"]["custom"]["targetFormat"],
        "OSTREE"
    );
    verify_with_server_root(&server, &doc);

    // Non-ASCII names and custom values are refused before anything is pushed.
    publish_cmd(&ws, &zip, "caf\u{e9}", "1", &img)
        .run()
        .failure();
    let err = publish_cmd(&ws, &zip, "app", "5", &img)
        .args(["--custom", r#"{"note":"\u00e9"}"#])
        .run()
        .failure()
        .stderr();
    assert!(err.contains("non-ASCII"), "{err}");
    assert_eq!(server_targets(&server).1, v);

    // A zip without the offline entries says what is missing.
    let bare = ws.path().join("bare.zip");
    let creds = ota_sign::credentials::Credentials::read(&zip).unwrap();
    let entries: Vec<(&str, &[u8])> = creds
        .entries()
        .filter(|(n, _)| *n != "targets.sec")
        .collect();
    ota_sign::credentials::write_zip(&bare, &entries).unwrap();
    let err = publish_cmd(&ws, &bare, "app", "6", &img).fails(1);
    assert!(err.contains("targets.sec"), "{err}");
}

/// A targets.json the server would refuse for its size is not pushed; the error says
/// how to make room. (Through the library: no command line takes 8 MB arguments.)
#[test]
fn oversized_targets_json_fails_with_a_hint() {
    use ota_sign::publish::{publish, ImageSource, PublishRequest};
    let server = TestServer::start();
    let (_, v0) = server_targets(&server);
    let mut custom = serde_json::Map::new();
    custom.insert(
        "notes".into(),
        Value::from("x".repeat(ota_sign::publish::TARGETS_SIZE_LIMIT)),
    );
    let req = PublishRequest {
        credentials: server.credentials_zip(),
        name: "big".into(),
        version: Some("1".into()),
        hardware_ids: vec!["hw".into()],
        image: ImageSource::Given {
            sha256: "cd".repeat(32),
            length: 10,
        },
        format: ota_sign::metadata::TargetFormat::Binary,
        url: None,
        custom: Some(custom),
        expiry: ota_sign::expiry::ExpiryChoice::Default,
        upload: false,
        retries: 0,
        dry_run: false,
        output: None,
        keep_versions: None,
        skip_unless_offline: false,
        options: ota_sign::http::ClientOptions::default(),
    };
    let err = publish(&req).unwrap_err();
    assert_eq!(err.exit_code(), 1);
    assert!(err.to_string().contains("--keep-versions"), "{err}");
    assert_eq!(server_targets(&server).1, v0, "nothing was pushed");
}

/// `GET targets/<file>`: what a device downloads.
fn download(server: &TestServer, file: &str) -> Vec<u8> {
    let r = server.get(&format!("targets/{file}")).send().unwrap();
    assert_eq!(r.status(), 200, "GET targets/{file}");
    r.bytes().unwrap().to_vec()
}

#[test]
fn upload_is_idempotent_and_an_interrupted_upload_completes_on_the_next_run() {
    upload_idempotency(TestServer::start());
}

/// The same through `PUT uploads/<file>`, for servers without multipart uploads.
#[test]
fn upload_idempotency_without_multipart() {
    use crate::support::reposerver::Options;
    upload_idempotency(TestServer::with(Options {
        multipart: false,
        ..Options::default()
    }));
}

fn upload_idempotency(server: TestServer) {
    let ws = Workspace::new();
    let zip = server.credentials_zip();
    let img = write_image(ws.path(), "img.bin", 3, 5000);
    let upload = |version: &str, img: &Path| {
        publish_cmd(&ws, &zip, "app", version, img)
            .args(["--upload", "--json", "--retries", "0"])
            .run()
    };
    let first = upload("1.0", &img).success().json();
    assert_eq!(
        (first["pushed"].clone(), first["uploaded"].clone()),
        (true.into(), true.into())
    );
    assert_eq!(first["item"]["custom"]["cliUploaded"], true);
    assert_eq!(download(&server, "app-1.0"), std::fs::read(&img).unwrap());
    let (t1, v1) = server_targets(&server);

    // Again: the file is stored with this hash and length, so nothing happens.
    let again = upload("1.0", &img).success().json();
    assert_eq!(
        (again["pushed"].clone(), again["uploaded"].clone()),
        (false.into(), false.into())
    );
    assert_eq!(server_targets(&server), (t1, v1));

    // Interrupted after the upload completed, before targets.json was pushed (every
    // attempt: one reset alone is read back and survived).
    let img2 = write_image(ws.path(), "img2.bin", 4, 3000);
    server.add_fault(
        serde_json::json!({"method": "PUT", "path": "/api/v1/user_repo/targets", "kind": "reset", "count": 20}),
    );
    upload("2.0", &img2).failure();
    assert_eq!(server_targets(&server).1, v1, "nothing was pushed");
    server.clear_faults();
    // Interrupted in the middle of the upload (the body PUT fails for good).
    let img3 = write_image(ws.path(), "img3.bin", 5, 3000);
    let body = if server.options().multipart {
        "/_storage/multipart/*"
    } else {
        "/api/v1/user_repo/uploads/*"
    };
    server.add_fault(
        serde_json::json!({"method": "PUT", "path": body, "count": 50, "kind": "reset"}),
    );
    upload("3.0", &img3).failure();
    server.clear_faults();

    for (version, img) in [("2.0", &img2), ("3.0", &img3)] {
        let done = upload(version, img).success().json();
        assert_eq!(
            (done["pushed"].clone(), done["uploaded"].clone()),
            (true.into(), true.into())
        );
        assert_eq!(
            download(&server, &format!("app-{version}")),
            std::fs::read(img).unwrap()
        );
    }
    assert_eq!(server_targets(&server).1, v1 + 2);
    verify_with_server_root(&server, &server_targets(&server).0);
}

#[test]
fn json_reports_expiries_warnings_and_the_target() {
    let server = TestServer::start();
    let ws = Workspace::new();
    let zip = server.credentials_zip();
    let img = write_image(ws.path(), "img.bin", 6, 100);
    let ran = publish_cmd(&ws, &zip, "app", "1", &img)
        .arg("--json")
        .run()
        .success();
    let j = ran.json();
    let (targets, _) = server_targets(&server);
    let (root, _, _) = server.role("root.json");
    assert_eq!(j["targets_expires"], targets.signed["expires"]);
    assert_eq!(j["root_expires"], root.signed["expires"]);
    assert_eq!(j["item"], targets.signed["targets"]["app-1"]);
    // No upload, no URL, no stored file: devices cannot fetch it, and it says so.
    let w = j["warnings"].as_array().unwrap();
    assert!(
        w.len() == 1
            && w[0]
                .as_str()
                .unwrap()
                .contains("devices cannot download app-1"),
        "{w:?}"
    );
    assert!(ran.stderr().contains("no_uri_for_unmanaged_target"));

    let with_url = publish_cmd(&ws, &zip, "app", "2", &img)
        .args(["--json", "--url", "https://example.com/app-2"])
        .run()
        .success()
        .json();
    assert_eq!(with_url["warnings"], serde_json::json!([]));
}

#[test]
fn skip_unless_offline_skips_a_zip_that_cannot_sign() {
    let server = TestServer::start();
    let ws = Workspace::new();
    let img = write_image(ws.path(), "img.bin", 7, 100);
    let bare = ws.path().join("online.zip");
    let creds = ota_sign::credentials::Credentials::read(&server.credentials_zip()).unwrap();
    let entries: Vec<(&str, &[u8])> = creds
        .entries()
        .filter(|(n, _)| *n != "targets.sec")
        .collect();
    ota_sign::credentials::write_zip(&bare, &entries).unwrap();
    let (_, v0) = server_targets(&server);

    let ran = publish_cmd(&ws, &bare, "app", "1", &img)
        .args(["--skip-unless-offline", "--json"])
        .run()
        .success();
    let j = ran.json();
    assert_eq!(j["skipped"], true);
    assert!(j["reason"].as_str().unwrap().contains("targets.sec"), "{j}");
    assert!(ran.stderr().contains("skipping"));
    assert_eq!(server_targets(&server).1, v0);

    // A usable zip is published as usual with the flag.
    let ok = publish_cmd(&ws, &server.credentials_zip(), "app", "1", &img)
        .args(["--skip-unless-offline", "--json"])
        .run()
        .success()
        .json();
    assert_eq!(ok["pushed"], true);
}
