//! `sign-json`, `verify-json` (uptane-sign) and the hidden `verify-root`.

use super::{print_raw, Context};
use crate::canonical::CanonicalJson;
use crate::cli::{SignJsonArgs, VerifyJsonArgs, VerifyRootArgs};
use crate::error::{Error, Result};
use crate::fsutil;
use crate::metadata::SignedPayload;
use crate::repo;
use crate::verify;
use serde_json::Value;

pub fn sign_json(a: SignJsonArgs) -> Result<()> {
    let public = repo::read_public_key_file(&a.pub_key)?;
    let key = match a.priv_key.to_str().filter(|k| crate::pkcs11::is_uri(k)) {
        Some(uri) => crate::keyref::resolve_signing_key(std::path::Path::new("."), uri)?,
        None => {
            let key = repo::read_private_key_file(&a.priv_key, Some(&public))?;
            crate::keyref::KeyHandle::software(&key, &a.priv_key.display().to_string())?
        }
    };
    if key.public().spki_der() != public.spki_der() {
        return Err(Error::key(
            a.pub_key.display().to_string(),
            format!(
                "is key {} but the private key is {}",
                public.key_id(),
                key.key_id()
            ),
        ));
    }
    let value: Value = fsutil::read_json(&a.input)?;
    let payload = SignedPayload::sign_with(value, &[&key])?;
    print_raw(CanonicalJson::of(&crate::error::to_json_value(&payload, "signed JSON")?).as_bytes())
}

pub fn verify_json(a: VerifyJsonArgs) -> Result<()> {
    let public = repo::read_public_key_file(&a.pub_key)?;
    let payload = SignedPayload::parse(&fsutil::read(&a.input)?, &a.input.display().to_string())?;
    let message = CanonicalJson::of(&payload.signed);
    let id = public.key_id().to_string();
    let valid: Vec<&str> = payload
        .signatures
        .iter()
        .filter(|s| s.keyid == id && public.verify(&s.method, message.as_bytes(), &s.sig))
        .map(|s| s.keyid.as_str())
        .collect();
    if valid.is_empty() {
        println!("Invalid signatures");
        Err(Error::Explained(format!(
            "{}: no valid signature by key {id}",
            a.input.display()
        )))
    } else {
        println!("Valid signatures: {}", valid.join(", "));
        Ok(())
    }
}

pub fn verify_root(_ctx: &Context, a: VerifyRootArgs) -> Result<()> {
    let what = a.input.display().to_string();
    let payload = SignedPayload::parse(&fsutil::read(&a.input)?, &what)?;
    let root = verify::verify_self_signed_root(&payload, &what)?;
    println!(
        "{what}: root version {} is signed by a threshold of its own root keys",
        root.version()
    );
    Ok(())
}
