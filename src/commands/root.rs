//! `root …` (reference/garage-sign.md §1.6, §5.3).

use super::{print_raw, Context};
use crate::canonical::CanonicalJson;
use crate::cli::{KeySelector, RoleKeyCommand, RootArgs, RootCommand, RootSignArgs};
use crate::error::{Error, Result};
use crate::expiry::{ExpiryChoice, ROOT_DAYS};
use crate::keys::KeyId;
use crate::metadata::{RootRole, SignedPayload};
use crate::repo::TufRepo;
use crate::verify::{self, TrustedRoot};

pub fn run(ctx: &Context, args: RootArgs) -> Result<()> {
    let repo = ctx.existing_repo(args.repo.as_deref())?;
    match args.command {
        RootCommand::GetUnsigned => {
            let root = repo.read_unsigned_root()?;
            print_raw(CanonicalJson::of(&root.to_signed()?).as_bytes())
        }
        RootCommand::IncrementVersion => {
            let mut root = repo.read_unsigned_root()?;
            root.version += 1;
            repo.write_unsigned_root(&root)
        }
        RootCommand::Key(cmd) => edit_role_keys(&repo, "root", cmd),
        RootCommand::TargetsKey(cmd) => edit_role_keys(&repo, "targets", cmd),
        RootCommand::SetThreshold { threshold } => set_threshold(&repo, "root", threshold),
        RootCommand::Sign(a) => sign(&repo, a),
        RootCommand::Pull { force } => pull(ctx, &repo, force).map(|_| ()),
        RootCommand::Push => push(ctx, &repo),
    }
}

fn edit_role_keys(repo: &TufRepo, role_name: &str, cmd: RoleKeyCommand) -> Result<()> {
    let mut root = repo.read_unsigned_root()?;
    match cmd {
        RoleKeyCommand::Add(sel) => {
            if sel.key_names.is_empty() {
                return Err(Error::Usage("give at least one --key-name".into()));
            }
            for name in &sel.key_names {
                let key = repo.read_public_key(name)?;
                let id = root.add_role_key(role_name, &key)?;
                log::info!("added key {name} ({id}) to the {role_name} role");
            }
        }
        RoleKeyCommand::Remove(sel) => remove_keys(repo, &mut root, role_name, &sel)?,
    }
    repo.write_unsigned_root(&root)
}

fn remove_keys(
    repo: &TufRepo,
    root: &mut RootRole,
    role_name: &str,
    sel: &KeySelector,
) -> Result<()> {
    if sel.key_names.is_empty() && sel.key_ids.is_empty() {
        return Err(Error::Usage(
            "give at least one --key-name or --key-id to remove".into(),
        ));
    }
    let mut ids = sel
        .key_ids
        .iter()
        .map(|s| KeyId::parse(s))
        .collect::<Result<Vec<_>>>()?;
    for name in &sel.key_names {
        ids.push(repo.read_public_key(name)?.key_id());
    }
    let role = root
        .roles
        .get_mut(role_name)
        .ok_or_else(|| Error::invalid("root.json", format!("roles.{role_name} is missing")))?;
    if let Some(missing) = ids.iter().find(|id| !role.keyids.contains(id)) {
        return Err(Error::key(
            missing.to_string(),
            format!("is not a key of the {role_name} role"),
        ));
    }
    let remaining = role.keyids.iter().filter(|k| !ids.contains(k)).count() as i64;
    if remaining < role.threshold {
        return Err(Error::Other(format!(
            "Could not remove keys because the {role_name} role would keep {remaining} key(s), fewer than its threshold {}",
            role.threshold
        )));
    }
    role.keyids.retain(|k| !ids.contains(k));
    root.prune_keys();
    Ok(())
}

/// Sets `role_name`'s threshold in the unsigned root (1 ≤ n ≤ number of keys).
pub fn set_threshold(repo: &TufRepo, role_name: &str, threshold: i64) -> Result<()> {
    let mut root = repo.read_unsigned_root()?;
    let role = root
        .roles
        .get_mut(role_name)
        .ok_or_else(|| Error::invalid("root.json", format!("roles.{role_name} is missing")))?;
    if threshold < 1 || threshold > role.keyids.len() as i64 {
        return Err(Error::Usage(format!(
            "threshold {threshold} is not between 1 and the {} key(s) of the {role_name} role",
            role.keyids.len()
        )));
    }
    role.threshold = threshold;
    repo.write_unsigned_root(&root)
}

