//! Client for the ota-tuf reposerver's `user_repo` API, as garage-sign uses it
//! (reference/garage-sign.md §6, reference/reposerver.md §2).
//!
//! - **One client per command.** [`ReposerverClient`] holds the connection pool and,
//!   for OAuth2, the bearer token, fetched once on first use.
//! - **Auth as garage-sign selects it** ([`ClientAuth`]): none, OAuth2 client
//!   credentials, or mutual TLS from `client_auth.p12` (+ `server.p12` trust store).
//! - **Retries only where repeating is harmless** (see [Retries](#retries)):
//!   reads, deletes and the multipart steps; never a `PUT targets` or `POST root` that
//!   may already have been applied.
//! - **Errors say what happened and what to do**, mapped onto garage-sign's exit codes:
//!   412/428 on push → [`Error::ChecksumConflict`] (exit 2), `invalid_root_role` and
//!   a bad `x-ats-role-checksum` → [`Error::Explained`] (exit 1), everything else
//!   → [`Error::Http`] (exit 3), e.g.
//!   `PUT http://host/api/v1/user_repo/targets: 409 invalid_version_bump: Cannot bump version from 3 to 5`.
//! - **Nothing secret is logged or shown**: no token, no client secret, no presigned
//!   URL query. Logs carry method, URL and status only. The bearer token never follows
//!   a redirect to another origin.
//! - **Bounded memory**: answers are size-capped ([`METADATA_CAP`]); uploads stream
//!   from disk one buffer at a time.
//!
//! # Retries
//! Idempotent requests are retried on connection errors and on 429/500/502/503/504 with
//! exponential backoff and jitter ([`ClientOptions::retries`],
//! [`ClientOptions::retry_base_delay`]). Non-idempotent requests are retried only when
//! the connection could not be opened, before anything was sent.

mod reconcile;
mod server_error;
mod tls;
mod transport;
mod upload;
pub use upload::MAX_PARTS;

pub use server_error::ServerError;
pub use transport::{parse_retry_after, sends_bearer, token_request, RetryPolicy, RETRY_AFTER_MAX};
pub use upload::{progress_bar, Replace, UploadOutcome};

use crate::credentials::{AuthConfig, OAuth2Config, RepoConfig};
use crate::error::{Error, Result};
use crate::metadata::{Signed, SignedPayload};
use crate::schema::{DelegationName, KeyId, Sha256};
use reqwest::header::CONTENT_TYPE;
use reqwest::{Method, Url};
use std::path::{Path, PathBuf};
use std::time::Duration;
use transport::{Answer, Replay, Transport, SMALL_BODY_CAP};
use zeroize::Zeroizing;

/// Largest metadata document accepted from the server.
pub const METADATA_CAP: u64 = 16 << 20;
/// The optimistic-locking header of `targets.json` (reference/garage-sign.md §6.3).
pub const ROLE_CHECKSUM: &str = "x-ats-role-checksum";
/// Environment variable naming an extra CA bundle (like `--cacert`).
pub const CACERT_ENV: &str = "OTA_SIGN_CACERT";

/// Timeouts, retries and trust settings.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    pub connect_timeout: Duration,
    /// Whole-request timeout for metadata requests.
    pub timeout: Duration,
    /// Whole-request timeout for each upload request (one part, or the whole file).
    pub upload_timeout: Duration,
    /// Extra attempts after the first, for requests that may be repeated.
    pub retries: u32,
    pub retry_base_delay: Duration,
    pub retry_max_delay: Duration,
    /// A PEM bundle of extra trusted CA certificates.
    pub cacert: Option<PathBuf>,
    pub user_agent: String,
}

impl Default for ClientOptions {
    /// garage-sign's upload policy (6 retries, 1 s doubling to 32 s) applied to every
    /// idempotent request; 3600 s for uploads like garage-sign's `--timeout`.
    fn default() -> Self {
        ClientOptions {
            connect_timeout: Duration::from_secs(30),
            timeout: Duration::from_secs(300),
            upload_timeout: Duration::from_secs(3600),
            // A dead server is reported after ~8 s rather than garage-sign's 63 s.
            retries: 4,
            retry_base_delay: Duration::from_millis(500),
            retry_max_delay: Duration::from_secs(8),
            cacert: None,
            user_agent: concat!("ota-sign/", env!("CARGO_PKG_VERSION")).to_string(),
        }
    }
}

