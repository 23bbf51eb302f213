//! `targets …` (reference/garage-sign.md §1.7, §5.3).

use super::{print_raw, Context};
use crate::canonical::CanonicalJson;
use crate::cli::{
    AddTargetArgs, TargetFields, TargetsArgs, TargetsCommand, TargetsDelegationsCommand,
    TargetsSignArgs,
};
use crate::error::{Error, Result};
use crate::expiry::{ExpiryChoice, TARGETS_DAYS};
use crate::http::ReposerverClient;
use crate::keyref::KeyHandle;
use crate::metadata::{Expires, NewTarget, Signed, TargetFormat, TargetsRole};
use crate::repo::TufRepo;
use crate::schema::{DelegationName, HardwareId, Sha256};
use crate::verify::TrustedRoot;
use serde_json::Value;

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
        TargetsCommand::Add(add) => {
            let new = added_target(add)?;
            let mut role = repo.read_unsigned_targets()?;
            new.apply(&mut role, Expires::now())?;
            repo.write_unsigned_targets(&role)?;
            log::info!("added target {}", new.filename());
            Ok(())
        }
        TargetsCommand::AddUploaded { input, target } => {
            let (sha256, length) = crate::fsutil::hash_file(&input)?;
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
            if role.targets.remove(filename.as_str()).is_none() {
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
        TargetsCommand::Delegations(TargetsDelegationsCommand::Add {
            name,
            prefixes,
            keys,
        }) => add_delegation(&repo, &name, &prefixes, &keys),
        TargetsCommand::Pull => pull(ctx, &repo),
        TargetsCommand::Push => push(ctx, &repo),
        TargetsCommand::Upload {
            input,
            name,
            version,
            timeout,
            force,
        } => {
            if force {
                log::warn!("--force is ignored: the reposerver decides whether an upload may replace another");
            }
            let mut options = ctx.client_options();
            options.upload_timeout = std::time::Duration::from_secs(timeout);
            let client =
                ReposerverClient::from_repo_config(&repo.read_config()?, repo.dir(), &options)?;
            let filename = format!("{name}-{version}");
            let bar = crate::http::progress_bar(0);
            client.upload_target(&filename, &input, &bar)?;
            bar.finish_and_clear();
            log::info!("uploaded {} as {filename}; now run `targets add-uploaded` with the same --name and --version", input.display());
            Ok(())
        }
    }
}

/// The target `targets add` / `delegations add-target` describe.
pub fn added_target(a: AddTargetArgs) -> Result<NewTarget> {
    new_target(
        &a.target,
        TargetFormat::parse(&a.format)?,
        a.sha256,
        a.length,
        a.url,
        false,
    )
}

pub fn new_target(
    t: &TargetFields,
    format: TargetFormat,
    sha256: String,
    length: u64,
    url: Option<String>,
    cli_uploaded: bool,
) -> Result<NewTarget> {
    let custom_meta = super::parse_json_object(t.custom_meta.as_deref(), "--customMeta")?;
    let new = NewTarget {
        name: t.name.clone(),
        version: t.version.clone(),
        sha256: Sha256::parse(&sha256)?,
        length,
        hardware_ids: t
            .hardware_ids
            .iter()
            .map(|h| h.trim())
            .filter(|h| !h.is_empty())
            .map(HardwareId::parse)
            .collect::<Result<_>>()?,
        format,
        url,
        cli_uploaded,
        custom_meta,
    };
    new.validate()?;
    Ok(new)
}

