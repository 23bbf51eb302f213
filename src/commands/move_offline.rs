//! `move-offline` (reference/garage-sign.md §1.5): take the server's root key offline
//! and, with `--new-root`/`--new-targets`, rotate to new offline root and targets keys.

use super::Context;
use crate::cli::MoveOfflineArgs;
use crate::error::{Error, Result};
use crate::expiry::ROOT_DAYS;
use crate::keyref::{self, KeyHandle};
use crate::keys::{KeyId, PrivateKey, PublicKey};
use crate::metadata::{Expires, RoleKeys, RootRole, SignedPayload};
use crate::verify;

pub fn run(ctx: &Context, a: MoveOfflineArgs) -> Result<()> {
    let repo = ctx.repo(&a.repo)?;
    repo.ensure_exists()?;
    if repo.read_config()?.director {
        return Err(Error::Explained(
            "move-offline for director repositories is not supported by ota-sign".into(),
        ));
    }
    if a.new_root.is_some() != a.new_targets.is_some() {
        return Err(Error::Usage(
            "--new-root and --new-targets go together for an image repository".into(),
        ));
    }
    // Read every local key first: a typo must fail before the server is touched.
    let new_keys = match (&a.new_root, &a.new_targets) {
        (Some(r), Some(t)) => Some((
            keyref::resolve_signing_key(&repo.keys_dir(), r)?,
            keyref::resolve_public_key(&repo.keys_dir(), t)?,
        )),
        _ => None,
    };
    let client = ctx.client(&repo)?;

    // 1. The server's root, checked against the local root when there is one.
    let root_payload = if repo.signed_root_path().exists() {
        super::root::pull(ctx, &repo, false)?
    } else {
        log::warn!("no local root.json: trusting the server's root as it is (it must be signed by its own root keys)");
        let r = client.get_root()?.payload;
        verify::verify_self_signed_root(&r, "the server's root.json")?;
        r
    };
    let old_root = RootRole::from_signed(&root_payload.signed, "the server's root.json")?;

    // 2. Make sure targets are pulled (never overwriting a local unsigned targets.json).
    if !repo.unsigned_targets_path().exists() {
        let trusted = verify::TrustedRoot::from_signed(&root_payload.signed, "root.json")?;
        let fetched = client.get_targets()?;
        let role = verify::verified_targets(&trusted, &fetched.payload)?;
        repo.write_unsigned_targets(&role)?;
        repo.write_checksum(&fetched.checksum)?;
        log::info!("pulled targets.json version {}", role.version);
    }

    // 3. The root key to take offline.
    let old_id = match &a.old_keyid {
        Some(id) => KeyId::parse(id)?,
        None => old_root
            .role("root")?
            .keyids
            .last()
            .cloned()
            .ok_or_else(|| Error::invalid("the server's root.json", "the root role has no keys"))?,
    };
    let old_public = old_root
        .keys
        .get(&old_id)
        .ok_or_else(|| Error::key(old_id.clone(), "is not a key of the server's root"))?
        .clone();

    // 4–5. Download it (unless we already have it), save it, then delete it on the server.
    let old_key = if repo.has_private_key(&a.old_root_alias) {
        let k = repo.read_private_key(&a.old_root_alias)?;
        if k.public().spki_der() != old_public.spki_der() {
            return Err(Error::key(
                a.old_root_alias.clone(),
                format!(
                    "keys/{}.sec is not the server's root key {old_id}",
                    a.old_root_alias
                ),
            ));
        }
        k
    } else {
        let pair = client.get_private_key(&old_id)?;
        let key = parse_key_pair(&pair, &old_public, &old_id)?;
        repo.write_key_pair(&a.old_root_alias, &key)?;
        client.delete_private_key(&old_id)?;
        log::info!(
            "root key {old_id} saved as keys/{}.sec and deleted from the server",
            a.old_root_alias
        );
        key
    };

    // 6. Without --new-root garage-sign stops here.
    let Some((new_root_key, new_targets_key)) = new_keys else {
        log::warn!("root keys moved offline, but you'll have to manually sign and push root.json");
        return Ok(());
    };

    // 7. The new root: new root and targets keys, version + 1, now + 365 days.
    let mut new_root = old_root.clone();
    set_single_key(&mut new_root, "root", new_root_key.public())?;
    set_single_key(&mut new_root, "targets", &new_targets_key)?;
    new_root.prune_keys();
    new_root.version = old_root.version + 1;
    new_root.expires = Expires::new(chrono::Utc::now() + chrono::Duration::days(ROOT_DAYS as i64));

    // 8. Signed by the new root key and the old root key, in that order; checked
    //    locally with the rules the server applies, then posted.
    let old_key = KeyHandle::software(&old_key, &a.old_root_alias)?;
    let signed = SignedPayload::sign_with(new_root.to_signed()?, &[&new_root_key, &old_key])?;
    let trusted_old =
        verify::TrustedRoot::from_signed(&root_payload.signed, "the server's root.json")?;
    verify::verify_root_update(&trusted_old, &signed, "the new root.json")?;
    client.post_root(&signed)?;
    repo.write_signed_root(&signed)?;
    log::info!(
        "root.json version {} now lists root key {} and targets key {}; sign and push targets.json with the new targets key next",
        new_root.version,
        new_root_key.key_id(),
        new_targets_key.key_id()
    );
    Ok(())
}

fn set_single_key(root: &mut RootRole, role: &str, key: &PublicKey) -> Result<()> {
    let id = key.key_id();
    root.keys.insert(id.clone(), key.clone());
    root.roles.insert(
        role.to_string(),
        RoleKeys {
            keyids: vec![id],
            threshold: 1,
        },
    );
    Ok(())
}

/// The key pair JSON served by `GET root/private_keys/{id}`.
fn parse_key_pair(json: &str, expected: &PublicKey, id: &str) -> Result<PrivateKey> {
    let value: serde_json::Value = serde_json::from_str(json).map_err(|e| {
        Error::key(
            id.to_string(),
            format!("the server's key pair is not JSON: {e}"),
        )
    })?;
    let key = PrivateKey::from_json(&value, Some(expected));
    crate::credentials::wipe(value);
    key.map_err(|e| {
        Error::key(
            id.to_string(),
            format!("the server's key pair is unusable: {e}"),
        )
    })
}
