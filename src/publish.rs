//! `publish`: one command that registers an image as a target, safe with many builders
//! pushing at once. It reads everything from the credentials zip (the private key stays
//! in memory), walks the server's root chain from the zip's root, then loops
//! pull → verify → add → sign → push, re-pulling after a 412/428 with jittered
//! exponential backoff.

use crate::credentials::{AuthConfig, Credentials};
use crate::error::{Error, Result};
use crate::expiry::ExpiryChoice;
use crate::fsutil;
use crate::http::{ClientAuth, ClientOptions, ReposerverClient};
use crate::keys::PrivateKey;
use crate::metadata::{Expires, NewTarget, SignedPayload, TargetFormat, TargetsRole};
use crate::verify::{self, TrustedRoot};
use serde_json::Value;
use std::path::PathBuf;
use zeroize::Zeroizing;

/// The reposerver refuses targets.json documents of this many bytes or more
/// (canonical form; reference/reposerver.md `targetsFileSizeLimit`).
pub const TARGETS_SIZE_LIMIT: usize = 8_286_208;

/// The one size rule for a signed targets.json of `len` canonical bytes: an
/// [`Error::Explained`] at or over [`TARGETS_SIZE_LIMIT`], a warning from 75 % on.
/// `remedy` says how to shrink it.
pub fn check_targets_size(len: usize, remedy: &str) -> Result<()> {
    if len >= TARGETS_SIZE_LIMIT {
        return Err(Error::Explained(format!(
            "targets.json would be {len} bytes, over the server's limit of {TARGETS_SIZE_LIMIT}: {remedy}"
        )));
    }
    if len * 4 >= TARGETS_SIZE_LIMIT * 3 {
        log::warn!(
            "targets.json is {len} bytes, {}% of the server's limit of {TARGETS_SIZE_LIMIT} bytes; {remedy}",
            len * 100 / TARGETS_SIZE_LIMIT
        );
    }
    Ok(())
}
/// Metadata closer to expiry than this is refreshed even when the target is unchanged.
const NEAR_EXPIRY: chrono::Duration = chrono::Duration::days(7);

/// Where the target's hash and length come from.
#[derive(Clone, Debug)]
pub enum ImageSource {
    File(PathBuf),
    Given { sha256: String, length: u64 },
}