impl ClientOptions {
    /// The retry settings as the one [`RetryPolicy`].
    pub fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            retries: self.retries,
            base_delay: self.retry_base_delay,
            max_delay: self.retry_max_delay,
        }
    }

    /// The defaults, with `cacert` taken from `OTA_SIGN_CACERT` when set and non-empty,
    /// the retry policy from `OTA_SIGN_HTTP_RETRIES` / `OTA_SIGN_HTTP_RETRY_DELAY_MS` and
    /// the metadata request timeout from `OTA_SIGN_HTTP_TIMEOUT_MS` (CI and tests
    /// shorten them). A `--cacert` flag should then overwrite `cacert`.
    pub fn from_env() -> Self {
        let env_u64 = |name: &str| {
            std::env::var(name)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        let defaults = Self::default();
        ClientOptions {
            cacert: std::env::var_os(CACERT_ENV)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
            retries: env_u64("OTA_SIGN_HTTP_RETRIES")
                .map_or(defaults.retries, |n| n.min(20) as u32),
            retry_base_delay: env_u64("OTA_SIGN_HTTP_RETRY_DELAY_MS")
                .map_or(defaults.retry_base_delay, Duration::from_millis),
            timeout: env_u64("OTA_SIGN_HTTP_TIMEOUT_MS")
                .map_or(defaults.timeout, Duration::from_millis),
            ..defaults
        }
    }
}

/// Authentication material, loaded (mutual TLS key stores are read here, from files
/// or from memory).
pub enum ClientAuth {
    None,
    OAuth2(OAuth2Config),
    MutualTls {
        /// PKCS#12, empty password.
        client_p12: Zeroizing<Vec<u8>>,
        /// PKCS#12 trust store, empty password; its certificates become the only roots.
        server_p12: Option<Vec<u8>>,
        /// How the stores are named in messages (file paths, or entry names).
        client_name: String,
        server_name: String,
    },
}

impl std::fmt::Debug for ClientAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientAuth::None => f.write_str("None"),
            ClientAuth::OAuth2(o) => f.debug_tuple("OAuth2").field(o).finish(),
            ClientAuth::MutualTls {
                client_name,
                server_name,
                server_p12,
                ..
            } => f
                .debug_struct("MutualTls")
                .field("client", client_name)
                .field("server", &server_p12.as_ref().map(|_| server_name))
                .finish(),
        }
    }
}

impl ClientAuth {
    /// Mutual TLS from key stores in memory (e.g. read straight from credentials.zip).
    pub fn mutual_tls(client_p12: Zeroizing<Vec<u8>>, server_p12: Option<Vec<u8>>) -> Self {
        ClientAuth::MutualTls {
            client_p12,
            server_p12,
            client_name: "client_auth.p12".into(),
            server_name: "server.p12".into(),
        }
    }

    /// From a repository's config.json `auth`; key store paths are relative to `repo_dir`.
    pub fn from_config(auth: &AuthConfig, repo_dir: &Path) -> Result<Self> {
        Ok(match auth {
            AuthConfig::None => ClientAuth::None,
            AuthConfig::OAuth2(o) => ClientAuth::OAuth2(o.clone()),
            AuthConfig::MutualTls {
                cert_path,
                server_cert_path,
            } => {
                let client = repo_dir.join(cert_path);
                let server = server_cert_path.as_ref().map(|p| repo_dir.join(p));
                ClientAuth::MutualTls {
                    client_p12: crate::fsutil::read_secret(&client)?,
                    server_p12: server.as_deref().map(crate::fsutil::read).transpose()?,
                    client_name: client.display().to_string(),
                    server_name: server.map(|s| s.display().to_string()).unwrap_or_default(),
                }
            }
        })
    }
}

/// A signed document as served, with the exact bytes received.
#[derive(Clone, Debug)]
pub struct Fetched {
    pub payload: SignedPayload,
    pub raw: Vec<u8>,
}

/// `targets.json` and its `x-ats-role-checksum`.
#[derive(Clone, Debug)]
pub struct FetchedTargets {
    pub payload: SignedPayload,
    pub raw: Vec<u8>,
    /// As the server sent it.
    pub checksum: Sha256,
}

