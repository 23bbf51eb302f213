//! `verify`: the device check ([`crate::verify::device`]) on a local repository's
//! server, a credentials zip's server or a repository URL, printed as findings.

use super::Context;
use crate::cli::{SourceArgs, VerifyArgs};
use crate::credentials::Credentials;
use crate::error::{Error, Result};
use crate::expiry::Period;
use crate::http::{ClientAuth, ReposerverClient};
use crate::metadata::Expires;
use crate::verify::device::{self, DirSource, Report, Source};
use chrono::{DateTime, Utc};
use serde_json::json;
use std::path::PathBuf;

/// The source to check and the trust anchor it comes with (`None`: `1.root.json`).
pub struct Target {
    pub source: Box<dyn Source>,
    pub trusted_root: Option<Vec<u8>>,
    /// How the source is named in output.
    pub name: String,
}

/// Resolves `--repo`, `--credentials` or `--url` (+ `--trusted-root`).
pub fn open(ctx: &Context, s: &SourceArgs, trusted_root: Option<&PathBuf>) -> Result<Target> {
    if let Some(name) = &s.repo {
        let repo = ctx.existing_repo(Some(name))?;
        let client = ctx.client(&repo)?;
        return Ok(Target {
            source: Box::new(client),
            trusted_root: None,
            name: format!("repository {name}'s server"),
        });
    }
    if let Some(zip) = &s.credentials {
        let creds = Credentials::read(zip)?;
        let client = ReposerverClient::from_credentials(&creds, &ctx.client_options())?;
        return Ok(Target {
            source: Box::new(client),
            trusted_root: creds.entry("root.json").map(<[u8]>::to_vec),
            name: format!("{}'s server", zip.display()),
        });
    }
    let url = s
        .url
        .as_deref()
        .ok_or_else(|| Error::Usage("give --repo, --credentials or --url".into()))?;
    let trusted_root = trusted_root
        .map(|p| std::fs::read(p).map_err(|e| Error::io(p, e)))
        .transpose()?;
    let dir = url.strip_prefix("file://").map(PathBuf::from);
    let source: Box<dyn Source> = match dir {
        Some(d) => Box::new(DirSource(d)),
        None if std::path::Path::new(url).is_dir() => Box::new(DirSource(url.into())),
        None => Box::new(ReposerverClient::at_repo_url(
            url,
            ClientAuth::None,
            &ctx.client_options(),
        )?),
    };
    Ok(Target {
        source,
        trusted_root,
        name: url.to_string(),
    })
}

/// Runs the device check on `t` as of `at`.
pub fn check(t: &Target, at: DateTime<Utc>) -> Result<Report> {
    device::check(t.source.as_ref(), t.trusted_root.as_deref(), at)
}

/// `--at`: an instant, or `+<period>` from now.
fn parse_at(s: Option<&str>) -> Result<DateTime<Utc>> {
    let now = Utc::now();
    match s {
        None => Ok(now),
        Some(p) if p.starts_with('+') => Period::parse(&p[1..])?.add_to(now),
        Some(t) => Expires::parse(t)
            .map(|e| e.datetime())
            .map_err(|_| Error::Usage(format!("--at {t:?}: give an instant like 2030-01-01T00:00:00Z or a period from now like +7D"))),
    }
}

/// Whatever stops the check is "cannot tell": exit 3.
fn cannot_tell(e: Error) -> Error {
    match e {
        Error::Usage(_) => e,
        e => Error::Other(format!(
            "cannot tell whether a device would accept the repository: {e}"
        )),
    }
}

pub fn run(ctx: &Context, a: VerifyArgs) -> Result<()> {
    let at = parse_at(a.at.as_deref())?;
    let target = open(ctx, &a.source, a.trusted_root.as_ref()).map_err(cannot_tell)?;
    let report = check(&target, at).map_err(cannot_tell)?;
    let installable: Option<Vec<&str>> = a.hardware_id.as_deref().map(|h| {
        report
            .installable(h)
            .into_iter()
            .map(|t| t.filename.as_str())
            .collect()
    });
    let at_text = at.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    if a.json {
        let v = json!({
            "accepted": report.accepted(),
            "at": at_text,
            "findings": report.findings,
            "roles": report.roles,
            "installable": installable,
        });
        println!("{v}");
    } else {
        for f in &report.findings {
            println!("{f}");
        }
        let versions: Vec<String> = report
            .roles
            .iter()
            .map(|r| format!("{} v{}", r.role, r.version.unwrap_or(0)))
            .collect();
        if report.accepted() {
            println!(
                "a device would accept {} as of {at_text} ({})",
                target.name,
                versions.join(", ")
            );
        }
        if let (Some(h), Some(list)) = (&a.hardware_id, &installable) {
            if list.is_empty() {
                println!("a device with hardware id {h} could install nothing");
            } else {
                println!(
                    "a device with hardware id {h} could install: {}",
                    list.join(", ")
                );
            }
        }
    }
    if report.accepted() {
        Ok(())
    } else {
        Err(Error::Explained(format!(
            "a device would reject {}: {} finding(s) above",
            target.name,
            report.findings.len()
        )))
    }
}
