//! `TestServer`: a running `ota-reposerver` on a temporary data directory, stopped
//! (killed and reaped) on drop. Reusable by client tests:
//!
//! ```ignore
//! let server = TestServer::start();                       // no auth, ed25519
//! let server = TestServer::with(Options { auth: Auth::OAuth2, ..Default::default() });
//! server.credentials_zip();                              // credentials.zip for url()
//! server.get("targets.json").send()                      // authenticated request builder
//! server.add_fault(json!({"path": "/api/v1/user_repo/targets", "kind": "status", "status": 503}));
//! server.restart();                                      // same data dir, same port
//! ```

use ota_sign::keys::PrivateKey;
use ota_sign::metadata::SignedPayload;
use reqwest::blocking::{Client, RequestBuilder};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::Mutex;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Auth {
    None,
    OAuth2,
    Mtls,
}

#[derive(Clone, Debug)]
pub struct Options {
    pub auth: Auth,
    /// `ed25519` or `rsa`.
    pub key_type: &'static str,
    /// `false` starts the server with `--no-multipart` (501 not_implemented).
    pub multipart: bool,
    pub part_size: Option<u64>,
    pub upload_limit: Option<u64>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            auth: Auth::None,
            key_type: "ed25519",
            multipart: true,
            part_size: None,
            upload_limit: None,
        }
    }
}

pub struct TestServer {
    dir: tempfile::TempDir,
    opts: Options,
    child: Option<Child>,
    url: String,
    port: u16,
    token: Mutex<Option<String>>,
}

impl TestServer {
    /// No authentication, Ed25519 keys.
    pub fn start() -> Self {
        Self::with(Options::default())
    }