/// What a successful `PUT targets` answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PushOutcome {
    /// The new `x-ats-role-checksum`, when the server sent a valid one: store it to
    /// push again without pulling.
    pub checksum: Option<Sha256>,
    /// `x-ats-targets-role-size-limit` (advancedtelematic-era servers).
    pub size_limit: Option<u64>,
}

/// The reposerver `user_repo` API.
#[derive(Debug)]
pub struct ReposerverClient {
    /// `<tufrepo.url>/api/v1/user_repo`, path prefix kept.
    api: Url,
    http: Transport,
}

/// Redirects followed for a GET.
const MAX_REDIRECTS: usize = 5;

fn is_redirect(s: reqwest::StatusCode) -> bool {
    matches!(s.as_u16(), 301 | 302 | 303 | 307 | 308)
}

impl ReposerverClient {
    /// `base_url` is `tufrepo.url`; any path prefix is kept and a trailing `/` ignored.
    pub fn new(base_url: &str, auth: ClientAuth, options: &ClientOptions) -> Result<Self> {
        let trimmed = base_url.trim().trim_end_matches('/');
        let bad = |m: &str| Error::invalid("tufrepo.url", format!("{trimmed:?} {m}"));
        let mut api = Url::parse(trimmed).map_err(|e| bad(&format!("is not a valid URL: {e}")))?;
        if !matches!(api.scheme(), "http" | "https")
            || api.cannot_be_a_base()
            || api.host_str().is_none()
        {
            return Err(bad("is not an http(s) URL"));
        }
        if api.query().is_some() || api.fragment().is_some() {
            return Err(bad("must not have a query or fragment"));
        }
        api.path_segments_mut()
            .map_err(|_| bad("is not an http(s) URL"))?
            .pop_if_empty()
            .extend(["api", "v1", "user_repo"]);
        let http = Transport::new(&api, auth, options)?;
        Ok(ReposerverClient { api, http })
    }

    /// From a repository's config.json (`reposerver` and `auth`).
    pub fn from_repo_config(
        config: &RepoConfig,
        repo_dir: &Path,
        options: &ClientOptions,
    ) -> Result<Self> {
        if config.director {
            return Err(Error::Other(
                "director repositories (repoServerType Director) are not supported".into(),
            ));
        }
        Self::new(
            &config.reposerver,
            ClientAuth::from_config(&config.auth, repo_dir)?,
            options,
        )
    }

    /// `<base>/api/v1/user_repo/<segments…>`; each segment is percent-encoded.
    pub fn url(&self, segments: &[&str]) -> Url {
        let mut u = self.api.clone();
        if let Ok(mut s) = u.path_segments_mut() {
            s.extend(segments);
        }
        u
    }

    /// A GET, following up to [`MAX_REDIRECTS`] redirects (the bearer token is sent
    /// only to the reposerver's own origin).
    fn get(&self, url: &Url, cap: u64) -> Result<Answer> {
        let mut a = self
            .http
            .exchange(Method::GET, url, Replay::Idempotent, cap, &|rb| Ok(rb))?;
        let mut at = url.clone();
        for _ in 0..MAX_REDIRECTS {
            if !is_redirect(a.status) {
                return Ok(a);
            }
            at = self.http.redirect_target(&Method::GET, &at, &a)?;
            a = self
                .http
                .exchange(Method::GET, &at, Replay::Idempotent, cap, &|rb| Ok(rb))?;
        }
        if is_redirect(a.status) {
            return Err(self.http.http_error(
                &Method::GET,
                url,
                format!("more than {MAX_REDIRECTS} redirects"),
            ));
        }
        Ok(a)
    }

    fn unexpected(&self, method: Method, url: &Url, answer: &Answer) -> Error {
        self.http
            .http_error(&method, url, answer.server_error().summary())
    }

    fn signed(&self, url: &Url, body: Vec<u8>) -> Result<Fetched> {
        let payload = serde_json::from_slice::<SignedPayload>(&body).map_err(|e| {
            self.http.http_error(
                &Method::GET,
                url,
                format!("the answer is not a signed TUF document ({{\"signatures\":[…],\"signed\":{{…}}}}): {e}"),
            )
        })?;
        Ok(Fetched { payload, raw: body })
    }

    /// The one retry policy this client waits by (also for callers that repeat a
    /// whole pull → sign → push cycle).
    pub fn retry_policy(&self) -> RetryPolicy {
        self.http.retry
    }

