//! `refresh`: re-sign targets.json unchanged with a new expiry, through publish's
//! pull → sign → push loop (re-pulling after a concurrent push).

use super::status::{root_resign_command, ROOT_WARNING};
use super::Context;
use crate::cli::RefreshArgs;
use crate::error::{Error, Result};
use crate::expiry::{ExpiryChoice, Period, TARGETS_DAYS};
use crate::metadata::{Expires, SignedPayload, TargetsRole};
use crate::publish::{self, pull_sign_push, sign_targets, Account, Step};
use chrono::Utc;
use serde::Serialize;

/// What refresh did (or would do, for a dry run).
#[derive(Serialize)]
struct Outcome {
    refreshed: bool,
    dry_run: bool,
    /// The targets.json version now on the server (or that would be).
    targets_version: u64,
    previous_expires: String,
    expires: String,
    attempts: u32,
    warnings: Vec<String>,
    message: String,
    /// What was pushed, to record in a local repository as `targets push` does.
    #[serde(skip)]
    pushed: Option<(TargetsRole, SignedPayload)>,
}

/// `--repo R --key-name K`: the repository's server, its root.json as the trust
/// anchor and the offline key `keys/K.sec`.
fn repo_account(ctx: &Context, name: &str, key_name: Option<&str>) -> Result<Account> {
    let repo = ctx.existing_repo(Some(name))?;
    let key_name = key_name.ok_or_else(|| Error::Usage("--repo needs --key-name".into()))?;
    Ok(Account {
        client: ctx.client(&repo)?,
        root: repo.read_signed_root()?,
        key: crate::keyref::resolve_signing_key(&repo.keys_dir(), key_name)?,
        origin: format!("{}/keys/{key_name}.sec", repo.dir().display()),
    })
}

/// A warning when root expires within [`ROOT_WARNING`].
fn root_warning(root: &SignedPayload, repo: Option<&str>) -> Option<String> {
    let expires = root.signed.get("expires").and_then(|e| e.as_str())?;
    let at = Expires::parse(expires).ok()?;
    if at.datetime() - Utc::now() >= ROOT_WARNING {
        return None;
    }
    Some(format!(
        "root.json v{} expires at {expires}; devices stop updating then. It is re-signed with the offline root key: run `{}`",
        root.version().unwrap_or(0),
        root_resign_command(repo, None)
    ))
}

pub fn run(ctx: &Context, a: RefreshArgs) -> Result<()> {
    let expiry = match ExpiryChoice::from_flags(a.expires.as_deref(), a.expire_after.as_deref())? {
        ExpiryChoice::Default => ExpiryChoice::After(Period::parse("1M")?),
        other => other,
    };
    let window = a
        .if_expires_within
        .as_deref()
        .map(Period::parse)
        .transpose()?;
    let account = match (&a.credentials, &a.repo) {
        (Some(zip), _) => publish::open_account(zip, &ctx.client_options())?,
        (None, Some(r)) => repo_account(ctx, r, a.key_name.as_deref())?,
        (None, None) => return Err(Error::Usage("give --credentials or --repo".into())),
    };
    let (trusted, latest) = publish::signing_root(&account)?;
    let warnings: Vec<String> = root_warning(&latest, a.repo.as_deref())
        .into_iter()
        .collect();
    for w in &warnings {
        log::warn!("{w}");
    }
    let outcome = pull_sign_push(&account.client, &trusted, a.retries, |current, attempt| {
        let now = Utc::now();
        let outcome = |refreshed, version, expires: Expires, message: String| Outcome {
            refreshed,
            dry_run: a.dry_run,
            targets_version: version,
            previous_expires: current.expires.to_string(),
            expires: expires.to_string(),
            attempts: attempt,
            warnings: warnings.clone(),
            message,
            pushed: None,
        };
        if let Some(w) = &window {
            if current.expires.datetime() > w.add_to(now)? {
                let msg = format!(
                    "targets.json v{} expires at {}, not within {}: nothing to do",
                    current.version,
                    current.expires,
                    a.if_expires_within.as_deref().unwrap_or("")
                );
                return Ok(Step::Stop(outcome(
                    false,
                    current.version,
                    current.expires,
                    msg,
                )));
            }
        }
        let mut next = current.clone();
        next.version = current.version + 1;
        next.expires = expiry.resolve(Some(current.expires), TARGETS_DAYS, now, false)?;
        let signed = sign_targets(&next, &account.key)?;
        let verb = if a.dry_run {
            "would re-sign"
        } else {
            "re-signed"
        };
        let msg = format!(
            "{verb} targets.json v{} -> v{} ({} targets unchanged), expiry {} -> {}",
            current.version,
            next.version,
            next.targets.len(),
            current.expires,
            next.expires
        );
        let mut out = outcome(!a.dry_run, next.version, next.expires, msg);
        if a.dry_run {
            return Ok(Step::Stop(out));
        }
        out.pushed = Some((next, signed.clone()));
        Ok(Step::Push(signed, out))
    })?;
    if let (Some(name), Some((role, signed))) = (&a.repo, &outcome.pushed) {
        // As `targets push` leaves it: sign → push can go on without a pull.
        let repo = ctx.existing_repo(Some(name))?;
        repo.write_signed_targets(signed)?;
        repo.write_unsigned_targets(role)?;
        repo.write_checksum(&signed.checksum())?;
    }
    if a.json {
        let text = serde_json::to_string(&outcome).map_err(|e| Error::Other(e.to_string()))?;
        println!("{text}");
    } else {
        println!("{} (attempts: {})", outcome.message, outcome.attempts);
    }
    Ok(())
}
