//! Keys on a PKCS#11 token (SoftHSM2): the offline-key procedure, export and publish
//! with keys that never leave the token, against ota-reposerver.
//!
//! Every test gets its own SoftHSM2 token directory through `SOFTHSM2_CONF`. The
//! SoftHSM2 module and `softhsm2-util`/`pkcs11-tool` must be installed (`.ci/run`
//! installs softhsm2 and opensc): a missing module fails the test, it never skips.

use crate::support::reposerver::{Options, TestServer};
use crate::support::steps::{assert_moved_offline, publish_image};
use crate::support::{tree_snapshot, zip_entry, zip_names, Cmd, Ran, Repo, Workspace};
use ota_sign::keys::PublicKey;
use ota_sign::metadata::SignedPayload;
use ota_sign::verify::TrustedRoot;
use std::path::{Path, PathBuf};

const PIN: &str = "73915824";
const SO_PIN: &str = "11223344";
const LABEL: &str = "ota";
const PIN_VAR: &str = "OTA_SIGN_PKCS11_PIN";

/// Where Debian, Fedora and source builds put the SoftHSM2 module.
const MODULE_CANDIDATES: [&str; 4] = [
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib64/pkcs11/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
];

/// A fresh SoftHSM2 token in its own directory.
struct Hsm {
    dir: tempfile::TempDir,
    module: PathBuf,
}

impl Hsm {
    fn new() -> Self {
        let module = MODULE_CANDIDATES
            .iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
            .unwrap_or_else(|| {
                panic!(
                    "the SoftHSM2 PKCS#11 module is not installed (looked in {MODULE_CANDIDATES:?}): apt-get install softhsm2 opensc"
                )
            });
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("tokens")).unwrap();
        std::fs::write(
            dir.path().join("softhsm2.conf"),
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
                dir.path().join("tokens").display()
            ),
        )
        .unwrap();
        let hsm = Hsm { dir, module };
        hsm.tool("softhsm2-util")
            .hint("(apt-get install softhsm2)")
            .args([
                "--init-token",
                "--free",
                "--label",
                LABEL,
                "--so-pin",
                SO_PIN,
                "--pin",
                PIN,
            ])
            .run()
            .success();
        hsm
    }

    fn conf(&self) -> PathBuf {
        self.dir.path().join("softhsm2.conf")
    }

    fn tool(&self, program: &str) -> Cmd {
        Cmd::program(program).env("SOFTHSM2_CONF", self.conf())
    }

    /// `pkcs11-tool --module <softhsm> --login --pin <PIN> <args>`.
    fn pkcs11_tool(&self, args: &[&str]) -> Ran {
        self.tool("pkcs11-tool")
            .hint("(apt-get install opensc)")
            .arg("--module")
            .arg(&self.module)
            .args(["--login", "--pin", PIN])
            .args(args)
            .run()
    }

    /// A workspace whose `ota-sign` uses this token: module and PIN from the
    /// environment (see [`wrong_pin`], [`no_pin`]).
    fn workspace(&self) -> Workspace {
        Workspace::new()
            .with_env("SOFTHSM2_CONF", self.conf())
            .with_env("OTA_SIGN_PKCS11_MODULE", &self.module)
            .with_env("OTA_SIGN_HTTP_RETRY_DELAY_MS", "20")
            .with_env(PIN_VAR, PIN)
    }

    /// The private key objects, as pkcs11-tool lists them.
    fn private_objects(&self) -> String {
        self.pkcs11_tool(&["--list-objects", "--type", "privkey"])
            .success()
            .stdout()
    }
}

/// `cmd` with a PIN the token refuses.
fn wrong_pin(cmd: Cmd) -> Cmd {
    cmd.env(PIN_VAR, "00000000")
}

/// `cmd` without a PIN in its environment.
fn no_pin(cmd: Cmd) -> Cmd {
    cmd.env_remove(PIN_VAR)
}

fn uri(object: &str) -> String {
    format!("pkcs11:token={LABEL};object={object}")
}