    /// `GET root.json`: the latest root.
    pub fn get_root(&self) -> Result<Fetched> {
        let url = self.url(&["root.json"]);
        let a = self.get(&url, METADATA_CAP)?;
        if !a.status.is_success() {
            return Err(self.unexpected(Method::GET, &url, &a));
        }
        self.signed(&url, a.body)
    }

    /// `GET <n>.root.json`; `None` when the server has no such version (404).
    pub fn get_root_version(&self, version: u64) -> Result<Option<Fetched>> {
        let url = self.url(&[&format!("{version}.root.json")]);
        let a = self.get(&url, METADATA_CAP)?;
        match a.status.as_u16() {
            404 => Ok(None),
            s if (200..300).contains(&s) => self.signed(&url, a.body).map(Some),
            _ => Err(self.unexpected(Method::GET, &url, &a)),
        }
    }

    fn pull_error(&self, url: &Url, sent: String) -> Error {
        Error::Explained(format!(
            "TargetsPullError: GET {}: the server sent {sent}; it is needed to push targets.json back \
             (is tufrepo.url the reposerver's URL?)",
            self.http.shown(url),
        ))
    }

    /// `GET targets.json` with its required `x-ats-role-checksum`.
    pub fn get_targets(&self) -> Result<FetchedTargets> {
        let url = self.url(&["targets.json"]);
        let a = self.get(&url, METADATA_CAP)?;
        if !a.status.is_success() {
            return Err(self.unexpected(Method::GET, &url, &a));
        }
        let checksum = match a.header(ROLE_CHECKSUM).map(Sha256::parse) {
            Some(Ok(c)) => c,
            Some(Err(e)) => {
                return Err(
                    self.pull_error(&url, format!("an invalid {ROLE_CHECKSUM} header ({e})"))
                )
            }
            None => return Err(self.pull_error(&url, format!("no {ROLE_CHECKSUM} header"))),
        };
        let f = self.signed(&url, a.body)?;
        Ok(FetchedTargets {
            payload: f.payload,
            raw: f.raw,
            checksum,
        })
    }

    /// Sends a signed document as a JSON body (with `x-ats-role-checksum` when given).
    /// Never replayed once sent: these requests change server state.
    fn send_json(
        &self,
        method: Method,
        url: &Url,
        doc: &SignedPayload,
        checksum: Option<&str>,
    ) -> Result<Answer> {
        let body = serde_json::to_vec(doc)
            .map_err(|e| Error::Other(format!("cannot encode {}: {e}", self.http.shown(url))))?;
        self.send_body(method, url, body, checksum)
    }

    /// Sends an encoded JSON body (with `x-ats-role-checksum` when given). Never replayed.
    fn send_body(
        &self,
        method: Method,
        url: &Url,
        body: Vec<u8>,
        checksum: Option<&str>,
    ) -> Result<Answer> {
        self.http
            .exchange(method, url, Replay::Once, SMALL_BODY_CAP, &|rb| {
                let rb = rb
                    .header(CONTENT_TYPE, "application/json")
                    .body(body.clone());
                Ok(match checksum {
                    Some(c) => rb.header(ROLE_CHECKSUM, c),
                    None => rb,
                })
            })
    }

    /// `PUT targets` with the checksum of the pulled version. An unclear outcome is
    /// reconciled, not blindly resent (see `reconcile.rs`).
    pub fn put_targets(
        &self,
        targets: &SignedPayload,
        checksum: Option<&str>,
    ) -> Result<PushOutcome> {
        let url = self.url(&["targets"]);
        let body = serde_json::to_vec(targets)
            .map_err(|e| Error::Other(format!("cannot encode {}: {e}", self.http.shown(&url))))?;
        self.put_targets_body(body, targets.version(), checksum)
    }

    /// As [`Self::put_targets`] for a document already encoded: its canonical bytes,
    /// the same the checksum covers, are the body.
    pub fn put_targets_signed(
        &self,
        targets: &Signed,
        version: u64,
        checksum: Option<&str>,
    ) -> Result<PushOutcome> {
        self.put_targets_body(targets.canonical().into_bytes(), Some(version), checksum)
    }

