//! Hostile input, one table of cases ([`CASES`]). Each case starts from a fresh
//! [`World`]: a repository `r` initialised from a credentials.zip whose root and
//! targets keys this test owns, pulled from a fake reposerver it controls. A case
//! prepares its attack (a broken zip, a bad local file, a hostile server answer) and
//! returns the command line; the runner then checks that
//! - the exit code is the expected garage-sign code (never 101, never a signal),
//! - stderr names the file or field (`expect`),
//! - the home directory is byte-for-byte unchanged (tree snapshot),
//! - the server received no state-changing request (only GETs).

use crate::support::fake_http::{FakeServer, Reply};
use crate::support::{publish_args, tree_snapshot, Workspace, SHA};
use ota_sign::keys::{KeyType, PrivateKey};
use ota_sign::metadata::SignedPayload;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

const FUTURE: &str = "2035-01-01T00:00:00Z";
const CHECKSUM: &str = "1111111111111111111111111111111111111111111111111111111111111111";
const API: &str = "/api/v1/user_repo";

type Routes = Arc<Mutex<HashMap<String, Reply>>>;

/// A repository `r`, its keys, and a fake server serving root v1 and targets v2.
struct World {
    ws: Workspace,
    root_key: PrivateKey,
    targets_key: PrivateKey,
    routes: Routes,
    server: FakeServer,
}

fn root_doc(version: u64, expires: &str, root_key: &PrivateKey, targets_key: &PrivateKey) -> Value {
    let rid = root_key.key_id().to_string();
    let tid = targets_key.key_id().to_string();
    let role = |id: &str| json!({"keyids": [id], "threshold": 1});
    json!({
        "_type": "Root",
        "consistent_snapshot": false,
        "expires": expires,
        "keys": {rid.clone(): root_key.public().to_json(), tid.clone(): targets_key.public().to_json()},
        "roles": {"root": role(&rid), "snapshot": role(&rid), "targets": role(&tid), "timestamp": role(&rid)},
        "version": version,
    })
}

fn targets_doc(version: u64, targets: Value) -> Value {
    json!({"_type": "Targets", "expires": FUTURE, "targets": targets, "version": version})
}

fn item(sha256: &str, length: Value) -> Value {
    json!({"hashes": {"sha256": sha256}, "length": length, "custom": {"name": "fw", "version": "1", "hardwareIds": ["hw"], "targetFormat": "BINARY"}})
}

fn signed(doc: Value, key: &PrivateKey) -> Value {
    serde_json::to_value(SignedPayload::sign(doc, &[key]).unwrap()).unwrap()
}

fn json_reply(v: &Value) -> Reply {
    Reply::json(200, v).header("x-ats-role-checksum", CHECKSUM)
}

/// Writes a zip with these entries (deflate), in order.
fn write_zip(path: &Path, entries: &[(&str, Vec<u8>)]) {
    let mut w = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, data) in entries {
        w.start_file(*name, opts).unwrap();
        w.write_all(data).unwrap();
    }
    w.finish().unwrap();
}

impl World {
    fn new() -> Self {
        let ws = Workspace::new();
        let root_key = PrivateKey::generate(KeyType::Ed25519, None).unwrap();
        let targets_key = PrivateKey::generate(KeyType::Ed25519, None).unwrap();
        let routes: Routes = Arc::default();
        let r = routes.clone();
        let server = FakeServer::start(move |req, _| {
            r.lock()
                .unwrap()
                .get(req.path())
                .cloned()
                .unwrap_or_else(|| Reply::error(404, "missing", "no such route", Value::Null))
        });
        let w = World {
            ws,
            root_key,
            targets_key,
            routes,
            server,
        };
        let root = w.root(1, FUTURE);
        w.serve("root.json", json_reply(&root));
        w.serve("1.root.json", json_reply(&root));
        w.serve("targets.json", json_reply(&w.targets(2, json!({}))));
        let zip = w.zip("good.zip", &[]);
        w.ws.ok(&[
            "init",
            "--repo",
            "r",
            "--credentials",
            zip.to_str().unwrap(),
        ]);
        w.ws.ok(&["targets", "pull", "--repo", "r"]);
        w
    }

