//! `targets …` (reference/garage-sign.md §1.7, §5.3).

use super::{external_signatures, print_raw, Context};
use crate::canonical::CanonicalJson;
use crate::cli::{TargetFields, TargetsArgs, TargetsCommand, TargetsSignArgs};
use crate::crypto::Sha256Stream;
use crate::error::{Error, Result};
use crate::expiry::{ExpiryChoice, TARGETS_DAYS};
use crate::metadata::{Expires, NewTarget, SignedPayload, TargetFormat, TargetsRole};
use crate::repo::TufRepo;
use crate::verify::TrustedRoot;
use serde_json::Value;
use std::io::Read;
use std::path::Path;

/// The reposerver refuses targets.json documents of this many bytes or more.
pub const TARGETS_SIZE_LIMIT: usize = 8_286_208;

pub fn run(ctx: &Context, args: TargetsArgs) -> Result<()> {
    let repo = ctx.existing_repo(args.repo.as_deref())?;
    match args.command {
        TargetsCommand::Init { version, expires } => {
            let expires = Expires::parse(&expires).map_err(|_| {
                Error::Usage(format!(
                    "invalid --expires {expires:?}: use an instant like 2030-01-01T00:00:00Z"
                ))
            })?;
            repo.write_unsigned_targets(&TargetsRole::new(version, expires))
        }
        TargetsCommand::Add {
            length,
            target,
            format,
            sha256,
            url,
        } => {
            let new = new_target(
                &target,
                TargetFormat::parse(&format)?,
                sha256,
                length,
                url,
                false,
            )?;
            let mut role = repo.read_unsigned_targets()?;
            new.apply(&mut role, Expires::now())?;
            repo.write_unsigned_targets(&role)?;
            log::info!("added target {}", new.filename());
            Ok(())
        }
        TargetsCommand::AddUploaded { input, target } => {
            let (sha256, length) = hash_file(&input)?;
            let new = new_target(&target, TargetFormat::Binary, sha256, length, None, true)?;
            let mut role = repo.read_unsigned_targets()?;
            new.apply(&mut role, Expires::now())?;
            repo.write_unsigned_targets(&role)?;
            log::info!(
                "added uploaded target {} (sha256 {}, {length} bytes)",
                new.filename(),
                new.sha256
            );
            Ok(())
        }
        TargetsCommand::Delete { filename } => {
            let mut role = repo.read_unsigned_targets()?;
            if role.targets.remove(&filename).is_none() {
                return Err(Error::Other(format!(
                    "target {filename} is not in {} (target file names are <name>-<version>)",
                    repo.unsigned_targets_path().display()
                )));
            }
            repo.write_unsigned_targets(&role)
        }
        TargetsCommand::GetUnsigned => {
            let role = repo.read_unsigned_targets()?;
            print_raw(CanonicalJson::of(&role.to_signed()?).as_bytes())
        }
        TargetsCommand::IncrementVersion => {
            let mut role = repo.read_unsigned_targets()?;
            role.version += 1;
            repo.write_unsigned_targets(&role)
        }
        TargetsCommand::SetThreshold { threshold } => {
            super::root::set_threshold(&repo, "targets", threshold)
        }
        TargetsCommand::Sign(a) => sign(&repo, a),
        TargetsCommand::Pull | TargetsCommand::Push | TargetsCommand::Upload { .. } => Err(
            Error::Other("this command needs the server client, which is not built yet".into()),
        ),
    }
}

pub fn new_target(
    t: &TargetFields,
    format: TargetFormat,
    sha256: String,
    length: u64,
    url: Option<String>,
    cli_uploaded: bool,
) -> Result<NewTarget> {
    let custom_meta = match &t.custom_meta {
        None => None,
        Some(text) => match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(m)) => Some(m),
            _ => return Err(Error::Usage("--customMeta must be a JSON object".into())),
        },
    };
    let new = NewTarget {
        name: t.name.clone(),
        version: t.version.clone(),
        sha256,
        length,
        hardware_ids: t
            .hardware_ids
            .iter()
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
            .collect(),
        format,
        url,
        cli_uploaded,
        custom_meta,
    };
    new.validate()?;
    Ok(new)
}

/// sha256 and length of a file in one streaming pass, with a progress bar on a terminal.
pub fn hash_file(path: &Path) -> Result<(String, u64)> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    let bar = crate::progress::bar(len, &format!("hashing {}", path.display()));
    let mut reader = bar.wrap_read(file);
    let mut hasher = Sha256Stream::default();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = reader.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    bar.finish_and_clear();
    Ok((hasher.finish_hex(), total))
}

fn sign(repo: &TufRepo, a: TargetsSignArgs) -> Result<()> {
    let unsigned = repo.read_unsigned_targets()?;
    let choice = ExpiryChoice::from_flags(
        a.expiry.expires.as_deref(),
        a.expiry.expire_after.as_deref(),
    )?;
    let keys = a
        .key_names
        .iter()
        .map(|n| repo.read_private_key(n))
        .collect::<Result<Vec<_>>>()?;
    let payload = match &a.signatures {
        Some(spec) => {
            if a.version.is_some() || choice != ExpiryChoice::Default {
                return Err(Error::Usage(
                    "--signatures signs the unsigned targets as they are: --version, --expires and --expire-after cannot be used with it (use `targets increment-version` before `get-unsigned`)".into(),
                ));
            }
            let signed = unsigned.to_signed()?;
            let message = CanonicalJson::of(&signed);
            let mut sigs = keys
                .iter()
                .map(|k| k.sign(message.as_bytes()))
                .collect::<Result<Vec<_>>>()?;
            sigs.extend(external_signatures(repo, message.as_bytes(), spec)?);
            SignedPayload {
                signatures: sigs,
                signed,
            }
        }
        None => {
            if keys.is_empty() {
                return Err(Error::Usage(
                    "give at least one --key-name (or --signatures)".into(),
                ));
            }
            let mut role = unsigned.clone();
            role.version = a.version.unwrap_or(unsigned.version + 1);
            role.expires = choice.resolve(
                Some(unsigned.expires),
                TARGETS_DAYS,
                chrono::Utc::now(),
                a.expiry.force,
            )?;
            SignedPayload::sign(role.to_signed()?, &keys.iter().collect::<Vec<_>>())?
        }
    };
    warn_if_not_trusted(repo, &payload);
    warn_size(payload.canonical().as_bytes().len());
    repo.write_signed_targets(&payload)?;
    log::info!(
        "signed targets.json version {} ({} signature(s))",
        payload.version().unwrap_or(0),
        payload.signatures.len()
    );
    Ok(())
}

/// The reposerver will refuse a targets.json its current root does not trust; say so now.
fn warn_if_not_trusted(repo: &TufRepo, payload: &SignedPayload) {
    let Ok(root) = repo.read_signed_root() else {
        return;
    };
    let Ok(trusted) = TrustedRoot::from_signed(&root.signed, "roles/root.json") else {
        return;
    };
    if let Err(e) = trusted.verify("targets", payload, "targets.json") {
        log::warn!("the local root.json does not accept this targets.json, so the server will refuse it: {e}");
    }
}

pub fn warn_size(len: usize) {
    if len * 4 >= TARGETS_SIZE_LIMIT * 3 {
        log::warn!(
            "targets.json is {len} bytes, {}% of the server's limit of {TARGETS_SIZE_LIMIT} bytes; delete old targets",
            len * 100 / TARGETS_SIZE_LIMIT
        );
    }
}