    /// As [`Self::put_targets`] for a body already encoded (`version` is the role's,
    /// for reconciling an unclear outcome).
    pub fn put_targets_body(
        &self,
        body: Vec<u8>,
        version: Option<u64>,
        checksum: Option<&str>,
    ) -> Result<PushOutcome> {
        let url = self.url(&["targets"]);
        if let Some(c) = checksum {
            Sha256::parse(c).map_err(|e| {
                Error::invalid("targets checksum", format!("{e}; run `targets pull` again"))
            })?;
        }
        let a = match checksum {
            // Without a checksum the server's state cannot tell whether it applied a push.
            None => self.send_body(Method::PUT, &url, body, None)?,
            Some(c) => match self.send_reconciled(Method::PUT, &url, &body, checksum, &|| {
                self.observe_targets(&body, c)
            })? {
                reconcile::Sent::Answer(a) => a,
                reconcile::Sent::Applied(checksum) => {
                    return Ok(PushOutcome {
                        checksum,
                        size_limit: None,
                    })
                }
            },
        };
        if a.status.is_success() {
            return Ok(PushOutcome {
                checksum: a.header(ROLE_CHECKSUM).and_then(|c| Sha256::parse(c).ok()),
                size_limit: a
                    .header("x-ats-targets-role-size-limit")
                    .and_then(|s| s.trim().parse().ok()),
            });
        }
        let e = a.server_error();
        let shown = self.http.shown(&url);
        match e.status {
            412 | 428 => {
                let why = if e.status == 428 {
                    "the server requires the checksum of the targets.json it holds, and none was sent"
                } else {
                    "targets.json on the server changed since it was pulled"
                };
                Err(Error::ChecksumConflict(format!(
                    "PUT {shown}: {}\n{why}: run `targets pull` again, re-apply your changes, sign and push",
                    e.summary()
                )))
            }
            400 => Err(self.http.http_error(&Method::PUT, &url, e.summary_with_causes())),
            409 => Err(self.http.http_error(
                &Method::PUT,
                &url,
                format!(
                    "{}\nthe targets version must be exactly the server's version + 1{}: pull, sign (which bumps the version) and push",
                    e.summary(),
                    version.map(|v| format!(" (this targets.json has version {v})")).unwrap_or_default()
                ),
            )),
            _ => Err(self.http.http_error(&Method::PUT, &url, e.summary())),
        }
    }

    /// `POST root`: a new root signed by the old and the new root keys. An unclear
    /// outcome is reconciled, not blindly resent (see `reconcile.rs`).
    pub fn post_root(&self, root: &SignedPayload) -> Result<()> {
        let url = self.url(&["root"]);
        let body = serde_json::to_vec(root)
            .map_err(|e| Error::Other(format!("cannot encode {}: {e}", self.http.shown(&url))))?;
        let a = match self
            .send_reconciled(Method::POST, &url, &body, None, &|| self.observe_root(root))?
        {
            reconcile::Sent::Answer(a) => a,
            reconcile::Sent::Applied(_) => return Ok(()),
        };
        if a.status.is_success() {
            return Ok(());
        }
        let e = a.server_error();
        if e.code() == Some("invalid_root_role") {
            return Err(Error::Explained(format!(
                "POST {}: the server rejected the new root.json: {}",
                self.http.shown(&url),
                e.summary_with_causes()
            )));
        }
        Err(self.http.http_error(&Method::POST, &url, e.summary()))
    }

    fn key_url(&self, keyid: &str) -> Result<Url> {
        let keyid = KeyId::parse(keyid)?;
        Ok(self.url(&["root", "private_keys", keyid.as_str()]))
    }

    /// `GET root/private_keys/<keyid>`: the online key pair JSON
    /// (`{"keytype":…,"keyval":{"public":…,"private":…}}`), in a zeroizing buffer.
    pub fn get_private_key(&self, keyid: &str) -> Result<Zeroizing<String>> {
        let url = self.key_url(keyid)?;
        let a = self.get(&url, SMALL_BODY_CAP)?;
        let body = Zeroizing::new(a.body);
        if !a.status.is_success() {
            return Err(self.http.http_error(
                &Method::GET,
                &url,
                ServerError::parse(a.status, &body).summary(),
            ));
        }
        let text = std::str::from_utf8(&body)
            .ok()
            .filter(|t| {
                serde_json::from_str::<serde::de::IgnoredAny>(t).is_ok()
                    && t.trim_start().starts_with('{')
            })
            .ok_or_else(|| {
                self.http
                    .http_error(&Method::GET, &url, "the answer is not a JSON key pair")
            })?;
        Ok(Zeroizing::new(text.to_string()))
    }