    pub fn with(opts: Options) -> Self {
        ota_sign::crypto::install_tls_provider();
        let dir = tempfile::tempdir().unwrap();
        let auth = match opts.auth {
            Auth::None => "none",
            Auth::OAuth2 => "oauth2",
            Auth::Mtls => "mtls",
        };
        let out = super::ota_reposerver_cmd()
            .arg("init-account")
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(["--key-type", opts.key_type, "--auth", auth])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "init-account failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut s = TestServer {
            dir,
            opts,
            child: None,
            url: String::new(),
            port: 0,
            token: Mutex::new(None),
        };
        s.spawn("127.0.0.1:0");
        s
    }

    fn spawn(&mut self, listen: &str) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        let mut cmd = super::ota_reposerver_cmd();
        cmd.arg("serve")
            .arg("--data-dir")
            .arg(self.data_dir())
            .args(["--listen", listen])
            .arg("--credentials")
            .arg(self.credentials_zip())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log));
        if !self.opts.multipart {
            cmd.arg("--no-multipart");
        }
        if let Some(p) = self.opts.part_size {
            cmd.args(["--part-size", &p.to_string()]);
        }
        if let Some(l) = self.opts.upload_limit {
            cmd.args(["--upload-limit", &l.to_string()]);
        }
        let mut child = cmd.spawn().unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let Some(url) = line.trim().strip_prefix("listening on ") else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("unexpected first line {line:?}; log:\n{}", self.log());
        };
        self.url = url.to_string();
        self.port = url.rsplit(':').next().unwrap().parse().unwrap();
        self.child = Some(child);
        *self.token.lock().unwrap() = None;
    }

    /// Kills the server and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stops and starts the server on the same data directory and port.
    pub fn restart(&mut self) {
        self.stop();
        let listen = format!("127.0.0.1:{}", self.port);
        self.spawn(&listen);
    }

    /// `http(s)://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// `<url>/api/v1/user_repo/<path>`.
    pub fn api(&self, path: &str) -> String {
        format!("{}/api/v1/user_repo/{path}", self.url)
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// credentials.zip for the current URL (rewritten at every start).
    pub fn credentials_zip(&self) -> PathBuf {
        self.dir.path().join("credentials.zip")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    pub fn options(&self) -> &Options {
        &self.opts
    }

    pub fn admin_token(&self) -> String {
        std::fs::read_to_string(self.data_dir().join("admin.token")).unwrap()
    }

    /// A client that authenticates as the credentials say (mTLS identity and trust;
    /// no redirects followed). Bearer tokens are added by [`Self::request`].
    pub fn client(&self) -> Client {
        client_for(&self.credentials_zip(), true)
    }

    /// Like [`Self::client`] but without a client certificate.
    pub fn client_without_identity(&self) -> Client {
        client_for(&self.credentials_zip(), false)
    }

    /// An OAuth2 access token from `/token` (cached until restart); None without OAuth2.
    pub fn token(&self) -> Option<String> {
        if self.opts.auth != Auth::OAuth2 {
            return None;
        }
        let mut cached = self.token.lock().unwrap();
        if cached.is_none() {
            let th: Value = serde_json::from_slice(
                &super::zip_entry(&self.credentials_zip(), "treehub.json").unwrap(),
            )
            .unwrap();
            let o = &th["oauth2"];
            let resp = self
                .client()
                .post(o["server"].as_str().unwrap())
                .basic_auth(
                    o["client_id"].as_str().unwrap(),
                    o["client_secret"].as_str(),
                )
                .header("content-type", "application/x-www-form-urlencoded")
                .body(format!(
                    "grant_type=client_credentials&scope={}",
                    o["scope"].as_str().unwrap()
                ))
                .send()
                .unwrap();
            assert_eq!(resp.status(), 200, "token request failed");
            let v: Value = resp.json().unwrap();
            *cached = Some(v["access_token"].as_str().unwrap().to_string());
        }
        cached.clone()
    }

    /// A request to `api(path)` with authentication applied.
    pub fn request(&self, method: reqwest::Method, path: &str) -> RequestBuilder {
        let rb = self.client().request(method, self.api(path));
        match self.token() {
            Some(t) => rb.bearer_auth(t),
            None => rb,
        }
    }

    pub fn get(&self, path: &str) -> RequestBuilder {
        self.request(reqwest::Method::GET, path)
    }

    pub fn put(&self, path: &str) -> RequestBuilder {
        self.request(reqwest::Method::PUT, path)
    }

    pub fn post(&self, path: &str) -> RequestBuilder {
        self.request(reqwest::Method::POST, path)
    }

    pub fn delete(&self, path: &str) -> RequestBuilder {
        self.request(reqwest::Method::DELETE, path)
    }

    fn admin(&self, method: reqwest::Method) -> RequestBuilder {
        self.client()
            .request(method, format!("{}/_admin/faults", self.url))
            .header("x-ota-admin-token", self.admin_token())
    }

    /// Adds a fault rule (see `ota_sign::server::faults`), e.g.
    /// `{"method":"PUT","path":"/api/v1/user_repo/targets","count":2,"kind":"status","status":503}`.
    pub fn add_fault(&self, rule: Value) {
        let r = self
            .admin(reqwest::Method::POST)
            .json(&rule)
            .send()
            .unwrap();
        assert_eq!(
            r.status(),
            200,
            "adding a fault failed: {}",
            r.text().unwrap_or_default()
        );
    }

    pub fn clear_faults(&self) {
        assert_eq!(
            self.admin(reqwest::Method::DELETE).send().unwrap().status(),
            204
        );
    }

    /// The online targets key, from credentials.zip.
    pub fn targets_key(&self) -> PrivateKey {
        let c = ota_sign::credentials::Credentials::read(&self.credentials_zip()).unwrap();
        c.targets_key()
            .unwrap()
            .expect("credentials.zip has targets.pub/.sec")
    }

    /// GET `path` (a role), returning the parsed document, its checksum header and
    /// the raw body.
    pub fn role(&self, path: &str) -> (SignedPayload, String, Vec<u8>) {
        let r = self.get(path).send().unwrap();
        assert_eq!(r.status(), 200, "GET {path}");
        let checksum = r.headers()["x-ats-role-checksum"]
            .to_str()
            .unwrap()
            .to_string();
        let body = r.bytes().unwrap().to_vec();
        (SignedPayload::parse(&body, path).unwrap(), checksum, body)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A blocking client for a credentials.zip: for mutual TLS, trusts `server.p12` and
/// (if `identity`) presents `client_auth.p12`. Redirects are not followed.
pub fn client_for(zip: &Path, identity: bool) -> Client {
    ota_sign::crypto::install_tls_provider();
    let mut b = Client::builder().redirect(reqwest::redirect::Policy::none());
    if let Some(server) = super::zip_entry(zip, "server.p12") {
        let ks = p12_keystore::KeyStore::from_pkcs12(&server, "").unwrap();
        let certs: Vec<reqwest::Certificate> = ks
            .entries()
            .filter_map(|(_, e)| match e {
                p12_keystore::KeyStoreEntry::Certificate(c) => {
                    Some(reqwest::Certificate::from_der(c.as_der()).unwrap())
                }
                _ => None,
            })
            .collect();
        b = certs
            .into_iter()
            .fold(b.tls_built_in_root_certs(false), |b, c| {
                b.add_root_certificate(c)
            });
        if identity {
            let client = super::zip_entry(zip, "client_auth.p12").unwrap();
            let ks = p12_keystore::KeyStore::from_pkcs12(&client, "").unwrap();
            let (_, chain) = ks.private_key_chain().unwrap();
            let mut pem = pem::encode(&pem::Pem::new("PRIVATE KEY", chain.key().to_vec()));
            for c in chain.chain() {
                pem.push_str(&pem::encode(&pem::Pem::new(
                    "CERTIFICATE",
                    c.as_der().to_vec(),
                )));
            }
            b = b.identity(reqwest::Identity::from_pem(pem.as_bytes()).unwrap());
        }
    }
    b.build().unwrap()
}

/// Writes a root v2 that the server will serve, signed by a key v1 never listed.
pub fn inject_forged_root(server: &mut TestServer) {
    let (root_v1, _, _) = server.role("root.json");
    let mut forged = ota_sign::metadata::RootRole::from_signed(&root_v1.signed, "v1").unwrap();
    let attacker =
        ota_sign::keys::PrivateKey::generate(ota_sign::keys::KeyType::Ed25519, None).unwrap();
    forged.version = 2;
    forged.roles.get_mut("root").unwrap().keyids = vec![attacker.key_id()];
    forged
        .keys
        .insert(attacker.key_id(), attacker.public().clone());
    let signed =
        ota_sign::metadata::SignedPayload::sign(forged.to_signed().unwrap(), &[&attacker]).unwrap();
    server.stop();
    let roots = server.data_dir().join("repo/roots");
    std::fs::write(roots.join("2.root.json"), signed.canonical().as_bytes()).unwrap();
    server.restart();
    assert_eq!(
        server.role("root.json").0.signed["version"],
        2,
        "the server serves the forged root"
    );
}
