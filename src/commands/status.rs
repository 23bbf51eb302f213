//! `status`: one row per role (version, expiry, signatures, whose keys, size) from
//! the device check, then the next actions as commands to copy.

use super::verify::{check, open};
use super::Context;
use crate::cli::{SourceArgs, StatusArgs};
use crate::credentials::Credentials;
use crate::error::{Error, Result};
use crate::publish::TARGETS_SIZE_LIMIT;
use crate::repo::TufRepo;
use crate::verify::device::{parse_timestamp, Report, RoleState};
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use std::collections::BTreeMap;

/// targets.json expiring within this is refreshed (`refresh --if-expires-within 7D`).
pub const TARGETS_WARNING: Duration = Duration::days(7);
/// root.json expiring within this needs the offline root key.
pub const ROOT_WARNING: Duration = Duration::days(30);
/// snapshot and timestamp are the server's; they follow targets' expiry on push.
const ONLINE_ROLES: [&str; 2] = ["snapshot", "timestamp"];

/// A private key on this machine: where it is, and its name in the repository.
struct LocalKey {
    place: String,
    name: Option<String>,
}

/// Where a key's private half is, as far as this machine can tell.
#[derive(Serialize)]
struct KeyPlace {
    id: String,
    place: String,
}

#[derive(Serialize)]
struct Row {
    #[serde(flatten)]
    state: RoleState,
    seconds_left: Option<i64>,
    keys: Vec<KeyPlace>,
}

/// A suggested next step.
#[derive(Serialize)]
pub struct Action {
    /// Why, e.g. "targets.json expires in 5d".
    pub reason: String,
    /// The command to copy.
    pub command: String,
}

/// The command that re-signs root with the offline root key (`key`: its local name).
pub fn root_resign_command(repo: Option<&str>, key: Option<&str>) -> String {
    let repo = repo.unwrap_or("<repo>");
    let key = key.unwrap_or("<offline root key>");
    format!(
        "ota-sign root pull --repo {repo} && ota-sign root sign --repo {repo} --key-name {key} --expire-after 1Y && ota-sign root push --repo {repo}"
    )
}

/// Private keys on this machine by key id: `keys/<name>.sec` of a repository, or
/// the zip's targets pair.
fn local_keys(ctx: &Context, a: &StatusArgs) -> Result<BTreeMap<String, LocalKey>> {
    let mut out = BTreeMap::new();
    if let Some(name) = &a.repo {
        let repo = ctx.existing_repo(Some(name))?;
        for (id, key) in repo_key_names(&repo)? {
            let place = format!("offline here (keys/{key})");
            out.insert(
                id,
                LocalKey {
                    place,
                    name: Some(key),
                },
            );
        }
    }
    if let Some(zip) = &a.credentials {
        if let Some(k) = Credentials::read(zip)?.targets_key()? {
            let place = format!("here (targets.sec in {})", zip.display());
            out.insert(k.key_id().to_string(), LocalKey { place, name: None });
        }
    }
    Ok(out)
}

/// `(key id, name)` of every key pair in a repository's `keys/`.
pub fn repo_key_names(repo: &TufRepo) -> Result<Vec<(String, String)>> {
    let dir = repo.keys_dir();
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(Error::io(&dir, e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| Error::io(&dir, e))?.path();
        let Some(name) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".pub"))
        else {
            continue;
        };
        // A private key file, or a PKCS#11 token alias (`keys/<name>.pkcs11`).
        if repo.has_private_key(name) || dir.join(format!("{name}.pkcs11")).is_file() {
            let key = repo.read_public_key(name)?;
            out.push((key.key_id().to_string(), name.to_string()));
        }
    }
    out.sort();
    Ok(out)
}

fn place(role: &str, id: &str, local: &BTreeMap<String, LocalKey>) -> String {
    match local.get(id) {
        Some(k) => k.place.clone(),
        None if ONLINE_ROLES.contains(&role) => "online (server)".into(),
        None => "not here (online on the server, or offline elsewhere)".into(),
    }
}

fn left(expires: Option<&str>, now: DateTime<Utc>) -> Option<Duration> {
    expires.and_then(parse_timestamp).map(|e| e - now)
}

fn human(d: Option<Duration>) -> String {
    match d {
        None => "?".into(),
        Some(d) if d.num_seconds() <= 0 => "EXPIRED".into(),
        Some(d) if d.num_days() >= 2 => format!("{}d", d.num_days()),
        Some(d) => format!("{}h", d.num_hours()),
    }
}