    /// `DELETE root/private_keys/<keyid>`.
    pub fn delete_private_key(&self, keyid: &str) -> Result<()> {
        let url = self.key_url(keyid)?;
        let a = self.http.exchange(
            Method::DELETE,
            &url,
            Replay::Idempotent,
            SMALL_BODY_CAP,
            &|rb| Ok(rb),
        )?;
        if !a.status.is_success() {
            return Err(self.unexpected(Method::DELETE, &url, &a));
        }
        Ok(())
    }

    fn delegation_url(&self, name: &str) -> Result<Url> {
        DelegationName::parse(name)?;
        Ok(self.url(&["delegations", &format!("{name}.json")]))
    }

    /// `PUT delegations/<name>.json`.
    pub fn put_delegation(&self, name: &str, delegation: &SignedPayload) -> Result<()> {
        let url = self.delegation_url(name)?;
        let a = self.send_json(Method::PUT, &url, delegation, None)?;
        if a.status.is_success() {
            return Ok(());
        }
        Err(self
            .http
            .http_error(&Method::PUT, &url, a.server_error().summary_with_causes()))
    }

    /// A client for a credentials zip: its `tufrepo.url` and auth settings.
    pub fn from_credentials(
        creds: &crate::credentials::Credentials,
        options: &ClientOptions,
    ) -> Result<Self> {
        let url = creds.server_url("tufrepo.url")?;
        let auth = match creds.auth()? {
            AuthConfig::None => ClientAuth::None,
            AuthConfig::OAuth2(o) => ClientAuth::OAuth2(o),
            AuthConfig::MutualTls { .. } => ClientAuth::mutual_tls(
                Zeroizing::new(creds.entry("client_auth.p12").unwrap_or_default().to_vec()),
                creds.entry("server.p12").map(<[u8]>::to_vec),
            ),
        };
        Self::new(&url, auth, options)
    }

    /// A client for the URL a device uses (aktualizr's `uptane.repo_server`, e.g.
    /// `<tufrepo.url>/api/v1/user_repo`): paths are joined to it as given.
    pub fn at_repo_url(repo_url: &str, auth: ClientAuth, options: &ClientOptions) -> Result<Self> {
        let trimmed = repo_url.trim().trim_end_matches('/');
        let api = Url::parse(trimmed)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && !u.cannot_be_a_base())
            .ok_or_else(|| Error::invalid("--url", format!("{trimmed:?} is not an http(s) URL")))?;
        let http = Transport::new(&api, auth, options)?;
        Ok(ReposerverClient { api, http })
    }

    /// `GET <path>` as a device fetches metadata: the bytes, or `None` for a 404.
    /// `path` is split at `/` into percent-encoded segments.
    pub fn get_optional(&self, path: &str) -> Result<Option<Vec<u8>>> {
        let segments: Vec<&str> = path.split('/').collect();
        let url = self.url(&segments);
        let a = self.get(&url, METADATA_CAP)?;
        match a.status.as_u16() {
            404 => Ok(None),
            s if (200..300).contains(&s) => Ok(Some(a.body)),
            _ => Err(self.unexpected(Method::GET, &url, &a)),
        }
    }

    /// `HEAD targets/<filename>`: whether the server can hand the file to a device
    /// (2xx, or a redirect to its URI). `false` for 404 and 417 (no URI).
    pub fn target_downloadable(&self, filename: &str) -> Result<bool> {
        let url = self.url(&["targets", filename]);
        let a = self.http.exchange(
            Method::HEAD,
            &url,
            Replay::Idempotent,
            SMALL_BODY_CAP,
            &|rb| Ok(rb),
        )?;
        match a.status.as_u16() {
            404 | 417 => Ok(false),
            s if (200..400).contains(&s) => Ok(true),
            _ => Err(self.unexpected(Method::HEAD, &url, &a)),
        }
    }

    /// `GET delegations/<name>.json`, the bytes as served.
    pub fn get_delegation(&self, name: &str) -> Result<Vec<u8>> {
        let url = self.delegation_url(name)?;
        let a = self.get(&url, METADATA_CAP)?;
        if !a.status.is_success() {
            return Err(self.unexpected(Method::GET, &url, &a));
        }
        Ok(a.body)
    }
}