fn sign(repo: &TufRepo, a: TargetsSignArgs) -> Result<()> {
    let unsigned = repo.read_unsigned_targets()?;
    let choice = ExpiryChoice::from_flags(
        a.expiry.expires.as_deref(),
        a.expiry.expire_after.as_deref(),
    )?;
    let keys = super::read_private_keys(repo, &a.key_names)?;
    let role = if a.signatures.is_some() {
        // External signatures cover the unsigned role exactly as get-unsigned printed it.
        if a.version.is_some() || choice != ExpiryChoice::Default {
            return Err(Error::Usage(
                "--signatures signs the unsigned targets as they are: --version, --expires and --expire-after cannot be used with it (use `targets increment-version` before `get-unsigned`)".into(),
            ));
        }
        unsigned
    } else {
        // Edited in place: no second copy of 100,000 targets.
        let mut role = unsigned;
        role.expires = choice.resolve(
            Some(role.expires),
            TARGETS_DAYS,
            chrono::Utc::now(),
            a.expiry.force,
        )?;
        role.version = a.version.unwrap_or(role.version + 1);
        role
    };
    let version = role.version;
    let count = sign_and_write(repo, role, &keys, a.signatures.as_deref())?;
    log::info!("signed targets.json version {version} ({count} signature(s))");
    Ok(())
}

/// Encodes `role` once, signs it and writes roles/targets.json, using both cores:
/// half the targets are encoded on each; while the keys sign, the role is freed and
/// the signed part is laid out into the file behind the room the signatures will
/// take; while the file is made durable, each signature is checked (and root's view of
/// the keys). roles/targets.json is replaced only once the checks passed. Returns the
/// number of signatures.
fn sign_and_write(
    repo: &TufRepo,
    role: TargetsRole,
    keys: &[KeyHandle],
    external: Option<&str>,
) -> Result<usize> {
    let (message, targets) = role.into_canonical()?;
    let file = repo.create_signed_targets_file()?;
    let body_at = external.is_none().then(|| head_len(keys)).flatten();
    let (signatures, unchecked) = std::thread::scope(|s| {
        // Freeing 100,000 targets costs about a SHA-512 pass over them.
        s.spawn(move || drop(targets));
        let (file, message) = (&file, &message);
        let body = body_at.map(|at| {
            s.spawn(move || file.write_from(at, |w| Signed::write_pretty_body(message, w)))
        });
        let signed = super::sign_unchecked(repo, message, keys, external);
        body.map_or(Ok(()), joined)?;
        signed
    })?;
    let signed = Signed::new(message, signatures);
    crate::publish::warn_targets_size(
        signed.canonical_len() as u64,
        crate::publish::TARGETS_SIZE_LIMIT as u64,
        "delete old targets (targets delete) and sign again",
    );
    let head = signed.pretty_head();
    std::thread::scope(|s| {
        let checks = s.spawn(|| super::check_signatures(&unchecked, &signed));
        // Root's view verifies the signatures by root's targets keys once more: on
        // its own thread, so it never lengthens the check.
        s.spawn(|| warn_if_not_trusted(repo, &signed));
        if body_at == Some(head.len() as u64) {
            file.write_all_at(0, &head)?;
        } else {
            file.truncate()?;
            file.write_from(0, |w| signed.write_pretty(w))?;
        }
        file.sync()?;
        joined(checks)
    })?;
    file.commit()?;
    Ok(signed.signatures.len())
}

/// Where the signed part starts in the file signed by `keys`, when every key's
/// signature length is known before it signs.
fn head_len(keys: &[KeyHandle]) -> Option<u64> {
    let room = keys
        .iter()
        .map(|k| {
            let len = k.public().signature_len()?;
            Some(crate::metadata::Signature {
                keyid: k.key_id(),
                method: k.keytype().signature_method().to_string(),
                sig: "A".repeat(len.div_ceil(3) * 4),
            })
        })
        .collect::<Option<Vec<_>>>()?;
    Some(Signed::pretty_head_for(&room).len() as u64)
}

/// The result of a scoped thread; a panic there is an error here, not a second panic.
fn joined(handle: std::thread::ScopedJoinHandle<'_, Result<()>>) -> Result<()> {
    handle
        .join()
        .unwrap_or_else(|_| Err(Error::Other("a signing thread stopped unexpectedly".into())))
}

/// The reposerver will refuse a targets.json its current root does not trust; say so now.
fn warn_if_not_trusted(repo: &TufRepo, signed: &Signed) {
    let Ok(root) = repo.read_signed_root() else {
        return;
    };
    let Ok(trusted) = TrustedRoot::from_signed(&root.signed, "roles/root.json") else {
        return;
    };
    if let Err(e) = trusted.verify_bytes(
        "targets",
        &signed.signatures,
        signed.signed_bytes().as_bytes(),
        "targets.json",
    ) {
        log::warn!("the local root.json does not accept this targets.json, so the server will refuse it: {e}");
    }
}