/// What the report implies the user should do.
fn next_actions(
    report: &Report,
    a: &StatusArgs,
    local: &BTreeMap<String, LocalKey>,
    now: DateTime<Utc>,
) -> Vec<Action> {
    let local_name = |ids: &[String]| ids.iter().find_map(|id| local.get(id)?.name.clone());
    let source = match (&a.repo, &a.credentials) {
        (Some(r), _) => format!("--repo {r}"),
        (_, Some(z)) => format!("--credentials {}", z.display()),
        _ => String::new(),
    };
    let mut out = Vec::new();
    if !report.accepted() {
        out.push(Action {
            reason: format!(
                "a device would reject this repository ({} finding(s))",
                report.findings.len()
            ),
            command: format!("ota-sign verify {source}"),
        });
    }
    if let Some(t) = report.role("targets") {
        let l = left(t.expires.as_deref(), now);
        if l.is_some_and(|l| l < TARGETS_WARNING) {
            let key_flag = match (&a.repo, local_name(&t.key_ids)) {
                (Some(_), Some(k)) => format!(" --key-name {k}"),
                (Some(_), None) => " --key-name <offline targets key>".into(),
                _ => String::new(),
            };
            out.push(Action {
                reason: format!("targets.json expires in {}", human(l)),
                command: format!("ota-sign refresh {source}{key_flag}"),
            });
        }
        if crate::publish::targets_size_is_near_limit(t.size) {
            out.push(Action {
                reason: format!(
                    "targets.json is {} bytes of the server's {TARGETS_SIZE_LIMIT}",
                    t.size
                ),
                command: "ota-sign publish ... --keep-versions 3".into(),
            });
        }
    }
    if let Some(r) = report.role("root") {
        let l = left(r.expires.as_deref(), now);
        if l.is_some_and(|l| l < ROOT_WARNING) {
            out.push(Action {
                reason: format!(
                    "root.json expires in {} (re-signed with the offline root key)",
                    human(l)
                ),
                command: root_resign_command(a.repo.as_deref(), local_name(&r.key_ids).as_deref()),
            });
        }
    }
    out
}

pub fn run(ctx: &Context, a: StatusArgs) -> Result<()> {
    let source = SourceArgs {
        repo: a.repo.clone(),
        credentials: a.credentials.clone(),
        url: None,
    };
    let now = Utc::now();
    let report = check(&open(ctx, &source, None)?, now)?;
    let local = local_keys(ctx, &a)?;
    let rows: Vec<Row> = report
        .roles
        .iter()
        .map(|s| Row {
            state: RoleState {
                // What the server accepts is less than what a device downloads.
                size_limit: if s.role == "targets" {
                    TARGETS_SIZE_LIMIT
                } else {
                    s.size_limit
                },
                ..s.clone()
            },
            seconds_left: left(s.expires.as_deref(), now).map(|d| d.num_seconds()),
            keys: s
                .key_ids
                .iter()
                .map(|id| KeyPlace {
                    id: id.clone(),
                    place: place(&s.role, id, &local),
                })
                .collect(),
        })
        .collect();
    let actions = next_actions(&report, &a, &local, now);
    if a.json {
        let v = serde_json::json!({"roles": rows, "findings": report.findings, "next": actions});
        println!("{v}");
        return Ok(());
    }
    print_table(&rows);
    if !report.findings.is_empty() {
        println!();
        for f in &report.findings {
            println!("finding: {f}");
        }
    }
    println!();
    if actions.is_empty() {
        println!("next: nothing to do");
    }
    for act in &actions {
        println!("next: {}: run `{}`", act.reason, act.command);
    }
    Ok(())
}

fn print_table(rows: &[Row]) {
    println!(
        "{:<12} {:>7} {:<21} {:>8} {:>5} {:>7} {:>17}  KEYS",
        "ROLE", "VERSION", "EXPIRES", "LEFT", "SIGS", "TARGETS", "SIZE/LIMIT"
    );
    for r in rows {
        let s = &r.state;
        let keys: Vec<String> = r
            .keys
            .iter()
            .map(|k| format!("{} {}", k.id, k.place))
            .collect();
        println!(
            "{:<12} {:>7} {:<21} {:>8} {:>5} {:>7} {:>17}  {}",
            s.role,
            s.version
                .map(|v| v.to_string())
                .unwrap_or_else(|| "?".into()),
            s.expires.as_deref().unwrap_or("?"),
            human(r.seconds_left.map(Duration::seconds)),
            format!("{}/{}", s.valid_signatures, s.threshold),
            s.targets
                .map(|t| t.to_string())
                .unwrap_or_else(|| "-".into()),
            format!("{}/{}", s.size, s.size_limit),
            keys.join("; ")
        );
    }
}
