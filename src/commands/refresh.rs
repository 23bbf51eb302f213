//! `refresh`: re-sign targets.json unchanged with a new expiry, through publish's
//! session and pull → sign → push loop (re-pulling after a concurrent push).

use super::status::{root_resign_command, ROOT_WARNING};
use super::Context;
use crate::cli::RefreshArgs;
use crate::error::{Error, Result};
use crate::expiry::{ExpiryChoice, Period, TARGETS_DAYS};
use crate::metadata::Expires;
use crate::publish::{push_with_retries, Account, Plan, Session};
use crate::verify;
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
}

/// `--repo R --key-name K`: the repository's server, its root.json as the trust
/// anchor and its key `K` (as every signing command resolves key names).
fn repo_session(ctx: &Context, name: &str, key_name: Option<&str>) -> Result<Session> {
    let repo = ctx.existing_repo(Some(name))?;
    let key_name = key_name.ok_or_else(|| Error::Usage("--repo needs --key-name".into()))?;
    let key = crate::keyref::resolve_signing_key(&repo.keys_dir(), key_name)?;
    let account = Account::new(ctx.client(&repo)?, repo.read_signed_root()?, key);
    Session::bind(
        account,
        &format!("{}/keys/{key_name}", repo.dir().display()),
    )
}

/// A warning when root expires within [`ROOT_WARNING`].
fn root_warning(session: &Session, repo: Option<&str>) -> Option<String> {
    let at = session.root_expires()?;
    if at.datetime() - Utc::now() >= ROOT_WARNING {
        return None;
    }
    Some(format!(
        "root.json v{} expires at {at}; devices stop updating then. It is re-signed with the offline root key: run `{}`",
        session.root.version().unwrap_or(0),
        root_resign_command(repo, None)
    ))
}

/// After a push from `--repo`: the server's targets.json recorded as `targets pull`
/// leaves it, so sign → push can go on there.
fn record_in_repo(ctx: &Context, name: &str, session: &Session) -> Result<()> {
    let repo = ctx.existing_repo(Some(name))?;
    let fetched = session.account.client.get_targets()?;
    let role = verify::verified_targets(&session.trusted, &fetched.payload)?;
    repo.write_signed_targets(&fetched.payload)?;
    repo.write_unsigned_targets(&role)?;
    repo.write_checksum(&fetched.checksum)
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
    let session = match (&a.credentials, &a.repo) {
        (Some(zip), _) => Session::open(zip, &ctx.client_options())?.map_err(Error::Explained)?,
        (None, Some(r)) => repo_session(ctx, r, a.key_name.as_deref())?,
        (None, None) => return Err(Error::Usage("give --credentials or --repo".into())),
    };
    let warnings: Vec<String> = root_warning(&session, a.repo.as_deref())
        .into_iter()
        .collect();
    for w in &warnings {
        log::warn!("{w}");
    }
    let mut previous: Option<Expires> = None;
    let result = push_with_retries(&session, a.retries, a.dry_run, None, |current, now| {
        previous = Some(current.expires);
        if let Some(w) = &window {
            if current.expires.datetime() > w.add_to(now)? {
                return Ok(Plan::Unchanged);
            }
        }
        let mut next = current.clone();
        next.version = current.version + 1;
        next.expires = expiry.resolve(Some(current.expires), TARGETS_DAYS, now, false)?;
        Ok(Plan::Next {
            role: next,
            removed: vec![],
        })
    })?;
    let previous = previous.unwrap_or(result.role.expires);
    let message = if !result.changed {
        format!(
            "targets.json v{} expires at {previous}, not within {}: nothing to do",
            result.role.version,
            a.if_expires_within.as_deref().unwrap_or("")
        )
    } else {
        format!(
            "{} targets.json v{} -> v{} ({} targets unchanged), expiry {previous} -> {}",
            if a.dry_run {
                "would re-sign"
            } else {
                "re-signed"
            },
            result.role.version - 1,
            result.role.version,
            result.role.targets.len(),
            result.role.expires
        )
    };
    let refreshed = result.changed && !a.dry_run;
    if let (true, Some(name)) = (refreshed, &a.repo) {
        record_in_repo(ctx, name, &session)?;
    }
    let outcome = Outcome {
        refreshed,
        dry_run: a.dry_run,
        targets_version: result.role.version,
        previous_expires: previous.to_string(),
        expires: result.role.expires.to_string(),
        attempts: result.attempts,
        warnings,
        message,
    };
    if a.json {
        let text = serde_json::to_string(&outcome).map_err(|e| Error::Other(e.to_string()))?;
        println!("{text}");
    } else {
        println!("{} (attempts: {})", outcome.message, outcome.attempts);
    }
    Ok(())
}
