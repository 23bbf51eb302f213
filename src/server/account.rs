//! `init-account`: creates the repository (four online keys, root v1) and the account
//! settings, and writes credentials.zip the way OTA Connect's quickstart does.
//!
//! `account.json` (0600) holds what `serve` needs besides the repository:
//! `{"format":1,"repoId","keyType","auth":"none"|"oauth2"|"mtls",
//!   "oauth2":{"clientId","clientSecret","scope"}|null,"adminToken"}`.
//! The authentication mode is chosen here, once, because credentials.zip depends on it.

use super::errors::{random_hex, uuid_v4};
use super::{keyserver, state, tls};
use crate::credentials::write_zip;
use crate::error::{Error, Result};
use crate::fsutil;
use crate::keys::KeyType;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// How clients authenticate.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    /// No authentication (OTA CE): `treehub.json` says `"no_auth": true`.
    None,
    /// OAuth2 client credentials: `POST /token`, then `Authorization: Bearer` on
    /// every repository route.
    Oauth2,
    /// Mutual TLS: https, and a client certificate issued by the server's CA.
    Mtls,
}

impl std::str::FromStr for AuthMode {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "none" => Ok(AuthMode::None),
            "oauth2" => Ok(AuthMode::Oauth2),
            "mtls" => Ok(AuthMode::Mtls),
            _ => Err(format!("unknown auth mode {s:?}: use none, oauth2 or mtls")),
        }
    }
}

#[derive(Serialize, Deserialize, Clone)]
#[serde(rename_all = "camelCase")]
/// The one OAuth2 client of an `oauth2` account (its secret is zeroized on drop).
pub struct OAuth2Account {
    /// `client_id` of HTTP Basic at `POST /token`.
    pub client_id: String,
    /// `client_secret` of HTTP Basic at `POST /token`.
    pub client_secret: String,
    /// The scope announced in treehub.json and token answers.
    pub scope: String,
}

impl Drop for OAuth2Account {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.client_secret);
    }
}

#[derive(Serialize, Deserialize, Clone)]
#[serde(rename_all = "camelCase")]
/// `account.json`: what `serve` needs besides the repository (see the module docs).
pub struct Account {
    /// File format version, 1.
    pub format: u32,
    /// The repository id (a UUID), for `x-ats-tuf-repo-id` and `/api/v1/repo/<id>/`.
    pub repo_id: String,
    /// Key type of the online keys (`ed25519` or `rsa`).
    pub key_type: String,
    /// How clients authenticate.
    pub auth: AuthMode,
    /// The OAuth2 client, in `oauth2` mode.
    pub oauth2: Option<OAuth2Account>,
    /// Guards the `/_admin/` routes (header `x-ota-admin-token`).
    pub admin_token: String,
}

impl std::fmt::Debug for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Account")
            .field("repo_id", &self.repo_id)
            .field("auth", &self.auth)
            .finish_non_exhaustive()
    }
}

/// `account.json` of data directory `dir`.
pub fn account_path(dir: &Path) -> PathBuf {
    dir.join("account.json")
}

/// Where the admin token is also written (0600), for tests and operators.
pub fn admin_token_path(dir: &Path) -> PathBuf {
    dir.join("admin.token")
}

impl Account {
    /// Reads `account.json`; a directory without one was not made by `init-account`.
    pub fn load(dir: &Path) -> Result<Account> {
        let p = account_path(dir);
        if !p.exists() {
            return Err(Error::Usage(format!(
                "{} is not an ota-reposerver data directory (no account.json); run `ota-reposerver init-account` first",
                dir.display()
            )));
        }
        fsutil::read_json(&p)
    }

    fn save(&self, dir: &Path) -> Result<()> {
        let bytes = Zeroizing::new(
            serde_json::to_vec_pretty(self).map_err(|e| Error::Other(e.to_string()))?,
        );
        fsutil::write_atomic(&account_path(dir), &bytes, fsutil::PRIVATE_FILE)?;
        fsutil::write_atomic(
            &admin_token_path(dir),
            self.admin_token.as_bytes(),
            fsutil::PRIVATE_FILE,
        )
    }

    /// The URL scheme `serve` uses.
    pub fn scheme(&self) -> &'static str {
        if self.auth == AuthMode::Mtls {
            "https"
        } else {
            "http"
        }
    }
}

