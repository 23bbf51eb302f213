//! `publish`: one command that registers an image as a target, safe with many builders
//! pushing at once. It reads everything from the credentials zip (the private key stays
//! in memory), walks the server's root chain from the zip's root, then loops
//! pull → verify → add → sign → push, re-pulling after a 412/428 with jittered
//! exponential backoff.

use crate::credentials::Credentials;
use crate::error::{Error, Result};
use crate::expiry::ExpiryChoice;
use crate::fsutil;
use crate::http::{ClientOptions, Replace, ReposerverClient};
use crate::keyref::{self, KeyHandle};
use crate::metadata::{
    Expires, NewTarget, Signed, SignedPayload, TargetFormat, TargetItem, TargetsRole,
};
use crate::schema::{HardwareId, Sha256};
use crate::verify::{self, TrustedRoot};
use chrono::{DateTime, Utc};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// The reposerver refuses targets.json documents of this many bytes or more
/// (canonical form; reference/reposerver.md `targetsFileSizeLimit`).
pub const TARGETS_SIZE_LIMIT: usize = 8_286_208;

/// Whether a targets.json of `len` bytes is close enough to `limit` (75 %, where
/// garage-sign warns) to say so.
fn is_near(len: u64, limit: u64) -> bool {
    len * 4 >= limit * 3
}

/// Whether a targets.json of `len` canonical bytes is close enough to
/// [`TARGETS_SIZE_LIMIT`] (75 %) to warn about.
pub fn targets_size_is_near_limit(len: usize) -> bool {
    is_near(len as u64, TARGETS_SIZE_LIMIT as u64)
}

/// The one size rule for a targets.json of `len` canonical bytes about to be sent: an
/// [`Error::Explained`] at or over [`TARGETS_SIZE_LIMIT`] (the server would answer 400
/// `large_targets_file_size`; refusing first means nothing is uploaded or pushed),
/// a warning from 75 % on. `remedy` says how to shrink it.
pub fn check_targets_size(len: usize, remedy: &str) -> Result<()> {
    if len >= TARGETS_SIZE_LIMIT {
        return Err(Error::Explained(format!(
            "targets.json would be {len} bytes, over the server's limit of {TARGETS_SIZE_LIMIT}: {remedy}"
        )));
    }
    warn_targets_size(len as u64, TARGETS_SIZE_LIMIT as u64, remedy);
    Ok(())
}

/// Warns when a targets.json of `len` bytes is near or over `limit`. `targets sign`
/// only warns: signing is local, and the limit is the server's to enforce (its
/// `x-ats-targets-role-size-limit`); `targets push` and `publish` refuse through
/// [`check_targets_size`] before sending anything.
pub fn warn_targets_size(len: u64, limit: u64, remedy: &str) {
    if len >= limit {
        log::warn!(
            "targets.json is {len} bytes, over the server's limit of {limit} bytes: \
             `targets push` and `publish` will refuse it; {remedy}"
        );
    } else if is_near(len, limit) {
        log::warn!(
            "targets.json is {len} bytes, {}% of the server's limit of {limit} bytes; {remedy}",
            len * 100 / limit.max(1)
        );
    }
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
    /// None: the target's sha256 (for OSTree, the commit), as meta-updater names them.
    pub version: Option<String>,
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
    /// A zip that cannot sign offline is a warning and a skip, not an error.
    pub skip_unless_offline: bool,
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
    /// A new targets.json was signed (pushed, or would be for a dry run).
    pub changed: bool,
    /// true when the image was uploaded by this run.
    pub uploaded: bool,
    pub dry_run: bool,
    pub removed: Vec<String>,
    /// Expiry of the server's targets.json after this run (the pushed one if pushed).
    pub targets_expires: Expires,
    /// Expiry of the server's latest root.json.
    pub root_expires: Option<Expires>,
    /// The target's entry as it is (or would be) in targets.json.
    pub item: TargetItem,
    /// Everything logged as a warning, for callers that only read the JSON.
    pub warnings: Vec<String>,
}

/// `--skip-unless-offline` with a zip that cannot sign offline: nothing was done.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Skipped {
    pub target: String,
    pub skipped: bool,
    pub reason: String,
}

/// What `publish` did.
#[derive(Clone, Debug, serde::Serialize)]
#[serde(untagged)]
pub enum Published {
    Done(PublishOutcome),
    Skipped(Skipped),
}