#[derive(Clone, Debug)]
pub struct PublishRequest {
    pub credentials: PathBuf,
    pub name: String,
    pub version: String,
    pub hardware_ids: Vec<String>,
    pub image: ImageSource,
    pub format: TargetFormat,
    pub url: Option<String>,
    pub custom: Option<serde_json::Map<String, Value>>,
    pub expiry: ExpiryChoice,
    pub upload: bool,
    /// Extra attempts after a concurrent push.
    pub retries: u32,
    pub dry_run: bool,
    pub output: Option<PathBuf>,
    pub keep_versions: Option<usize>,
    pub options: ClientOptions,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct PublishOutcome {
    pub target: String,
    pub sha256: String,
    pub length: u64,
    /// The targets.json version now on the server (or that would be, for a dry run).
    pub targets_version: u64,
    pub attempts: u32,
    /// false when the identical target was already there (or for a dry run).
    pub pushed: bool,
    pub dry_run: bool,
    pub removed: Vec<String>,
}

impl PublishOutcome {
    pub fn summary(&self) -> String {
        let what = if self.dry_run {
            "dry run: would publish"
        } else if self.pushed {
            "published"
        } else {
            "already published (nothing pushed)"
        };
        format!(
            "{what} {} sha256 {} length {} in targets.json version {} (attempts: {})",
            self.target, self.sha256, self.length, self.targets_version, self.attempts
        )
    }
}

/// Everything publish needs from the zip, checked up front.
struct Account {
    client: ReposerverClient,
    root: SignedPayload,
    key: PrivateKey,
}

fn open_account(req: &PublishRequest) -> Result<Account> {
    let creds = Credentials::read(&req.credentials)?;
    let zip = req.credentials.display().to_string();
    let missing: Vec<&str> = ["root.json", "targets.pub", "targets.sec", "tufrepo.url"]
        .into_iter()
        .filter(|e| creds.entry(e).is_none())
        .collect();
    if !missing.is_empty() {
        return Err(Error::Explained(format!(
            "{zip} cannot sign offline: it has no {}. Export one with `ota-sign export-credentials --repo <repo> --key-name <offline targets key> --output offline-credentials.zip`",
            missing.join(", ")
        )));
    }
    let url = creds.server_url("tufrepo.url")?;
    let auth = match creds.auth()? {
        AuthConfig::None => ClientAuth::None,
        AuthConfig::OAuth2(o) => ClientAuth::OAuth2(o),
        AuthConfig::MutualTls { .. } => ClientAuth::mutual_tls(
            Zeroizing::new(creds.entry("client_auth.p12").unwrap_or_default().to_vec()),
            creds.entry("server.p12").map(<[u8]>::to_vec),
        ),
    };
    let root = creds
        .root()?
        .ok_or_else(|| Error::invalid(zip.clone(), "has no root.json"))?;
    verify::verify_self_signed_root(&root, &format!("{zip}: root.json"))?;
    let key = creds
        .targets_key()?
        .ok_or_else(|| Error::invalid(zip.clone(), "has no targets key"))?;
    let client = ReposerverClient::new(&url, auth, &req.options)?;
    Ok(Account { client, root, key })
}

/// The server's latest root, reached from the zip's root by the chain rule.
fn latest_root(account: &Account) -> Result<(TrustedRoot, SignedPayload)> {
    let chain = verify::walk_root_chain(
        &account.root,
        "root.json from the credentials",
        10_000,
        |v| {
            account
                .client
                .get_root_version(v)
                .map(|f| f.map(|f| f.payload))
        },
    )?;
    let latest = chain
        .last()
        .cloned()
        .unwrap_or_else(|| account.root.clone());
    let trusted = TrustedRoot::from_signed(&latest.signed, "root.json")?;
    let expires = crate::metadata::RootRole::from_signed(&latest.signed, "root.json")?.expires;
    if expires.is_past() {
        return Err(Error::Explained(format!(
            "the server's root.json version {} expired at {expires}: devices refuse every targets.json it signs. Renew the root (root pull --force, root increment-version, root sign, root push) before publishing",
            latest.version().unwrap_or(0)
        )));
    }
    Ok((trusted, latest))
}

pub fn publish(req: &PublishRequest) -> Result<PublishOutcome> {
    if req.keep_versions == Some(0) {
        return Err(Error::Usage(
            "--keep-versions must be at least 1 (the version being published)".into(),
        ));
    }
    let account = open_account(req)?;
    let (trusted, latest) = latest_root(&account)?;
    let key_id = account.key.key_id().to_string();
    let expected = trusted.role_key_ids("targets");
    if !expected.contains(&key_id) {
        return Err(Error::Explained(format!(
            "the targets key in {} ({key_id}) is not a targets key of the server's root.json version {}, which expects {}. \
             Export the offline targets key again (ota-sign export-credentials) after move-offline",
            req.credentials.display(),
            latest.version().unwrap_or(0),
            expected.join(", ")
        )));
    }

    let (sha256, length) = match &req.image {
        ImageSource::Given { sha256, length } => (sha256.clone(), *length),
        ImageSource::File(path) => fsutil::hash_file(path)?,
    };
    let target = NewTarget {
        name: req.name.clone(),
        version: req.version.clone(),
        sha256: sha256.clone(),
        length,
        hardware_ids: req.hardware_ids.clone(),
        format: req.format,
        url: req.url.clone(),
        cli_uploaded: req.upload,
        custom_meta: req.custom.clone(),
    };
    target.validate()?;
    let filename = target.filename();

    if req.upload && !req.dry_run {
        let ImageSource::File(path) = &req.image else {
            return Err(Error::Usage("--upload needs --image".into()));
        };
        let bar = crate::http::progress_bar(length);
        account.client.upload_target(&filename, path, &bar)?;
        bar.finish_and_clear();
        log::info!("uploaded {} as {filename}", path.display());
    }

    let attempts_allowed = req.retries + 1;
    for attempt in 1..=attempts_allowed {
        let pulled = account.client.get_targets()?;
        let current = verify::verified_targets(&trusted, &pulled.payload)?;
        let now = chrono::Utc::now();
        if current.expires.is_past() {
            log::warn!("the server's targets.json expired at {}", current.expires);
        } else if current.expires.datetime() < now + NEAR_EXPIRY {
            log::warn!(
                "the server's targets.json expires soon, at {}",
                current.expires
            );
        }
        if !req.dry_run
            && already_there(&current, &target)
            && current.expires.datetime() > now + NEAR_EXPIRY
        {
            return Ok(PublishOutcome {
                target: filename,
                sha256,
                length,
                targets_version: current.version,
                attempts: attempt,
                pushed: false,
                dry_run: false,
                removed: vec![],
            });
        }
        let mut next = current.clone();
        target.apply(&mut next, Expires::new(now))?;
        let removed = match req.keep_versions {
            Some(k) => drop_old_versions(&mut next, &req.name, &filename, k),
            None => vec![],
        };
        next.version = current.version + 1;
        next.expires = req.expiry.resolve(
            Some(current.expires),
            crate::expiry::TARGETS_DAYS,
            now,
            false,
        )?;
        let signed = SignedPayload::sign(next.to_signed()?, &[&account.key])?;
        let size = signed.canonical().as_bytes().len();
        check_targets_size(size, "remove old targets, e.g. with --keep-versions 3")?;
        let outcome = |pushed| PublishOutcome {
            target: filename.clone(),
            sha256: sha256.clone(),
            length,
            targets_version: next.version,
            attempts: attempt,
            pushed,
            dry_run: req.dry_run,
            removed: removed.clone(),
        };
        if req.dry_run {
            if let Some(out) = &req.output {
                let v = crate::error::to_json_value(&signed, "targets.json")?;
                fsutil::write_atomic(
                    out,
                    crate::canonical::to_pretty(&v).as_bytes(),
                    fsutil::PUBLIC_FILE,
                )?;
            }
            return Ok(outcome(false));
        }
        match account.client.put_targets(&signed, Some(&pulled.checksum)) {
            Ok(_) => return Ok(outcome(true)),
            Err(Error::ChecksumConflict(msg)) if attempt < attempts_allowed => {
                let delay = req.options.retry_policy().delay(attempt - 1, None);
                log::info!("another builder pushed first (attempt {attempt} of {attempts_allowed}); pulling again in {} ms", delay.as_millis());
                log::debug!("{msg}");
                std::thread::sleep(delay);
            }
            Err(Error::ChecksumConflict(msg)) => {
                return Err(Error::ChecksumConflict(format!(
                    "gave up after {attempts_allowed} attempts: {msg}"
                )))
            }
            Err(e) => return Err(e),
        }
    }
    Err(Error::Other("no attempt was made".into()))
}

/// The identical target is already published.
fn already_there(role: &TargetsRole, target: &NewTarget) -> bool {
    let Some(item) = role.targets.get(&target.filename()) else {
        return false;
    };
    let custom = item.custom.as_ref();
    let field = |k: &str| {
        custom
            .and_then(|c| c.get(k))
            .cloned()
            .unwrap_or(Value::Null)
    };
    item.hashes.get("sha256") == Some(&target.sha256)
        && item.length == target.length
        && field("hardwareIds") == Value::from(target.hardware_ids.clone())
        && field("targetFormat") == target.format.as_str()
        && field("uri") == target.url.clone().map(Value::from).unwrap_or(Value::Null)
        && target
            .custom_meta
            .as_ref()
            .map_or(true, |m| m.iter().all(|(k, v)| field(k) == *v))
}

/// Keeps the newest `keep` versions of `name` (the one being published included).
fn drop_old_versions(
    role: &mut TargetsRole,
    name: &str,
    current: &str,
    keep: usize,
) -> Vec<String> {
    let mut others: Vec<(String, String)> = role
        .targets
        .iter()
        .filter(|(f, item)| {
            f.as_str() != current
                && item
                    .custom
                    .as_ref()
                    .and_then(|c| c.get("name"))
                    .and_then(Value::as_str)
                    == Some(name)
        })
        .map(|(f, item)| {
            let created = item
                .custom
                .as_ref()
                .and_then(|c| c.get("createdAt"))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            (created, f.clone())
        })
        .collect();
    others.sort();
    let excess = others.len().saturating_sub(keep - 1);
    let removed: Vec<String> = others.into_iter().take(excess).map(|(_, f)| f).collect();
    for f in &removed {
        role.targets.remove(f);
    }
    removed
}