/// `key generate --name <name> --type <key_type> --pkcs11 <uri(name)>` in `r`.
fn token_key(r: &Repo, name: &str, key_type: &str) {
    r.ok(&[
        "key",
        "generate",
        "--name",
        name,
        "--type",
        key_type,
        "--pkcs11",
        &uri(name),
    ]);
}

/// Checks pkcs11-tool's view of the token: every private key is sensitive, never
/// extractable and for signing only, and reading one out fails.
fn assert_keys_stay_on_token(hsm: &Hsm, labels: &[&str]) {
    let listing = hsm.private_objects();
    for label in labels {
        let block: Vec<&str> = listing
            .split("Private Key Object")
            .filter(|b| b.contains(&format!("label:      {label}\n")))
            .collect();
        assert_eq!(
            block.len(),
            1,
            "private key {label} on the token:\n{listing}"
        );
        let access = block[0]
            .lines()
            .find(|l| l.trim_start().starts_with("Access:"))
            .unwrap();
        assert!(
            access.contains(" sensitive")
                && access.contains("always sensitive")
                && access.contains("never extractable"),
            "{label}: {access}"
        );
        assert!(
            !access.contains(" extractable,") || access.contains("never extractable"),
            "{label}: {access}"
        );
        let usage = block[0]
            .lines()
            .find(|l| l.trim_start().starts_with("Usage:"))
            .unwrap();
        assert_eq!(usage.trim(), "Usage:      sign", "{label}");
        let read = hsm.pkcs11_tool(&["--read-object", "--type", "privkey", "--label", label]);
        assert!(
            !read.out.status.success() || read.out.stdout.is_empty(),
            "{label}: the private key could be read out"
        );
    }
}

/// No file below `dir` holds a private key, except the listed software keys.
fn assert_no_private_key_files(dir: &Path, allowed: &[&str]) {
    for (path, data) in tree_snapshot(dir) {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if allowed.contains(&name.as_str()) {
            continue;
        }
        let text = String::from_utf8_lossy(&data);
        assert!(!name.ends_with(".sec"), "{} exists", path.display());
        assert!(
            !text.contains("PRIVATE KEY") && !text.contains("\"private\""),
            "{} holds a private key",
            path.display()
        );
        assert!(!text.contains(PIN), "{} holds the PIN", path.display());
    }
}