/// What `init-account` is asked for.
pub struct InitOptions {
    /// The new data directory (must not hold an account).
    pub data_dir: PathBuf,
    /// Key type of the four online keys (Ed25519 or RSA).
    pub key_type: KeyType,
    /// How clients will authenticate.
    pub auth: AuthMode,
    /// Base URL written to `tufrepo.url` (needed with `credentials`).
    pub url: Option<String>,
    /// Where to write credentials.zip, if anywhere.
    pub credentials: Option<PathBuf>,
}

/// Creates the repository and account in `opts.data_dir` (which must not hold one).
pub fn init_account(opts: &InitOptions) -> Result<Account> {
    if account_path(&opts.data_dir).exists() {
        return Err(Error::Usage(format!(
            "{} already holds an account",
            opts.data_dir.display()
        )));
    }
    if opts.credentials.is_some() && opts.url.is_none() {
        return Err(Error::Usage(
            "--credentials needs --url (the server's base URL for tufrepo.url)".into(),
        ));
    }
    if matches!(opts.key_type, KeyType::EcPrime256v1) {
        return Err(Error::Usage("--key-type must be ed25519 or rsa".into()));
    }
    keyserver::create(&opts.data_dir, opts.key_type)?;
    if opts.auth == AuthMode::Mtls {
        tls::generate(&opts.data_dir)?;
    }
    let account = Account {
        format: 1,
        repo_id: uuid_v4(),
        key_type: opts.key_type.as_str().to_string(),
        auth: opts.auth,
        oauth2: match opts.auth {
            AuthMode::Oauth2 => Some(OAuth2Account {
                client_id: uuid_v4(),
                client_secret: random_hex(24)?,
                scope: "ota-treehub/namespace.default".into(),
            }),
            _ => None,
        },
        admin_token: random_hex(24)?,
    };
    account.save(&opts.data_dir)?;
    if let (Some(url), Some(out)) = (&opts.url, &opts.credentials) {
        let store = state::Store::open(&opts.data_dir)?;
        write_credentials(&opts.data_dir, &account, &store, url, out)?;
    }
    Ok(account)
}

/// Writes credentials.zip for `url`: `treehub.json`, `tufrepo.url`, `root.json` (the
/// latest root), `targets.pub`/`targets.sec` (the online targets key, while it is
/// online) and, with mutual TLS, `client_auth.p12` and `server.p12`.
pub fn write_credentials(
    dir: &Path,
    account: &Account,
    store: &state::Store,
    url: &str,
    out: &Path,
) -> Result<()> {
    let url = url.trim_end_matches('/');
    // No `ostree` section: this server has no Treehub, and naming one would send
    // garage-push / OSTree builds to a URL that does not exist.
    let treehub = match (&account.auth, &account.oauth2) {
        (AuthMode::Oauth2, Some(o)) => json!({
            "oauth2": {"server": format!("{url}/token"), "client_id": o.client_id, "client_secret": o.client_secret, "scope": o.scope},
        }),
        (AuthMode::Mtls, _) => json!({}),
        _ => json!({"no_auth": true}),
    };
    let treehub = Zeroizing::new(
        serde_json::to_vec_pretty(&treehub).map_err(|e| Error::Other(e.to_string()))?,
    );
    let root = store.root().map_err(|e| Error::Other(e.description))?;
    let mut entries: Vec<(&str, Vec<u8>)> = vec![
        ("treehub.json", treehub.to_vec()),
        ("tufrepo.url", url.as_bytes().to_vec()),
        ("root.json", root.bytes.to_vec()),
    ];
    let targets_key = store.role_key_files("targets");
    if let Some((public, secret)) = &targets_key {
        entries.push(("targets.pub", public.as_bytes().to_vec()));
        entries.push(("targets.sec", secret.as_bytes().to_vec()));
    }
    if account.auth == AuthMode::Mtls {
        entries.push(("client_auth.p12", tls::client_p12(dir)?.to_vec()));
        entries.push(("server.p12", tls::server_p12(dir)?));
    }
    let refs: Vec<(&str, &[u8])> = entries.iter().map(|(n, d)| (*n, d.as_slice())).collect();
    let result = write_zip(out, &refs);
    for (_, mut d) in entries {
        zeroize::Zeroize::zeroize(&mut d);
    }
    result
}