fn sign(repo: &TufRepo, a: RootSignArgs) -> Result<()> {
    let unsigned = repo.read_unsigned_root()?;
    let choice = ExpiryChoice::from_flags(
        a.expiry.expires.as_deref(),
        a.expiry.expire_after.as_deref(),
    )?;
    let mut keys = Vec::new();
    let role = if a.signatures.is_some() {
        if choice != ExpiryChoice::Default {
            return Err(Error::Usage(
                "--signatures signs the unsigned root as it is: --expires and --expire-after cannot be used with it".into(),
            ));
        }
        // The old root key's signature comes first (garage-sign).
        if let Some(alias) = &a.old_root_alias {
            keys.push(crate::keyref::resolve_signing_key(&repo.keys_dir(), alias)?);
        }
        unsigned
    } else {
        if a.old_root_alias.is_some() {
            return Err(Error::Usage(
                "--old-root-alias goes with --signatures; to sign with the old root key locally, pass it as another --key-name".into(),
            ));
        }
        let mut role = unsigned.clone();
        role.version = unsigned.version + 1;
        role.expires = choice.resolve(
            Some(unsigned.expires),
            ROOT_DAYS,
            chrono::Utc::now(),
            a.expiry.force,
        )?;
        role
    };
    keys.extend(super::read_private_keys(repo, &a.key_names)?);
    let payload =
        super::sign_role(repo, role.canonical()?, &keys, a.signatures.as_deref())?.to_payload()?;
    check_chain(repo, &payload);
    repo.write_signed_root(&payload)?;
    log::info!(
        "signed root.json version {} ({} signature(s))",
        payload.version().unwrap_or(0),
        payload.signatures.len()
    );
    Ok(())
}

/// Warns when the server will refuse this root (it applies the same checks).
fn check_chain(repo: &TufRepo, payload: &SignedPayload) {
    if let Err(e) = verify::verify_self_signed_root(payload, "new root.json") {
        log::warn!("the new root is not signed by a threshold of its own root keys: {e}");
    }
    let Ok(current) = repo.read_signed_root() else {
        return;
    };
    let Ok(old) = TrustedRoot::from_signed(&current.signed, "roles/root.json") else {
        return;
    };
    if old.version() + 1 == payload.version().unwrap_or(0) {
        if let Err(e) = old.verify("root", payload, "new root.json") {
            log::warn!("the new root is not signed by a threshold of the current root's keys, so the server will refuse it: {e}");
        }
    }
}

/// The server's latest root, reached from the local root by the chain rule
/// (reference/garage-sign.md §1.6); writes roles/root.json and roles/unsigned/root.json.
pub fn pull(ctx: &Context, repo: &TufRepo, force: bool) -> Result<SignedPayload> {
    let client = ctx.client(repo)?;
    let latest = client.get_root()?.payload;
    let what = "the server's root.json";
    if force || !repo.signed_root_path().exists() {
        if !force {
            return Err(Error::Other(format!(
                "{} is missing: there is no trusted root to check the server's root against (init from a credentials.zip with root.json, or pass --force to trust the server's root as it is)",
                repo.signed_root_path().display()
            )));
        }
        verify::verify_self_signed_root(&latest, what)?;
    } else {
        let local = repo.read_signed_root()?;
        let local_version = local.version().unwrap_or(0);
        let latest_version = latest.version().unwrap_or(0);
        if latest_version < local_version {
            return Err(Error::verification(what, format!("version {latest_version} is older than the local root version {local_version}: refusing a rollback")));
        }
        if latest_version == local_version {
            if CanonicalJson::of(&latest.signed) != CanonicalJson::of(&local.signed) {
                return Err(Error::verification(
                    what,
                    format!(
                        "differs from the local root although both are version {local_version}"
                    ),
                ));
            }
        } else {
            let chain = verify::walk_root_chain(&local, "roles/root.json", 10_000, |v| {
                if v == latest_version {
                    Ok(Some(latest.clone()))
                } else {
                    client.get_root_version(v).map(|f| f.map(|f| f.payload))
                }
            })?;
            if chain.last().and_then(SignedPayload::version) != Some(latest_version) {
                return Err(Error::verification(
                    what,
                    "the version chain does not reach the server's latest root",
                ));
            }
        }
    }
    let role = RootRole::from_signed(&latest.signed, what)?;
    if role.expires.is_past() {
        // Devices refuse an expired root, and with it every targets.json it signs.
        if !force {
            return Err(Error::Explained(format!(
                "the server's root.json version {} expired at {}: devices refuse it. Pull it anyway with `root pull --force`, then renew it (root increment-version, root sign, root push)",
                role.version, role.expires
            )));
        }
        log::warn!("the server's root.json expired at {}", role.expires);
    }
    repo.write_unsigned_root(&role)?;
    repo.write_signed_root(&latest)?;
    log::info!("pulled root.json version {}", role.version);
    Ok(latest)
}

/// `root push`: roles/root.json, checked locally against its own root keys first.
fn push(ctx: &Context, repo: &TufRepo) -> Result<()> {
    let root = repo.read_signed_root()?;
    verify::verify_self_signed_root(&root, &repo.signed_root_path().display().to_string())?;
    ctx.client(repo)?.post_root(&root)?;
    log::info!("pushed root.json version {}", root.version().unwrap_or(0));
    Ok(())
}