/// The OTA Connect offline-key procedure with root and targets keys generated on the
/// token, then a token-backed credentials zip and publish; checked with the software
/// verifier against the server's metadata.
fn procedure_on_token(key_type: &'static str) {
    let hsm = Hsm::new();
    let server = TestServer::with(Options {
        key_type,
        ..Options::default()
    });
    let ws = hsm.workspace();
    let zip = server.credentials_zip();
    let (root_v1, _, _) = server.role("root.json");
    let r = ws.init_from("r", &zip);
    for name in ["myroot", "mytargets"] {
        token_key(&r, name, key_type);
        let keys = r.file("keys");
        assert!(!keys.join(format!("{name}.sec")).exists());
        let alias = std::fs::read_to_string(keys.join(format!("{name}.pkcs11"))).unwrap();
        assert!(alias.starts_with(&format!("{};id=%", uri(name))), "{alias}");
        assert!(!alias.contains("pin"), "{alias}");
    }
    assert_keys_stay_on_token(&hsm, &["myroot", "mytargets"]);

    // The seed procedure's commands, unchanged.
    r.pull().move_offline().sign_targets("mytargets").push();

    let root_v2 = assert_moved_offline(&server, &r, &root_v1, key_type);
    let mytargets = r.key_id("mytargets");
    let trusted = TrustedRoot::from_signed(&root_v2.signed, "v2").unwrap();
    let (targets, _, _) = server.role("targets.json");
    assert_eq!(targets.signed["version"], 2);
    trusted.verify("targets", &targets, "targets.json").unwrap();

    // A token-backed credentials zip: targets.pub and the reference, no targets.sec.
    let offline = export_token_zip(&r);
    let names = zip_names(&offline);
    assert!(!names.iter().any(|n| n == "targets.sec"), "{names:?}");
    assert_eq!(
        zip_entry(&offline, "targets.pkcs11").unwrap(),
        std::fs::read(r.file("keys/mytargets.pkcs11")).unwrap()
    );
    assert_eq!(
        zip_entry(&offline, "targets.pub").unwrap(),
        std::fs::read(r.file("keys/mytargets.pub")).unwrap()
    );

    // publish signs on the token (PIN from the environment), then from a pin-source file.
    std::fs::write(ws.path().join("image.bin"), b"token-signed image").unwrap();
    let publish = |zip: &str, version: &str| {
        publish_image(
            &ws,
            Path::new(zip),
            "img",
            version,
            "hw",
            Path::new("image.bin"),
        )
        .arg("--upload")
    };
    publish("offline.zip", "1").ok();
    let pin_file = ws.path().join("pin");
    std::fs::write(&pin_file, format!("{PIN}\n")).unwrap();
    let with_pin_source = format!(
        "{}?pin-source={}\n",
        String::from_utf8(zip_entry(&offline, "targets.pkcs11").unwrap())
            .unwrap()
            .trim(),
        pin_file.display()
    );
    rewrite_zip_entry(
        &offline,
        &ws.path().join("offline-pinfile.zip"),
        "targets.pkcs11",
        with_pin_source.as_bytes(),
    );
    no_pin(publish("offline-pinfile.zip", "2")).ok();

    let (targets, _, _) = server.role("targets.json");
    assert_eq!(targets.signed["version"], 4);
    assert_eq!(targets.signatures.len(), 1);
    assert_eq!(targets.signatures[0].keyid, mytargets);
    trusted.verify("targets", &targets, "targets.json").unwrap();
    assert!(
        targets.signed["targets"]["img-1"].is_object()
            && targets.signed["targets"]["img-2"].is_object()
    );

    // init from the token-backed zip keeps the reference as keys/targets.pkcs11, and
    // the usual sign → push works with it.
    let again = ws.init_from("again", "offline.zip");
    let keys = again.file("keys");
    assert!(!keys.join("targets.sec").exists());
    assert_eq!(
        std::fs::read(keys.join("targets.pkcs11")).unwrap(),
        zip_entry(&offline, "targets.pkcs11").unwrap()
    );
    again.pull().sign_targets("targets").push();
    let (targets, _, _) = server.role("targets.json");
    assert_eq!(targets.signed["version"], 5);
    trusted.verify("targets", &targets, "targets.json").unwrap();
    // refresh re-signs on the token, from the zip and from the repository.
    ws.ok(&["refresh", "--credentials", "offline.zip"]);
    r.ok(&["refresh", "--key-name", "mytargets"]);
    let (targets, _, _) = server.role("targets.json");
    assert_eq!(targets.signed["version"], 7);
    assert_eq!(targets.signatures[0].keyid, mytargets);
    trusted.verify("targets", &targets, "targets.json").unwrap();
    // ota-sign's device-rules check accepts the whole repository.
    ws.ok(&["verify", "--credentials", "offline.zip"]);

    // The token's keys never reached the disk: only the online keys init and
    // move-offline wrote are private key files.
    assert_no_private_key_files(
        ws.path(),
        &["targets.sec", "origroot.sec", "credentials.zip", "pin"],
    );
    assert_keys_stay_on_token(&hsm, &["myroot", "mytargets"]);
}

/// `user-keys gen --keys-path uk -k <name> --type <key_type> --pkcs11 <uri(name)>`.
fn token_user_key(ws: &Workspace, name: &str, key_type: &str) {
    ws.ok(&[
        "user-keys",
        "gen",
        "--keys-path",
        "uk",
        "-k",
        name,
        "--type",
        key_type,
        "--pkcs11",
        &uri(name),
    ]);
}

/// `export-credentials --key-name mytargets --to offline.zip` in `r`: a zip whose
/// targets key is on the token; returns its path.
fn export_token_zip(r: &Repo) -> PathBuf {
    r.ok(&[
        "export-credentials",
        "--key-name",
        "mytargets",
        "--to",
        "offline.zip",
    ]);
    r.workspace().path().join("offline.zip")
}