/// `targets pull`: verify against the local root, refuse a rollback, store the unsigned
/// role and the checksum (reference/garage-sign.md §1.7).
fn pull(ctx: &Context, repo: &TufRepo) -> Result<()> {
    let root = repo.read_signed_root()?;
    let trusted =
        TrustedRoot::from_signed(&root.signed, &repo.signed_root_path().display().to_string())?;
    let client = ctx.client(repo)?;
    let fetched = client.get_targets()?;
    let role = crate::verify::verified_targets(&trusted, &fetched.payload)?;
    if repo.unsigned_targets_path().exists() && repo.checksum_path().exists() {
        if let Ok(held) = repo.read_unsigned_targets() {
            if role.version < held.version {
                return Err(Error::Explained(format!(
                    "TargetsPullError: the server offers targets.json version {} but version {} was pulled before: refusing a rollback. \
                     If you only incremented the version locally, remove {} and pull again",
                    role.version,
                    held.version,
                    repo.unsigned_targets_path().display()
                )));
            }
        }
    }
    if role.expires.is_past() {
        log::warn!("the server's targets.json expired at {}: devices refuse it until you sign and push a new one", role.expires);
    }
    repo.write_unsigned_targets(&role)?;
    repo.write_checksum(&fetched.checksum)?;
    log::info!(
        "pulled targets.json version {} ({} targets)",
        role.version,
        role.targets.len()
    );
    Ok(())
}

/// `targets push`: send roles/targets.json with the pulled checksum; on success store
/// the new checksum and the pushed role, so sign → push can repeat without a pull.
fn push(ctx: &Context, repo: &TufRepo) -> Result<()> {
    let signed = repo.read_signed_targets()?;
    let checksum = repo.read_checksum()?.ok_or_else(|| {
        Error::Other(format!(
            "{} is missing: run `targets pull` before `targets push`",
            repo.checksum_path().display()
        ))
    })?;
    const REMEDY: &str = "delete old targets (targets delete), sign and push again";
    // Measured on the bytes that are sent; refused before anything reaches the server.
    let body = signed.canonical().into_bytes();
    crate::publish::check_targets_size(body.len(), REMEDY)?;
    let len = body.len() as u64;
    let client = ctx.client(repo)?;
    let outcome = client.put_targets_body(body, signed.version(), Some(&checksum))?;
    if let Some(limit) = outcome.size_limit {
        crate::publish::warn_targets_size(len, limit, REMEDY);
    }
    let role = TargetsRole::from_signed(&signed.signed, "roles/targets.json")?;
    repo.write_unsigned_targets(&role)?;
    match outcome.checksum {
        Some(c) => repo.write_checksum(&c)?,
        None => repo.write_checksum(&signed.checksum())?,
    }
    log::info!("pushed targets.json version {}", role.version);
    Ok(())
}

/// Hidden `get-targets`: print the server's targets.json.
pub fn get_targets(ctx: &Context, repo: &str) -> Result<()> {
    let repo = ctx.existing_repo(Some(repo))?;
    let fetched = ctx.client(&repo)?.get_targets()?;
    print_raw(&fetched.raw)
}