impl Published {
    /// The one-line summary printed without `--json`.
    pub fn summary(&self) -> String {
        match self {
            Published::Done(o) => o.summary(),
            Published::Skipped(s) => format!("skipped {}: {}", s.target, s.reason),
        }
    }
}

impl PublishOutcome {
    pub fn summary(&self) -> String {
        let what = match (self.dry_run, self.changed) {
            (true, true) => "dry run: would publish",
            (true, false) => "dry run: already published (nothing would be pushed)",
            (false, true) => "published",
            (false, false) => "already published (nothing pushed)",
        };
        format!(
            "{what} {} sha256 {} length {} in targets.json version {} (attempts: {})",
            self.target, self.sha256, self.length, self.targets_version, self.attempts
        )
    }
}

/// Everything publish needs from the zip, checked up front.
pub struct Account {
    pub client: ReposerverClient,
    root: SignedPayload,
    key: KeyHandle,
}

impl Account {
    /// An account from parts: a client, the trust anchor (a root.json the caller
    /// trusts) and the targets key (e.g. a local repository's, for `refresh --repo`).
    pub fn new(client: ReposerverClient, root: SignedPayload, key: KeyHandle) -> Self {
        Account { client, root, key }
    }
}

/// A zip that lacks what offline signing needs (root.json, the targets key pair,
/// tufrepo.url): `Err(reason)`.
fn offline_entries(creds: &Credentials, zip: &str) -> std::result::Result<(), String> {
    // A token-backed zip names its targets key in targets.pkcs11 instead.
    let secret = if creds.entry(keyref::TOKEN_ENTRY).is_some() {
        keyref::TOKEN_ENTRY
    } else {
        "targets.sec"
    };
    let missing: Vec<&str> = ["root.json", "targets.pub", secret, "tufrepo.url"]
        .into_iter()
        .filter(|e| creds.entry(e).is_none())
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(format!(
        "{zip} cannot sign offline: it has no {}. Export one with `ota-sign export-credentials --repo <repo> --key-name <offline targets key> --output offline-credentials.zip`",
        missing.join(", ")
    ))
}

/// The account of an offline zip; `Ok(Err(reason))` when the zip cannot sign offline.
fn open_account(
    credentials: &Path,
    options: &ClientOptions,
) -> Result<std::result::Result<Account, String>> {
    let creds = Credentials::read(credentials)?;
    let zip = credentials.display().to_string();
    if let Err(reason) = offline_entries(&creds, &zip) {
        return Ok(Err(reason));
    }
    let root = creds
        .root()?
        .ok_or_else(|| Error::invalid(zip.clone(), "has no root.json"))?;
    verify::verify_self_signed_root(&root, &format!("{zip}: root.json"))?;
    let key = targets_signer(&creds, &zip)?;
    let client = ReposerverClient::from_credentials(&creds, options)?;
    Ok(Ok(Account { client, root, key }))
}

