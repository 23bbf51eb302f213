//! `key generate` and `user-keys gen|id|importpub` (reference/garage-sign.md §1.3–1.4).

use super::{parse_key_type, print_raw, Context};
use crate::cli::{KeyCommand, KeyTypeArgs, UserKeysArgs, UserKeysCommand};
use crate::error::{Error, Result};
use crate::fsutil;
use crate::keyref;
use crate::keys::{PrivateKey, PublicKey};
use crate::pkcs11::{self, Pkcs11Uri};
use crate::repo::{self, check_name};
use std::path::Path;

fn generate(args: &KeyTypeArgs) -> Result<PrivateKey> {
    let keytype = parse_key_type(&args.key_type)?;
    PrivateKey::generate(keytype, args.keysize)
}

/// `--pkcs11 URI`: the pair is created on the token; only `<name>.pub` and the alias
/// `<name>.pkcs11` are written to `dir`.
fn generate_on_token(dir: &Path, name: &str, uri: &str, args: &KeyTypeArgs) -> Result<()> {
    check_name("key", name)?;
    let keytype = parse_key_type(&args.key_type)?;
    let uri = Pkcs11Uri::parse(uri)?;
    if dir.join(format!("{name}.sec")).exists() || dir.join(format!("{name}.pkcs11")).exists() {
        return Err(Error::key(
            name,
            format!("a key named {name} already exists in {}", dir.display()),
        ));
    }
    let uri = pkcs11::generate(&uri, keytype, args.keysize)?;
    // The pair now exists on the token: if the files cannot be written, say how to
    // adopt it instead of generating another.
    let written = keyref::resolve_public_key(dir, &uri.to_string())
        .and_then(|key| keyref::write_token_alias(dir, name, &uri, &key).map(|_| key));
    let key = written.map_err(|e| {
        Error::key(
            name,
            format!("{e}; the key pair was created on the token: adopt it with `ota-sign key import --pkcs11 '{uri}' --name {name}`"),
        )
    })?;
    log::info!(
        "generated {keytype} key {name} with id {} on the token ({uri})",
        key.key_id()
    );
    Ok(())
}

pub fn key(ctx: &Context, cmd: KeyCommand) -> Result<()> {
    match cmd {
        KeyCommand::Generate(a) => {
            let repo = ctx.repo(&a.repo)?;
            repo.ensure_exists()?;
            if let Some(uri) = &a.key.pkcs11 {
                return generate_on_token(&repo.keys_dir(), &a.name, uri, &a.key);
            }
            check_name("key", &a.name)?;
            let key = generate(&a.key)?;
            repo.write_key_pair(&a.name, &key)?;
            log::info!(
                "generated {} key {} with id {}",
                key.keytype(),
                a.name,
                key.key_id()
            );
            Ok(())
        }
        KeyCommand::Import(a) => {
            let repo = ctx.repo(&a.repo)?;
            repo.ensure_exists()?;
            check_name("key", &a.name)?;
            let uri = Pkcs11Uri::parse(&a.pkcs11)?;
            // Opening it for signing checks the PIN, the object and the mechanism now.
            let key = keyref::KeyHandle::token(&uri)?;
            keyref::write_token_alias(&repo.keys_dir(), &a.name, &uri, key.public())?;
            log::info!(
                "imported token key {} with id {} ({})",
                a.name,
                key.key_id(),
                uri
            );
            Ok(())
        }
    }
}

pub fn user_keys(ctx: &Context, args: UserKeysArgs) -> Result<()> {
    let keys_path = args
        .keys_path
        .clone()
        .unwrap_or_else(|| ctx.home.join("user-keys"));
    match args.command {
        UserKeysCommand::Gen { key_name, key } => {
            if let Some(uri) = &key.pkcs11 {
                return generate_on_token(&keys_path, &key_name, uri, &key);
            }
            check_name("key", &key_name)?;
            let k = generate(&key)?;
            repo::write_key_pair(&keys_path, &key_name, &k)?;
            log::info!(
                "generated {} key {} with id {}",
                k.keytype(),
                keys_path.join(&key_name).display(),
                k.key_id()
            );
            Ok(())
        }
        UserKeysCommand::Id { input } => {
            let key = repo::read_public_key_file(&input)?;
            print_raw(key.key_id().as_str().as_bytes())
        }
        UserKeysCommand::Importpub {
            repo,
            key_name,
            input,
        } => {
            let repo = ctx.repo(&repo)?;
            repo.ensure_exists()?;
            let text = fsutil::read_to_string(&input)?;
            let key = PublicKey::from_pem(&text).map_err(|e| {
                Error::key(
                    input.display().to_string(),
                    format!("Cannot parse public key from {}: {e}", input.display()),
                )
            })?;
            repo.write_public_key(&key_name, &key)?;
            log::info!(
                "imported {} key {} with id {}",
                key.keytype(),
                key_name,
                key.key_id()
            );
            Ok(())
        }
    }
}