/// `targets delegations add`: the keys go to `delegations.keys`; the role replaces any
/// role of the same name and comes first, `{name, keyids, paths, threshold: 1,
/// terminating: true}` as garage-sign writes it.
fn add_delegation(
    repo: &TufRepo,
    name: &str,
    prefixes: &[String],
    key_files: &[std::path::PathBuf],
) -> Result<()> {
    DelegationName::parse(name).map_err(|e| Error::Usage(format!("invalid {e}")))?;
    if let Some(p) = prefixes
        .iter()
        .find(|p| p.is_empty() || p.len() >= 254 || p.contains(".."))
    {
        return Err(Error::Usage(format!(
            "invalid path prefix {p:?}: non-empty, under 254 characters, no \"..\""
        )));
    }
    let keys = key_files
        .iter()
        .map(|f| crate::repo::read_public_key_file(f))
        .collect::<Result<Vec<_>>>()?;
    let mut role = repo.read_unsigned_targets()?;
    let mut delegations = match role.delegations.take() {
        Some(Value::Object(m)) => m,
        _ => serde_json::Map::new(),
    };
    let key_map = delegations
        .entry("keys")
        .or_insert_with(|| Value::Object(Default::default()));
    let Value::Object(key_map) = key_map else {
        return Err(Error::invalid(
            "targets.json: delegations.keys",
            "is not an object",
        ));
    };
    let mut ids = Vec::new();
    for k in &keys {
        key_map.insert(k.key_id().to_string(), k.to_json());
        ids.push(k.key_id().to_string());
    }
    let mut roles: Vec<Value> = match delegations.remove("roles") {
        Some(Value::Array(r)) => r,
        _ => vec![],
    };
    roles.retain(|r| r.get("name").and_then(Value::as_str) != Some(name));
    roles.insert(
        0,
        serde_json::json!({"name": name, "keyids": ids, "paths": prefixes, "threshold": 1, "terminating": true}),
    );
    delegations.insert("roles".into(), Value::Array(roles));
    role.delegations = Some(Value::Object(delegations));
    repo.write_unsigned_targets(&role)?;
    log::info!(
        "delegated {} to {name} ({} key(s))",
        prefixes.join(", "),
        ids.len()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_room_for_signatures_is_what_they_take() {
        use crate::keys::{KeyType, PrivateKey};
        let keys: Vec<KeyHandle> = [
            (KeyType::Ed25519, None),
            (KeyType::Rsa, Some(2048)),
            (KeyType::Rsa, Some(3072)),
        ]
        .into_iter()
        .map(|(t, bits)| KeyHandle::software(&PrivateKey::generate(t, bits).unwrap(), "k").unwrap())
        .collect();
        let message = CanonicalJson::of(&serde_json::json!({"version": 1}));
        let signatures: Vec<_> = keys
            .iter()
            .map(|k| crate::metadata::Signature::by(k, message.as_bytes()).unwrap())
            .collect();
        let head = Signed::new(message, signatures).pretty_head();
        assert_eq!(head_len(&keys), Some(head.len() as u64));
        assert!(
            head.ends_with(b"\"signed\" : "),
            "{}",
            String::from_utf8_lossy(&head)
        );
    }

    #[test]
    fn a_signature_that_fails_its_check_leaves_targets_json_as_it_was() {
        let home = tempfile::tempdir().unwrap();
        let repo = TufRepo::new(home.path(), "r").unwrap();
        repo.create_dirs().unwrap();
        let role: TargetsRole = serde_json::from_value(serde_json::json!({
            "_type": "Targets", "expires": "2030-01-01T00:00:00Z", "targets": {}, "version": 2
        }))
        .unwrap();
        let good = KeyHandle::software(
            &crate::keys::PrivateKey::generate(crate::keys::KeyType::Ed25519, None).unwrap(),
            "good",
        )
        .unwrap();
        assert_eq!(
            sign_and_write(&repo, role.clone(), &[good], None).unwrap(),
            1
        );
        let before = std::fs::read(repo.signed_targets_path()).unwrap();

        // Same length as foreseen (the head is written into its room), then another
        // length (the file is laid out again from the start): never kept.
        for faulty in [
            KeyHandle::faulty_for_tests(),
            KeyHandle::faulty_of_type_for_tests(crate::keys::KeyType::Rsa),
        ] {
            let err = sign_and_write(&repo, role.clone(), &[faulty], None).unwrap_err();
            assert!(err.to_string().contains("does not verify"), "{err}");
            assert_eq!(std::fs::read(repo.signed_targets_path()).unwrap(), before);
        }
        let left: Vec<_> = std::fs::read_dir(repo.signed_targets_path().parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .filter(|n| n.to_string_lossy().starts_with(".ota-sign-"))
            .collect();
        assert!(left.is_empty(), "temporary files left: {left:?}");
    }
}