/// The zip's targets key: `targets.sec`, or the token key `targets.pkcs11` names (the
/// PIN comes from the environment or a pin-source file, never from the zip), checked
/// against `targets.pub`.
fn targets_signer(creds: &Credentials, zip: &str) -> Result<KeyHandle> {
    let Some((uri, public)) = keyref::zip_token_reference(creds, zip)? else {
        let key = creds
            .targets_key()?
            .ok_or_else(|| Error::invalid(zip, "has no targets key"))?;
        return KeyHandle::software(&key, &format!("{zip}: targets.sec"));
    };
    let key = KeyHandle::token(&uri)?;
    if public.spki_der() != key.public().spki_der() {
        return Err(Error::key(
            format!("{zip}: {}", keyref::TOKEN_ENTRY),
            format!(
                "the token key is {} but targets.pub is {}: the zip's key pair is broken",
                key.key_id(),
                public.key_id()
            ),
        ));
    }
    Ok(key)
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

/// An offline account bound to the server's latest root, whose targets key is the
/// zip's: what any edit of the server's targets.json starts from.
pub struct Session {
    pub account: Account,
    pub trusted: TrustedRoot,
    /// The server's latest root.json.
    pub root: SignedPayload,
}

impl Session {
    /// Opens the zip and walks the root chain; `Ok(Err(reason))` when the zip cannot
    /// sign offline.
    pub fn open(
        credentials: &Path,
        options: &ClientOptions,
    ) -> Result<std::result::Result<Session, String>> {
        let account = match open_account(credentials, options)? {
            Ok(a) => a,
            Err(reason) => return Ok(Err(reason)),
        };
        Self::bind(account, &credentials.display().to_string()).map(Ok)
    }

    /// Walks the server's root chain from the account's root and checks that its key
    /// is a targets key of the latest root; `origin` names where the key came from.
    pub fn bind(account: Account, origin: &str) -> Result<Session> {
        let (trusted, root) = latest_root(&account)?;
        let key_id = account.key.key_id().to_string();
        let expected = trusted.role_key_ids("targets");
        if !expected.contains(&key_id) {
            return Err(Error::Explained(format!(
                "the targets key in {} ({key_id}) is not a targets key of the server's root.json version {}, which expects {}. \
                 Export the offline targets key again (ota-sign export-credentials) after move-offline",
                origin,
                root.version().unwrap_or(0),
                expected.join(", ")
            )));
        }
        Ok(Session {
            account,
            trusted,
            root,
        })
    }

    /// The server's targets.json, verified against the trusted root.
    pub fn pull(&self) -> Result<(TargetsRole, String)> {
        let pulled = self.account.client.get_targets()?;
        let current = verify::verified_targets(&self.trusted, &pulled.payload)?;
        Ok((current, pulled.checksum.into_string()))
    }

    /// Expiry of the server's latest root.json.
    pub fn root_expires(&self) -> Option<Expires> {
        self.root
            .signed
            .get("expires")
            .and_then(|e| serde_json::from_value(e.clone()).ok())
    }
}

/// How [`plan`] edits targets.json: everything but the target itself.
#[derive(Clone, Debug)]
pub struct Policy<'a> {
    pub keep_versions: Option<usize>,
    pub expiry: &'a ExpiryChoice,
    /// Re-sign an unchanged targets.json that expires sooner than this.
    pub refresh_within: chrono::Duration,
}

/// What an edit step decided for one pulled targets.json.
#[derive(Clone, Debug, PartialEq)]
pub enum Plan {
    /// Nothing to push.
    Unchanged,
    /// Sign and push this role; `removed` are the targets it drops.
    Next {
        role: TargetsRole,
        removed: Vec<String>,
    },
}

/// The decision of `publish` as a pure function: `Unchanged` when the identical
/// target is there and targets.json is not close to expiry, else the next role.
pub fn plan(
    current: &TargetsRole,
    target: &NewTarget,
    policy: &Policy,
    now: DateTime<Utc>,
) -> Result<Plan> {
    if already_there(current, target) && current.expires.datetime() > now + policy.refresh_within {
        return Ok(Plan::Unchanged);
    }
    let mut target = target.clone();
    // Re-signing an uploaded target keeps it served from the server's storage.
    target.cli_uploaded |= stored(current, &target);
    let filename = target.filename();
    let mut next = current.clone();
    target.apply(&mut next, Expires::new(now))?;
    let removed = match policy.keep_versions {
        Some(k) => drop_old_versions(&mut next, &target.name, &filename, k),
        None => vec![],
    };
    next.version = current.version + 1;
    next.expires = policy.expiry.resolve(
        Some(current.expires),
        crate::expiry::TARGETS_DAYS,
        now,
        false,
    )?;
    Ok(Plan::Next {
        role: next,
        removed,
    })
}

/// What [`push_with_retries`] ended with.
#[derive(Clone, Debug)]
pub struct PushResult {
    /// The role now on the server (or that would be, for a dry run).
    pub role: TargetsRole,
    pub attempts: u32,
    /// A new targets.json was signed (and pushed, unless a dry run).
    pub changed: bool,
    pub removed: Vec<String>,
}

/// Signs `role`; refuses documents the server would reject for their size.
fn sign_checked(session: &Session, role: &TargetsRole) -> Result<Signed> {
    // Encoded once, straight from the typed role: signed, measured, sent.
    let signed = Signed::sign(role.canonical()?, &[&session.account.key])?;
    check_targets_size(
        signed.canonical_len(),
        "remove old targets, e.g. with --keep-versions 3",
    )?;
    Ok(signed)
}

/// Warns when the server's targets.json has expired or is about to.
fn warn_expiry(current: &TargetsRole, now: DateTime<Utc>) {
    if current.expires.is_past() {
        log::warn!("the server's targets.json expired at {}", current.expires);
    } else if current.expires.datetime() < now + NEAR_EXPIRY {
        log::warn!(
            "the server's targets.json expires soon, at {}",
            current.expires
        );
    }
}

