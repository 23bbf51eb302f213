//! `key generate` and `user-keys gen|id|importpub` (reference/garage-sign.md §1.3–1.4).

use super::{parse_key_type, print_raw, Context};
use crate::cli::{KeyCommand, KeyTypeArgs, UserKeysArgs, UserKeysCommand};
use crate::error::{Error, Result};
use crate::fsutil;
use crate::keys::{PrivateKey, PublicKey};
use crate::repo::{self, check_name};

fn generate(args: &KeyTypeArgs) -> Result<PrivateKey> {
    let keytype = parse_key_type(&args.key_type)?;
    PrivateKey::generate(keytype, args.keysize)
}

pub fn key(ctx: &Context, cmd: KeyCommand) -> Result<()> {
    match cmd {
        KeyCommand::Generate(a) => {
            let repo = ctx.repo(&a.repo)?;
            repo.ensure_exists()?;
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
    }
}

pub fn user_keys(ctx: &Context, args: UserKeysArgs) -> Result<()> {
    let keys_path = args
        .keys_path
        .clone()
        .unwrap_or_else(|| ctx.home.join("user-keys"));
    match args.command {
        UserKeysCommand::Gen { key_name, key } => {
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