/// Copies `src` to `dst` with entry `name` replaced.
fn rewrite_zip_entry(src: &Path, dst: &Path, name: &str, data: &[u8]) {
    let entries: Vec<(String, Vec<u8>)> = zip_names(src)
        .into_iter()
        .map(|n| {
            let d = if n == name {
                data.to_vec()
            } else {
                zip_entry(src, &n).unwrap()
            };
            (n, d)
        })
        .collect();
    let refs: Vec<(&str, &[u8])> = entries
        .iter()
        .map(|(n, d)| (n.as_str(), d.as_slice()))
        .collect();
    ota_sign::credentials::write_zip(dst, &refs).unwrap();
}

#[test]
fn procedure_with_rsa_keys_on_the_token() {
    procedure_on_token("rsa");
}

#[test]
fn procedure_with_ed25519_keys_on_the_token() {
    procedure_on_token("ed25519");
}

/// A repository with token root/targets keys, ready for move-offline.
fn token_repo(hsm: &Hsm, server: &TestServer) -> Workspace {
    let ws = hsm.workspace();
    let r = ws.init_from("r", server.credentials_zip());
    for name in ["myroot", "mytargets"] {
        token_key(&r, name, "ed25519");
    }
    r.pull();
    ws
}

#[test]
fn a_wrong_pin_fails_clearly_and_changes_nothing() {
    let hsm = Hsm::new();
    let server = TestServer::start();
    let ws = token_repo(&hsm, &server);
    let before = tree_snapshot(ws.path());
    let (root_before, _, _) = server.role("root.json");

    let r = ws.open("r");
    let err = wrong_pin(r.move_offline_cmd()).fails(3);
    assert!(err.contains("wrong PIN"), "{err}");
    assert!(!err.contains("00000000"), "the PIN was printed: {err}");
    let err = wrong_pin(r.ota(&["targets", "sign", "--key-name", "mytargets"])).fails(3);
    assert!(err.contains("wrong PIN"), "{err}");
    assert_eq!(
        tree_snapshot(ws.path()),
        before,
        "a failed command changed files"
    );
    assert_eq!(
        server.role("root.json").0,
        root_before,
        "the server's root changed"
    );
    // The server's root key was neither downloaded nor deleted.
    let id = root_before.signed["roles"]["root"]["keyids"][0]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        server
            .get(&format!("root/private_keys/{id}"))
            .send()
            .unwrap()
            .status(),
        200
    );

    // A token-backed zip with a wrong PIN: publish pushes nothing.
    r.move_offline();
    export_token_zip(&r);
    std::fs::write(ws.path().join("image.bin"), b"x").unwrap();
    let (targets_before, _, _) = server.role("targets.json");
    let image = Path::new("image.bin");
    let publish = publish_image(&ws, Path::new("offline.zip"), "img", "1", "hw", image);
    let err = wrong_pin(publish).fails(3);
    assert!(err.contains("wrong PIN"), "{err}");
    assert_eq!(server.role("targets.json").0, targets_before);
    // No PIN at all says where to give one.
    let err = no_pin(r.ota(&["targets", "sign", "--key-name", "mytargets"])).fails(3);
    assert!(err.contains("OTA_SIGN_PKCS11_PIN"), "{err}");
}