/// pull → verify → `edit` → sign → push, re-pulling after a concurrent push (412/428)
/// with jittered exponential backoff, at most `retries` extra times. With `dry_run`,
/// nothing is pushed and the signed document goes to `output` if given.
pub fn push_with_retries(
    session: &Session,
    retries: u32,
    dry_run: bool,
    output: Option<&Path>,
    mut edit: impl FnMut(&TargetsRole, DateTime<Utc>) -> Result<Plan>,
) -> Result<PushResult> {
    let attempts_allowed = retries + 1;
    for attempt in 1..=attempts_allowed {
        let (current, checksum) = session.pull()?;
        let now = chrono::Utc::now();
        warn_expiry(&current, now);
        let (role, removed) = match edit(&current, now)? {
            Plan::Unchanged => {
                return Ok(PushResult {
                    role: current,
                    attempts: attempt,
                    changed: false,
                    removed: vec![],
                })
            }
            Plan::Next { role, removed } => (role, removed),
        };
        let signed = sign_checked(session, &role)?;
        let done = PushResult {
            role,
            attempts: attempt,
            changed: true,
            removed,
        };
        if dry_run {
            if let Some(out) = output {
                fsutil::write_atomic_with(out, fsutil::PUBLIC_FILE, |w| signed.write_pretty(w))?;
            }
            return Ok(done);
        }
        match session
            .account
            .client
            .put_targets_signed(&signed, done.role.version, Some(&checksum))
        {
            Ok(_) => return Ok(done),
            Err(Error::ChecksumConflict(msg)) if attempt < attempts_allowed => {
                let delay = session
                    .account
                    .client
                    .retry_policy()
                    .delay(attempt - 1, None);
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

/// The target described by the request, hashed and validated.
fn new_target(req: &PublishRequest) -> Result<NewTarget> {
    let (sha256, length) = match &req.image {
        ImageSource::Given { sha256, length } => (sha256.clone(), *length),
        ImageSource::File(path) => fsutil::hash_file(path)?,
    };
    let target = NewTarget {
        name: req.name.clone(),
        version: req.version.clone().unwrap_or_else(|| sha256.clone()),
        sha256: Sha256::parse(&sha256)?,
        length,
        hardware_ids: req
            .hardware_ids
            .iter()
            .map(|h| HardwareId::parse(h))
            .collect::<Result<_>>()?,
        format: req.format,
        url: req.url.clone(),
        cli_uploaded: req.upload,
        custom_meta: req.custom.clone(),
    };
    target.validate()?;
    Ok(target)
}

/// Uploads the image unless the server already stores these exact bytes for the
/// target (then publishing again is a no-op, and a re-run after an interrupted
/// publish goes on where it stopped). Returns whether it uploaded.
fn upload_unless_stored(
    session: &Session,
    req: &PublishRequest,
    target: &NewTarget,
) -> Result<bool> {
    let ImageSource::File(path) = &req.image else {
        return Err(Error::Usage(
            "--upload needs --image (OSTree commits are pushed to Treehub, not uploaded)".into(),
        ));
    };
    let (current, _) = session.pull()?;
    if stored(&current, target) {
        log::info!(
            "{} is already stored on the server with this sha256 and length; not uploading",
            target.filename()
        );
        return Ok(false);
    }
    let filename = target.filename();
    let bar = crate::http::progress_bar(target.length);
    // The target is ours to replace when published (with other bytes, or never
    // uploaded); otherwise only a file an interrupted upload left behind.
    let replace = if current.targets.contains_key(&filename) {
        Replace::Always
    } else {
        Replace::Leftover
    };
    session
        .account
        .client
        .upload_target_replacing(&filename, path, replace, &bar)?;
    bar.finish_and_clear();
    log::info!("uploaded {} as {filename}", path.display());
    Ok(true)
}

/// A BINARY target devices cannot download: no upload, no URL, no stored file.
fn unreachable_warning(
    req: &PublishRequest,
    target: &NewTarget,
    current: &TargetsRole,
) -> Option<String> {
    if req.format != TargetFormat::Binary
        || req.upload
        || req.url.is_some()
        || stored(current, target)
    {
        return None;
    }
    Some(format!(
        "devices cannot download {}: it is not uploaded (--upload), has no --url and the server stores no file for it (aktualizr fails with no_uri_for_unmanaged_target)",
        target.filename()
    ))
}

/// `--skip-unless-offline` with a zip that cannot sign offline.
fn skip(req: &PublishRequest, reason: String) -> Published {
    log::warn!("{reason}; skipping (--skip-unless-offline)");
    Published::Skipped(Skipped {
        target: match &req.version {
            Some(v) => format!("{}-{v}", req.name),
            None => req.name.clone(),
        },
        skipped: true,
        reason,
    })
}

/// The new target, hashed on another thread while the session is bound and
/// targets.json is pulled and verified; joined when first needed.
struct PendingTarget<'s> {
    hashing: Option<std::thread::ScopedJoinHandle<'s, Result<NewTarget>>>,
    target: Option<NewTarget>,
}

impl PendingTarget<'_> {
    fn get(&mut self) -> Result<&NewTarget> {
        if let Some(h) = self.hashing.take() {
            let target = h
                .join()
                .map_err(|_| Error::Other("hashing the image failed (thread panicked)".into()))??;
            self.target = Some(target);
        }
        self.target
            .as_ref()
            .ok_or_else(|| Error::Other("the image was not hashed".into()))
    }
}

/// Uploads (unless stored), then adds the target through [`plan`] and
/// [`push_with_retries`]. The image is hashed on a second thread, overlapping the
/// root-chain walk and the pull (network round trips and verification).
pub fn publish(req: &PublishRequest) -> Result<Published> {
    if req.keep_versions == Some(0) {
        return Err(Error::Usage(
            "--keep-versions must be at least 1 (the version being published)".into(),
        ));
    }
    let account = match open_account(&req.credentials, &req.options)? {
        Ok(a) => a,
        Err(reason) if req.skip_unless_offline => return Ok(skip(req, reason)),
        Err(reason) => return Err(Error::Explained(reason)),
    };
    std::thread::scope(|scope| {
        let mut pending = PendingTarget {
            hashing: Some(scope.spawn(|| new_target(req))),
            target: None,
        };
        let session = Session::bind(account, &req.credentials.display().to_string())?;
        publish_in(req, &session, &mut pending)
    })
}

fn publish_in(
    req: &PublishRequest,
    session: &Session,
    pending: &mut PendingTarget<'_>,
) -> Result<Published> {
    let uploaded = req.upload && !req.dry_run && {
        let target = pending.get()?.clone();
        upload_unless_stored(session, req, &target)?
    };
    let policy = Policy {
        keep_versions: req.keep_versions,
        expiry: &req.expiry,
        refresh_within: NEAR_EXPIRY,
    };
    let mut warnings = Vec::new();
    let result = push_with_retries(
        session,
        req.retries,
        req.dry_run,
        req.output.as_deref(),
        |current, now| {
            let target = pending.get()?;
            warnings = unreachable_warning(req, target, current)
                .into_iter()
                .collect();
            plan(current, target, &policy, now)
        },
    )?;
    for w in &warnings {
        log::warn!("{w}");
    }
    let target = pending.get()?.clone();
    let filename = target.filename();
    let item =
        result.role.targets.get(&filename).cloned().ok_or_else(|| {
            Error::Other(format!("{filename} is missing from the new targets.json"))
        })?;
    Ok(Published::Done(PublishOutcome {
        target: filename,
        sha256: target.sha256.into_string(),
        length: target.length,
        targets_version: result.role.version,
        attempts: result.attempts,
        pushed: result.changed && !req.dry_run,
        changed: result.changed,
        uploaded,
        dry_run: req.dry_run,
        removed: result.removed,
        targets_expires: result.role.expires,
        root_expires: session.root_expires(),
        item,
        warnings,
    }))
}

/// The server stores a file for this target (`cliUploaded`) with the same sha256 and
/// length.
fn stored(role: &TargetsRole, target: &NewTarget) -> bool {
    role.targets.get(&target.filename()).is_some_and(|item| {
        item.hashes.get("sha256") == Some(&target.sha256)
            && item.length == target.length
            && item
                .custom_value()
                .and_then(|c| c.get("cliUploaded").and_then(Value::as_bool))
                == Some(true)
    })
}

/// The identical target is already published (and stored, when uploading).
fn already_there(role: &TargetsRole, target: &NewTarget) -> bool {
    let Some(item) = role.targets.get(&target.filename()) else {
        return false;
    };
    let custom = item.custom_value();
    let custom = custom.as_ref();
    let field = |k: &str| {
        custom
            .and_then(|c| c.get(k))
            .cloned()
            .unwrap_or(Value::Null)
    };
    item.hashes.get("sha256") == Some(&target.sha256)
        && item.length == target.length
        && (!target.cli_uploaded || stored(role, target))
        && field("hardwareIds") == Value::from_iter(target.hardware_ids.iter().map(|h| h.as_str()))
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
                    .custom_value()
                    .and_then(|c| c.get("name").and_then(Value::as_str).map(str::to_string))
                    .as_deref()
                    == Some(name)
        })
        .map(|(f, item)| {
            let created = item
                .custom_value()
                .and_then(|c| {
                    c.get("createdAt")
                        .and_then(Value::as_str)
                        .map(str::to_string)
                })
                .unwrap_or_default();
            (created, f.to_string())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expiry::Period;
    use chrono::TimeZone;

    fn target(name: &str, version: &str, sha: char, upload: bool) -> NewTarget {
        NewTarget {
            name: name.into(),
            version: version.into(),
            sha256: sha.to_string().repeat(64).parse().unwrap(),
            length: 10,
            hardware_ids: vec!["hw".parse().unwrap()],
            format: TargetFormat::Binary,
            url: None,
            cli_uploaded: upload,
            custom_meta: None,
        }
    }

    fn at(day: u32, second: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2030, 1, day, 0, 0, second).unwrap()
    }

    fn next(p: Plan) -> (TargetsRole, Vec<String>) {
        match p {
            Plan::Next { role, removed } => (role, removed),
            Plan::Unchanged => panic!("expected a new targets.json"),
        }
    }

    #[test]
    fn plan_is_unchanged_only_for_the_identical_target_far_from_expiry() {
        let month = ExpiryChoice::After(Period {
            years: 0,
            months: 1,
            days: 0,
        });
        let policy = Policy {
            keep_versions: None,
            expiry: &month,
            refresh_within: chrono::Duration::days(7),
        };
        let empty = TargetsRole::new(3, Expires::new(at(30, 0)));
        let t = target("app", "1", 'a', false);
        let (role, removed) = next(plan(&empty, &t, &policy, at(1, 0)).unwrap());
        assert_eq!((role.version, removed.len()), (4, 0));
        assert_eq!(
            role.expires,
            Expires::new(Utc.with_ymd_and_hms(2030, 2, 1, 0, 0, 0).unwrap())
        );
        assert_eq!(plan(&role, &t, &policy, at(2, 0)).unwrap(), Plan::Unchanged);
        // Close to expiry: re-signed although nothing changed.
        assert!(matches!(
            plan(&role, &t, &policy, at(28, 0)).unwrap(),
            Plan::Next { .. }
        ));
        // Other bytes, or an upload the server does not have yet: a new version.
        assert!(matches!(
            plan(&role, &target("app", "1", 'b', false), &policy, at(2, 0)).unwrap(),
            Plan::Next { .. }
        ));
        let up = target("app", "1", 'a', true);
        let (uploaded, _) = next(plan(&role, &up, &policy, at(2, 0)).unwrap());
        assert!(stored(&uploaded, &up));
        assert_eq!(
            plan(&uploaded, &up, &policy, at(3, 0)).unwrap(),
            Plan::Unchanged
        );
        // Re-signing a stored target without --upload keeps it stored.
        let (resigned, _) = next(plan(&uploaded, &t, &policy, at(28, 0)).unwrap());
        assert!(stored(&resigned, &t));
    }

    #[test]
    fn plan_drops_the_oldest_versions_beyond_keep() {
        let default = ExpiryChoice::Default;
        let mut policy = Policy {
            keep_versions: None,
            expiry: &default,
            refresh_within: chrono::Duration::days(7),
        };
        let mut role = TargetsRole::new(1, Expires::new(at(30, 0)));
        for v in 1..=3 {
            role = next(
                plan(
                    &role,
                    &target("app", &v.to_string(), 'c', false),
                    &policy,
                    at(1, v),
                )
                .unwrap(),
            )
            .0;
        }
        role = next(plan(&role, &target("other", "1", 'd', false), &policy, at(1, 9)).unwrap()).0;
        policy.keep_versions = Some(2);
        let (role, removed) =
            next(plan(&role, &target("app", "4", 'e', false), &policy, at(1, 10)).unwrap());
        assert_eq!(removed, ["app-1", "app-2"]);
        let names: Vec<&str> = role.targets.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["app-3", "app-4", "other-1"]);
    }
}