    fn root(&self, version: u64, expires: &str) -> Value {
        signed(
            root_doc(version, expires, &self.root_key, &self.targets_key),
            &self.root_key,
        )
    }

    fn targets(&self, version: u64, targets: Value) -> Value {
        signed(targets_doc(version, targets), &self.targets_key)
    }

    fn serve(&self, role: &str, reply: Reply) {
        self.routes
            .lock()
            .unwrap()
            .insert(format!("{API}/{role}"), reply);
    }

    /// The good credentials entries, each replaced or removed by `changes`
    /// (`None` removes; a name not yet present is appended).
    fn entries(&self, changes: &[(&str, Option<Vec<u8>>)]) -> Vec<(String, Vec<u8>)> {
        let mut e: Vec<(String, Vec<u8>)> = vec![
            (
                "treehub.json".into(),
                br#"{"no_auth": true, "ostree": {}}"#.to_vec(),
            ),
            ("tufrepo.url".into(), self.server.url().into_bytes()),
            (
                "root.json".into(),
                serde_json::to_vec(&self.root(1, FUTURE)).unwrap(),
            ),
            (
                "targets.pub".into(),
                self.targets_key.to_pub_file().into_bytes(),
            ),
            (
                "targets.sec".into(),
                self.targets_key.to_sec_file().as_bytes().to_vec(),
            ),
        ];
        for (name, data) in changes {
            let pos = e.iter().position(|(n, _)| n == name);
            match (pos, data) {
                (Some(i), Some(d)) => e[i].1 = d.clone(),
                (Some(i), None) => {
                    e.remove(i);
                }
                (None, Some(d)) => e.push((name.to_string(), d.clone())),
                (None, None) => {}
            }
        }
        e
    }

    fn zip(&self, name: &str, changes: &[(&str, Option<Vec<u8>>)]) -> PathBuf {
        let path = self.ws.path().join(name);
        let entries = self.entries(changes);
        let refs: Vec<(&str, Vec<u8>)> = entries
            .iter()
            .map(|(n, d)| (n.as_str(), d.clone()))
            .collect();
        write_zip(&path, &refs);
        path
    }

    fn init_args(&self, zip: &Path) -> Vec<String> {
        args(&[
            "init",
            "--repo",
            "new",
            "--credentials",
            zip.to_str().unwrap(),
        ])
    }

    fn init_with(&self, changes: &[(&str, Option<Vec<u8>>)]) -> Vec<String> {
        let zip = self.zip("hostile.zip", changes);
        self.init_args(&zip)
    }

    fn repo_file(&self, rel: &str) -> PathBuf {
        self.ws.repo("r").join(rel)
    }

    /// Rewrites roles/unsigned/targets.json through `edit`.
    fn edit_unsigned_targets(&self, edit: impl FnOnce(&mut Value)) {
        let path = self.repo_file("roles/unsigned/targets.json");
        let mut v: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        edit(&mut v);
        std::fs::write(&path, serde_json::to_vec(&v).unwrap()).unwrap();
    }
}

