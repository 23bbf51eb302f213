//! `delegations init|sign|add-target` (reference/garage-sign.md §1.8): supplier-side
//! files. These sign the raw input JSON as it is, not a re-encoded model.

use super::{print_raw, Context};
use crate::canonical::{to_pretty, CanonicalJson};
use crate::cli::DelegationsCommand;
use crate::error::{Error, Result};
use crate::expiry::ROOT_DAYS;
use crate::fsutil::{self, PUBLIC_FILE};
use crate::metadata::{deep_merge, Expires, SignedPayload, TargetsRole};
use serde_json::Value;
use std::path::Path;

pub fn run(ctx: &Context, cmd: DelegationsCommand) -> Result<()> {
    match cmd {
        DelegationsCommand::Init => {
            let expires =
                Expires::new(chrono::Utc::now() + chrono::Duration::days(ROOT_DAYS as i64));
            let role = TargetsRole::new(1, expires);
            print_raw(CanonicalJson::of(&role.to_signed()?).as_bytes())
        }
        DelegationsCommand::Sign {
            key_names,
            keys_path,
            input,
            inplace,
        } => {
            let keys_path = keys_path.unwrap_or_else(|| ctx.home.join("user-keys"));
            let value = read_json(&input)?;
            if value.get("signatures").is_some() && value.get("signed").is_some() {
                return Err(Error::Other(format!(
                    "DelegationsAlreadySigned: {} is already a signed payload",
                    input.display()
                )));
            }
            let keys = key_names
                .iter()
                .map(|n| crate::keyref::resolve_signing_key(&keys_path, n))
                .collect::<Result<Vec<_>>>()?;
            let payload = SignedPayload::sign_with(value, &keys.iter().collect::<Vec<_>>())?;
            output(
                &input,
                inplace,
                &crate::error::to_json_value(&payload, "delegation")?,
            )
        }
        DelegationsCommand::AddTarget {
            add,
            input,
            inplace,
        } => {
            let new = super::targets::added_target(add)?;
            let mut value = read_json(&input)?;
            if value.get("signatures").is_some() && value.get("signed").is_some() {
                return Err(Error::Other(format!(
                    "{} is already signed; add targets to the unsigned file",
                    input.display()
                )));
            }
            let filename = new.target_name()?;
            let existing = value
                .pointer(&format!(
                    "/targets/{}",
                    filename.replace('~', "~0").replace('/', "~1")
                ))
                .and_then(|t| t.get("custom"))
                .cloned();
            let item = new.item(existing.as_ref(), Expires::now())?;
            let patch = serde_json::json!({"targets": {filename.as_str(): item}});
            deep_merge(&mut value, &patch);
            output(&input, inplace, &value)
        }
        DelegationsCommand::Push { repo, name, input } => {
            let repo = ctx.existing_repo(Some(&repo))?;
            let payload =
                SignedPayload::parse(&fsutil::read(&input)?, &input.display().to_string())?;
            ctx.client(&repo)?.put_delegation(&name, &payload)?;
            log::info!("pushed delegation {name}");
            Ok(())
        }
        DelegationsCommand::Pull { repo, name, output } => {
            let repo = ctx.existing_repo(Some(&repo))?;
            let bytes = ctx.client(&repo)?.get_delegation(&name)?;
            match output {
                Some(path) => fsutil::write_atomic(&path, &bytes, PUBLIC_FILE),
                None => print_raw(&bytes),
            }
        }
    }
}

fn read_json(path: &Path) -> Result<Value> {
    fsutil::read_json(path)
}

fn output(input: &Path, inplace: bool, value: &Value) -> Result<()> {
    if inplace {
        fsutil::write_atomic(input, to_pretty(value).as_bytes(), PUBLIC_FILE)
    } else {
        print_raw(CanonicalJson::of(value).as_bytes())
    }
}