#[test]
fn missing_objects_modules_and_stored_pins_are_clear_errors() {
    let hsm = Hsm::new();
    let ws = hsm.workspace();
    std::fs::write(ws.path().join("doc.json"), br#"{"a":1}"#).unwrap();
    token_user_key(&ws, "k1", "rsa");
    let sign = |key: &str| {
        ["sign-json", "-k", key, "-p", "uk/k1.pub", "-i", "doc.json"].map(str::to_string)
    };
    let run = |key: &str| {
        let args = sign(key);
        ws.fails(3, &args.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let err = run(&uri("nope"));
    assert!(err.contains("no private key"), "{err}");
    let err = run(&format!(
        "{}?module-path=/nonexistent/libpkcs11.so",
        uri("k1")
    ));
    assert!(
        err.contains("cannot load the PKCS#11 module /nonexistent/libpkcs11.so"),
        "{err}"
    );
    let err = run("pkcs11:token=other;object=k1");
    assert!(err.contains("no token matches"), "{err}");

    // An alias must not hold a PIN; the PIN in a URI is never logged, even at trace.
    let alias = ws.path().join("uk/k1.pkcs11");
    let original = std::fs::read_to_string(&alias).unwrap();
    std::fs::write(&alias, format!("{}?pin-value={PIN}\n", original.trim())).unwrap();
    let err = ws.fails(
        3,
        &[
            "delegations",
            "sign",
            "-k",
            "k1",
            "--keys-path",
            "uk",
            "-i",
            "doc.json",
        ],
    );
    assert!(err.contains("PINs are never stored"), "{err}");
    assert!(!err.contains(PIN), "{err}");
    std::fs::write(&alias, &original).unwrap();
    let ran = no_pin(ws.ota(&sign(&format!("{}?pin-value={PIN}", uri("k1")))))
        .env("OTA_SIGN_LOG", "trace")
        .run()
        .success();
    assert!(
        !String::from_utf8_lossy(&ran.out.stderr).contains(PIN)
            && !String::from_utf8_lossy(&ran.out.stdout).contains(PIN)
    );
}

#[test]
fn sign_json_delegations_root_sign_and_key_import_use_token_keys() {
    let hsm = Hsm::new();
    let ws = hsm.workspace();
    std::fs::write(
        ws.path().join("doc.json"),
        br#"{"_type":"Targets","version":1}"#,
    )
    .unwrap();
    token_user_key(&ws, "supplier", "ed25519");
    assert!(!ws.path().join("uk/supplier.sec").exists());
    // By key name (delegations sign) and by URI (sign-json); each verifies.
    let by_name = ["delegations", "sign", "-k", "supplier", "--keys-path", "uk"];
    let supplier = uri("supplier");
    let by_uri = ["sign-json", "-k", &supplier, "-p", "uk/supplier.pub"];
    for (signed, args) in [("signed.json", &by_name[..]), ("signed2.json", &by_uri[..])] {
        let doc = ws.ok(&[args, &["-i", "doc.json"]].concat());
        std::fs::write(ws.path().join(signed), doc).unwrap();
        ws.ok(&["verify-json", "-p", "uk/supplier.pub", "-i", signed]);
    }
    assert_keys_stay_on_token(&hsm, &["supplier"]);

    // An RSA key made by another tool, imported by URI, signs a root locally.
    hsm.pkcs11_tool(&[
        "--keypairgen",
        "--key-type",
        "rsa:2048",
        "--label",
        "external",
        "--id",
        "a1b2",
        "--usage-sign",
        "--sensitive",
    ])
    .success();
    let server = TestServer::start();
    let r = ws.init_from("r", server.credentials_zip());
    r.ok(&[
        "key",
        "import",
        "--name",
        "ext",
        "--pkcs11",
        &format!("pkcs11:token={LABEL};id=%A1%B2"),
    ]);
    r.ok(&["root", "pull"]);
    r.ok(&["root", "key", "add", "--key-name", "ext"]);
    r.ok(&["root", "sign", "--key-name", "ext"]);
    let root =
        SignedPayload::parse(&std::fs::read(r.file("roles/root.json")).unwrap(), "root").unwrap();
    let ext = r.key_id("ext");
    assert_eq!(root.signatures.len(), 1);
    assert_eq!(root.signatures[0].keyid, ext);
    assert_eq!(root.signatures[0].method, "rsassa-pss-sha256");
    let public = PublicKey::from_json(&r.json("keys/ext.pub"), false).unwrap();
    let message = ota_sign::canonical::CanonicalJson::of(&root.signed);
    assert!(public.verify(
        "rsassa-pss-sha256",
        message.as_bytes(),
        &root.signatures[0].sig
    ));
    // Generating over an existing token key is refused.
    let err = r.fails(
        3,
        &[
            "key",
            "generate",
            "--name",
            "again",
            "--type",
            "rsa",
            "--pkcs11",
            &format!("pkcs11:token={LABEL};id=%A1%B2"),
        ],
    );
    assert!(err.contains("already holds a key"), "{err}");
}