fn args(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

/// `targets add` of target `name`-1 with this sha256 and extra flags.
fn add_args(name: &str, sha256: &str, extra: &[&str]) -> Vec<String> {
    let mut a = args(&[
        "targets",
        "add",
        "--repo",
        "r",
        "--name",
        name,
        "--version",
        "1",
        "--length",
        "3",
        "--sha256",
        sha256,
        "--hardwareids",
        "hw",
    ]);
    a.extend(args(extra));
    a
}

fn sign_args() -> Vec<String> {
    args(&["targets", "sign", "--repo", "r", "--key-name", "targets"])
}

fn bytes(v: &Value) -> Option<Vec<u8>> {
    Some(serde_json::to_vec(v).unwrap())
}

/// An RSA key pair of `bits` made by openssl (ota-sign refuses to make weak ones).
fn openssl_rsa_pair(dir: &Path, bits: u32) -> (Vec<u8>, Vec<u8>) {
    let key = dir.join(format!("rsa{bits}.pem"));
    let run = |a: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(a)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "openssl {a:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    run(&[
        "genrsa",
        "-traditional",
        "-out",
        key.to_str().unwrap(),
        &bits.to_string(),
    ]);
    let private = String::from_utf8(std::fs::read(&key).unwrap()).unwrap();
    let public = String::from_utf8(run(&["rsa", "-in", key.to_str().unwrap(), "-pubout"])).unwrap();
    (
        serde_json::to_vec(&json!({"keytype": "RSA", "keyval": {"public": public}})).unwrap(),
        serde_json::to_vec(&json!({"keytype": "RSA", "keyval": {"private": private}})).unwrap(),
    )
}

/// A zip whose two entries both end up named `name` (the writer refuses duplicates,
/// so the second name is patched in the raw bytes; the CRC covers data only).
fn zip_with_duplicate(path: &Path, entries: &[(&str, Vec<u8>)], name: &str, data: &[u8]) {
    let mut twin = name.to_string();
    twin.pop();
    twin.push('\u{1}');
    let mut all: Vec<(&str, Vec<u8>)> = entries.to_vec();
    all.push((twin.as_str(), data.to_vec()));
    write_zip(path, &all);
    let raw = std::fs::read(path).unwrap();
    let (from, to) = (twin.as_bytes(), name.as_bytes());
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i..].starts_with(from) {
            out.extend_from_slice(to);
            i += from.len();
        } else {
            out.push(raw[i]);
            i += 1;
        }
    }
    std::fs::write(path, out).unwrap();
}

struct Case {
    name: &'static str,
    /// Prepares the attack and returns the ota-sign arguments.
    prepare: fn(&World) -> Vec<String>,
    code: i32,
    /// Substrings stderr must contain (the file or field named).
    expect: &'static [&'static str],
}

macro_rules! case {
    ($name:literal, $code:expr, [$($e:literal),*], $prepare:expr) => {
        Case { name: $name, prepare: $prepare, code: $code, expect: &[$($e),*] }
    };
}

const CASES: &[Case] = &[
    // --- init: credentials.zip entries present but unusable (exit 3, nothing written)
    case!(
        "root.json with a broken signature",
        3,
        ["root.json", "signature"],
        |w| {
            let mut root = w.root(1, FUTURE);
            root["signed"]["expires"] = json!("2036-01-01T00:00:00Z");
            w.init_with(&[("root.json", bytes(&root))])
        }
    ),
    case!(
        "root.json not signed by its root keys",
        3,
        ["root.json"],
        |w| {
            let other = PrivateKey::generate(KeyType::Ed25519, None).unwrap();
            let root = signed(root_doc(1, FUTURE, &w.root_key, &w.targets_key), &other);
            w.init_with(&[("root.json", bytes(&root))])
        }
    ),
    case!("root.json invalid JSON", 3, ["root.json"], |w| {
        w.init_with(&[("root.json", Some(b"{\"signatures\": [".to_vec()))])
    }),
    case!("root.json with a float version", 3, ["root.json"], |w| {
        let mut doc = root_doc(1, FUTURE, &w.root_key, &w.targets_key);
        doc["version"] = json!(1.5);
        w.init_with(&[("root.json", bytes(&signed(doc, &w.root_key)))])
    }),
    case!("targets key pair RSA-1024", 3, ["targets."], |w| {
        let (public, private) = openssl_rsa_pair(w.ws.path(), 1024);
        w.init_with(&[
            ("targets.pub", Some(public)),
            ("targets.sec", Some(private)),
        ])
    }),
    case!("targets key pair DSA", 3, ["targets.pub", "DSA"], |w| {
        let dsa = br#"{"keytype": "DSA", "keyval": {"public": "-----BEGIN PUBLIC KEY-----\nMIIBtzCCASsGByqGSM44BAEwggEeAoGBAP\n-----END PUBLIC KEY-----\n"}}"#;
        w.init_with(&[("targets.pub", Some(dsa.to_vec()))])
    }),
    case!("targets.sec not JSON", 3, ["targets.sec"], |w| {
        w.init_with(&[(
            "targets.sec",
            Some(b"-----BEGIN RSA PRIVATE KEY-----".to_vec()),
        )])
    }),
    case!(
        "targets.pub and targets.sec not a pair",
        3,
        ["targets.sec", "does not belong"],
        |w| {
            let other = PrivateKey::generate(KeyType::Ed25519, None).unwrap();
            w.init_with(&[("targets.pub", Some(other.to_pub_file().into_bytes()))])
        }
    ),
    case!(
        "targets.sec without targets.pub",
        3,
        ["targets.sec", "targets.pub"],
        |w| { w.init_with(&[("targets.pub", None)]) }
    ),
    case!(
        "zip entry ../ traversal",
        3,
        ["../keys/evil", "unsafe"],
        |w| { w.init_with(&[("../keys/evil", Some(b"x".to_vec()))]) }
    ),
    case!(
        "zip entry with an absolute name",
        3,
        ["/etc/evil", "unsafe"],
        |w| { w.init_with(&[("/etc/evil", Some(b"x".to_vec()))]) }
    ),
    case!("zip symlink entry", 3, ["link", "symbolic link"], |w| {
        let path = w.ws.path().join("symlink.zip");
        let mut z = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
        let opts = zip::write::SimpleFileOptions::default();
        for (n, d) in w.entries(&[]) {
            z.start_file(n, opts).unwrap();
            z.write_all(&d).unwrap();
        }
        z.add_symlink("link", "/etc/passwd", opts).unwrap();
        z.finish().unwrap();
        w.init_args(&path)
    }),
    case!("truncated zip", 3, ["truncated.zip", "zip"], |w| {
        let good = std::fs::read(w.zip("good2.zip", &[])).unwrap();
        let path = w.ws.path().join("truncated.zip");
        std::fs::write(&path, &good[..good.len() * 2 / 3]).unwrap();
        w.init_args(&path)
    }),
    case!("not a zip at all", 3, ["garbage.zip", "zip"], |w| {
        let path = w.ws.path().join("garbage.zip");
        std::fs::write(&path, b"<html>not a zip</html>").unwrap();
        w.init_args(&path)
    }),
    case!(
        "zip bomb: one entry over the entry cap",
        3,
        ["bomb", "larger than"],
        |w| { w.init_with(&[("bomb", Some(vec![0u8; 17 << 20]))]) }
    ),
    case!(
        "zip bomb: entries over the total cap",
        3,
        ["more than 64 MiB"],
        |w| {
            let e: Vec<(String, Option<Vec<u8>>)> = (0..5)
                .map(|i| (format!("pad{i}"), Some(vec![0u8; 15 << 20])))
                .collect();
            let refs: Vec<(&str, Option<Vec<u8>>)> =
                e.iter().map(|(n, d)| (n.as_str(), d.clone())).collect();
            w.init_with(&refs)
        }
    ),
    case!("zip with too many entries", 3, ["entries"], |w| {
        let e: Vec<(String, Option<Vec<u8>>)> =
            (0..1001).map(|i| (format!("f{i}"), Some(vec![]))).collect();
        let refs: Vec<(&str, Option<Vec<u8>>)> =
            e.iter().map(|(n, d)| (n.as_str(), d.clone())).collect();
        w.init_with(&refs)
    }),
    case!(
        "duplicate zip entries",
        3,
        ["dup.zip", "more than once"],
        |w| {
            let path = w.ws.path().join("dup.zip");
            let entries = w.entries(&[]);
            let refs: Vec<(&str, Vec<u8>)> = entries
                .iter()
                .map(|(n, d)| (n.as_str(), d.clone()))
                .collect();
            let other = signed(root_doc(1, FUTURE, &w.root_key, &w.root_key), &w.root_key);
            zip_with_duplicate(
                &path,
                &refs,
                "root.json",
                &serde_json::to_vec(&other).unwrap(),
            );
            w.init_args(&path)
        }
    ),
    case!(
        "treehub.json invalid JSON",
        3,
        ["treehub.json", "JSON"],
        |w| { w.init_with(&[("treehub.json", Some(b"{oauth2:".to_vec()))]) }
    ),
    case!(
        "treehub.json oauth2 without client_secret",
        3,
        ["treehub.json: oauth2"],
        |w| {
            w.init_with(&[(
                "treehub.json",
                Some(br#"{"oauth2": {"server": "http://127.0.0.1:9", "client_id": "x"}}"#.to_vec()),
            )])
        }
    ),
    case!("treehub.json no_auth not a boolean", 3, ["no_auth"], |w| {
        w.init_with(&[("treehub.json", Some(br#"{"no_auth": "yes"}"#.to_vec()))])
    }),
    case!("treehub.json missing", 3, ["treehub.json"], |w| {
        w.init_with(&[("treehub.json", None)])
    }),
    case!("tufrepo.url missing", 3, ["tufrepo.url"], |w| {
        w.init_with(&[("tufrepo.url", None)])
    }),
    case!(
        "tufrepo.url not a URL",
        3,
        ["tufrepo.url", "not an http(s) URL"],
        |w| { w.init_with(&[("tufrepo.url", Some(b"ftp is not http".to_vec()))]) }
    ),
    case!("tufrepo.url not UTF-8", 3, ["tufrepo.url", "UTF-8"], |w| {
        w.init_with(&[("tufrepo.url", Some(vec![0xff, 0xfe, 0x00]))])
    }),
    // --- local repository: bad files and bad arguments
    case!("ECPRIME256V1 key used to sign", 3, ["ECPRIME256V1"], |w| {
        let keys = w.repo_file("keys");
        let public = w.targets_key.public().to_json();
        let mut ec_pub = public.clone();
        ec_pub["keytype"] = json!("ECPRIME256V1");
        std::fs::write(keys.join("ec.pub"), serde_json::to_vec(&ec_pub).unwrap()).unwrap();
        std::fs::write(keys.join("ec.sec"), br#"{"keytype": "ECPRIME256V1", "keyval": {"private": "-----BEGIN EC PRIVATE KEY-----\nAA==\n-----END EC PRIVATE KEY-----\n"}}"#).unwrap();
        args(&["targets", "sign", "--repo", "r", "--key-name", "ec"])
    }),
    case!(".sec without its .pub", 3, ["lone.sec", "lone.pub"], |w| {
        std::fs::copy(
            w.repo_file("keys/targets.sec"),
            w.repo_file("keys/lone.sec"),
        )
        .unwrap();
        args(&["targets", "sign", "--repo", "r", "--key-name", "lone"])
    }),
    case!(".sec that is not JSON", 3, ["targets.sec"], |w| {
        std::fs::write(w.repo_file("keys/targets.sec"), b"not json").unwrap();
        sign_args()
    }),
    case!(".pub of another key", 3, ["targets"], |w| {
        let other = PrivateKey::generate(KeyType::Ed25519, None).unwrap();
        std::fs::write(w.repo_file("keys/targets.pub"), other.to_pub_file()).unwrap();
        sign_args()
    }),
    case!("config.json invalid JSON", 3, ["config.json"], |w| {
        std::fs::write(w.repo_file("config.json"), b"{").unwrap();
        args(&["targets", "pull", "--repo", "r"])
    }),
    case!(
        "config.json reposerver missing",
        3,
        ["config.json: reposerver"],
        |w| {
            std::fs::write(w.repo_file("config.json"), br#"{"auth": null}"#).unwrap();
            args(&["targets", "pull", "--repo", "r"])
        }
    ),
    case!(
        "stored checksum not hex",
        3,
        ["targets.json.checksum"],
        |w| {
            w.ws.ok(&sign_args().iter().map(String::as_str).collect::<Vec<_>>());
            std::fs::write(w.repo_file("roles/targets.json.checksum"), "zz".repeat(32)).unwrap();
            args(&["targets", "push", "--repo", "r"])
        }
    ),
    case!("float in unsigned targets.json", 3, ["targets.json"], |w| {
        w.edit_unsigned_targets(|v| v["version"] = json!(2.5));
        sign_args()
    }),
    case!(
        "float target length in unsigned targets.json",
        3,
        ["targets.json"],
        |w| {
            w.edit_unsigned_targets(|v| v["targets"]["fw-1"] = item(SHA, json!(1.5)));
            sign_args()
        }
    ),
    case!(
        "signed targets.json over the size limit, pushed",
        1,
        ["8286208", "limit", "targets delete"],
        |w| {
            // Signing is local and only warns; the push is refused before it is sent.
            let mut it = item(SHA, json!(1));
            it["custom"]["notes"] = json!("x".repeat(ota_sign::publish::TARGETS_SIZE_LIMIT));
            w.edit_unsigned_targets(|v| v["targets"]["fw-1"] = it);
            let out = w.ws.cmd().args(sign_args()).output().unwrap();
            let said = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "sign: {said}");
            assert!(
                said.contains("`targets push` and `publish` will refuse"),
                "{said}"
            );
            args(&["targets", "push", "--repo", "r"])
        }
    ),
    case!(
        "targets add sha256 upper-case",
        3,
        ["sha256", "64 lower-case hex"],
        |_| {
            let sha = SHA.to_ascii_uppercase();
            add_args("fw", &sha, &[])
        }
    ),
    case!(
        "targets add sha256 too short",
        3,
        ["sha256 \"abcd\"", "64 lower-case hex"],
        |_| { add_args("fw", "abcd", &[]) }
    ),
    case!(
        "targets add non-ASCII target name",
        3,
        ["target filename", "non-ASCII"],
        |_| { add_args("f\u{fc}rmware", SHA, &[]) }
    ),
    case!(
        "targets add non-ASCII custom value",
        3,
        [".custom.note", "non-ASCII"],
        |_| { add_args("fw", SHA, &["--customMeta", "{\"note\": \"gr\u{fc}n\"}"]) }
    ),
    case!(
        "targets sign --expires in the past",
        1,
        ["expiration date lies in the past"],
        |_| {
            let mut a = sign_args();
            a.extend(args(&["--expires", "2001-01-01T00:00:00Z"]));
            a
        }
    ),
    case!(
        "targets sign --expires with --expire-after",
        255,
        ["--expire"],
        |_| {
            let mut a = sign_args();
            a.extend(args(&["--expires", FUTURE, "--expire-after", "1D"]));
            a
        }
    ),
    // --- hostile server answers
    case!("root chain with a version gap", 3, ["root"], |w| {
        w.serve("root.json", json_reply(&w.root(3, FUTURE)));
        w.serve("3.root.json", json_reply(&w.root(3, FUTURE)));
        args(&["root", "pull", "--repo", "r"])
    }),
    case!("expired root on pull", 1, ["expired"], |w| {
        let v2 = w.root(2, "2020-01-01T00:00:00Z");
        w.serve("root.json", json_reply(&v2));
        w.serve("2.root.json", json_reply(&v2));
        args(&["root", "pull", "--repo", "r"])
    }),
    case!("publish with an expired latest root", 1, ["expired"], |w| {
        let v2 = w.root(2, "2020-01-01T00:00:00Z");
        w.serve("2.root.json", json_reply(&v2));
        let zip = w.ws.path().join("good.zip");
        publish_args(zip.to_str().unwrap(), "1")
    }),
    case!("forged root on pull", 3, ["root"], |w| {
        let attacker = PrivateKey::generate(KeyType::Ed25519, None).unwrap();
        let v2 = signed(root_doc(2, FUTURE, &attacker, &w.targets_key), &attacker);
        w.serve("root.json", json_reply(&v2));
        w.serve("2.root.json", json_reply(&v2));
        args(&["root", "pull", "--repo", "r"])
    }),
    case!(
        "duplicate key ids in signatures",
        1,
        ["signed more than once"],
        |w| {
            let mut t = w.targets(3, json!({}));
            let sig = t["signatures"][0].clone();
            t["signatures"] = json!([sig, sig]);
            w.serve("targets.json", json_reply(&t));
            args(&["targets", "pull", "--repo", "r"])
        }
    ),
    case!("unknown signature method", 1, ["unsupported method"], |w| {
        let mut t = w.targets(3, json!({}));
        t["signatures"][0]["method"] = json!("rsassa-pkcs1v15-sha1");
        w.serve("targets.json", json_reply(&t));
        args(&["targets", "pull", "--repo", "r"])
    }),
    case!(
        "targets signed by a foreign key",
        1,
        ["TargetsPullError"],
        |w| {
            let other = PrivateKey::generate(KeyType::Ed25519, None).unwrap();
            w.serve(
                "targets.json",
                json_reply(&signed(targets_doc(3, json!({})), &other)),
            );
            args(&["targets", "pull", "--repo", "r"])
        }
    ),
    case!("rolled-back targets", 1, ["rollback"], |w| {
        w.serve("targets.json", json_reply(&w.targets(1, json!({}))));
        args(&["targets", "pull", "--repo", "r"])
    }),
    case!(
        "served target with a bad sha256",
        3,
        ["targets.json", "sha256 \"XYZ\""],
        |w| {
            let t = w.targets(3, json!({"fw-1": item("XYZ", json!(3))}));
            w.serve("targets.json", json_reply(&t));
            args(&["targets", "pull", "--repo", "r"])
        }
    ),
    case!(
        "served target with a float length",
        3,
        ["targets.json", "invalid number"],
        |w| {
            let t = w.targets(3, json!({"fw-1": item(SHA, json!(3.5))}));
            w.serve("targets.json", json_reply(&t));
            args(&["targets", "pull", "--repo", "r"])
        }
    ),
    case!("server answers HTML", 3, ["targets.json"], |w| {
        w.serve(
            "targets.json",
            Reply::status(200)
                .header("Content-Type", "text/html")
                .header("x-ats-role-checksum", CHECKSUM)
                .body("<html><body>Login</body></html>"),
        );
        args(&["targets", "pull", "--repo", "r"])
    }),
    case!("server answer truncated", 3, ["targets.json"], |w| {
        let full = serde_json::to_vec(&w.targets(3, json!({}))).unwrap();
        w.serve(
            "targets.json",
            Reply::status(200)
                .header("x-ats-role-checksum", CHECKSUM)
                .body(full[..full.len() / 2].to_vec()),
        );
        args(&["targets", "pull", "--repo", "r"])
    }),
    case!("server answer empty", 3, ["targets.json"], |w| {
        w.serve(
            "targets.json",
            Reply::status(200).header("x-ats-role-checksum", CHECKSUM),
        );
        args(&["targets", "pull", "--repo", "r"])
    }),
    case!("server answer gzip-broken", 3, ["targets.json"], |w| {
        w.serve(
            "targets.json",
            Reply::status(200)
                .header("Content-Encoding", "gzip")
                .header("x-ats-role-checksum", CHECKSUM)
                .body(b"\x1f\x8b\x08\x00garbage".to_vec()),
        );
        args(&["targets", "pull", "--repo", "r"])
    }),
    case!("server answer oversized", 3, ["larger than"], |w| {
        w.serve(
            "targets.json",
            Reply::status(200)
                .header("x-ats-role-checksum", CHECKSUM)
                .body(vec![b' '; (16 << 20) + 1]),
        );
        args(&["targets", "pull", "--repo", "r"])
    }),
    case!("checksum header not hex", 1, ["x-ats-role-checksum"], |w| {
        w.serve(
            "targets.json",
            Reply::json(200, &w.targets(3, json!({})))
                .header("x-ats-role-checksum", &"g".repeat(64)),
        );
        args(&["targets", "pull", "--repo", "r"])
    }),
    case!("checksum header missing", 1, ["x-ats-role-checksum"], |w| {
        w.serve("targets.json", Reply::json(200, &w.targets(3, json!({}))));
        args(&["targets", "pull", "--repo", "r"])
    }),
    case!("root answer not a signed document", 3, ["root.json"], |w| {
        w.serve("root.json", Reply::json(200, &json!({"hello": "world"})));
        args(&["root", "pull", "--repo", "r"])
    }),
];

/// Runs one case on a fresh world; returns a description of what went wrong.
fn run(case: &Case) -> Result<(), String> {
    let w = World::new();
    let cmd = (case.prepare)(&w);
    let before = tree_snapshot(&w.ws.home());
    let requests_before = w.server.requests().len();
    let out =
        w.ws.cmd()
            .args(&cmd)
            .env("OTA_SIGN_HTTP_RETRIES", "1")
            .env("OTA_SIGN_HTTP_RETRY_DELAY_MS", "1")
            .output()
            .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let mut problems = Vec::new();
    if out.status.code() != Some(case.code) {
        problems.push(format!(
            "exit {:?}, expected {}",
            out.status.code(),
            case.code
        ));
    }
    if stderr.contains("panicked") {
        problems.push("panicked".into());
    }
    for e in case.expect {
        if !stderr.contains(e) {
            problems.push(format!("stderr does not name {e:?}"));
        }
    }
    if before != tree_snapshot(&w.ws.home()) {
        problems.push("the local repository changed".into());
    }
    let changing: Vec<String> = w.server.requests()[requests_before..]
        .iter()
        .filter(|r| r.method != "GET")
        .map(|r| format!("{} {}", r.method, r.target))
        .collect();
    if !changing.is_empty() {
        problems.push(format!(
            "state-changing requests reached the server: {changing:?}"
        ));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{}: {}\n    ota-sign {}\n    stderr: {}",
            case.name,
            problems.join("; "),
            cmd.iter()
                .map(|a| if a.len() > 80 { "…" } else { a })
                .collect::<Vec<_>>()
                .join(" "),
            stderr.trim()
        ))
    }
}

#[test]
fn hostile_inputs_fail_closed() {
    assert!(CASES.len() >= 40, "{} cases", CASES.len());
    let names: std::collections::BTreeSet<_> = CASES.iter().map(|c| c.name).collect();
    assert_eq!(names.len(), CASES.len(), "case names are unique");
    let failures: Vec<String> = CASES.iter().filter_map(|c| run(c).err()).collect();
    assert!(
        failures.is_empty(),
        "{} of {} hostile cases failed:\n{}",
        failures.len(),
        CASES.len(),
        failures.join("\n")
    );
}

/// The runner itself must be able to fail: a harmless command is not a hostile case.
#[test]
fn the_hostile_runner_detects_success_and_changes() {
    let ok = Case {
        name: "a successful sign",
        prepare: |_| sign_args(),
        code: 3,
        expect: &["never printed"],
    };
    let err = run(&ok).unwrap_err();
    assert!(err.contains("exit Some(0)"), "{err}");
    assert!(err.contains("the local repository changed"), "{err}");
    assert!(err.contains("stderr does not name"), "{err}");
}
