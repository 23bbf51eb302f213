//! `export-credentials` (reference/garage-sign.md §2.3): treehub.json, tufrepo.url,
//! the chosen key pair as targets.pub/targets.sec (a token key as targets.pub and a
//! `targets.pkcs11` reference, never a PIN), roles/root.json, then every other entry
//! of the repository's credentials.zip except its own targets key.

use super::Context;
use crate::canonical::to_pretty;
use crate::cli::ExportArgs;
use crate::credentials::{self, AuthConfig, Credentials};
use crate::error::Result;
use crate::fsutil;
use crate::keyref::{self, TOKEN_ENTRY};

pub fn run(ctx: &Context, args: ExportArgs) -> Result<()> {
    let repo = ctx.repo(&args.repo)?;
    repo.ensure_exists()?;
    let config = repo.read_config()?;
    let key = TargetsKey::read(&repo.keys_dir(), &args.key_name)?;
    let mut treehub = config.treehub.clone();
    treehub.oauth2 = match &config.auth {
        AuthConfig::OAuth2(o) => Some(o.clone()),
        _ => None,
    };
    // treehub.json holds the client secret: build it in a zeroizing buffer and wipe
    // the intermediate JSON value.
    let treehub_value = treehub.to_json();
    let treehub_json = zeroize::Zeroizing::new(to_pretty(&treehub_value));
    credentials::wipe(treehub_value);
    let (pub_file, (secret_entry, secret)) = (key.pub_file(), key.secret_entry());
    let root = if repo.signed_root_path().exists() {
        Some(fsutil::read_secret(&repo.signed_root_path())?)
    } else {
        log::warn!(
            "{} does not exist: the exported zip has no root.json",
            repo.signed_root_path().display()
        );
        None
    };
    let original = if repo.credentials_path().exists() {
        Some(Credentials::read(&repo.credentials_path())?)
    } else {
        None
    };

    let mut entries: Vec<(&str, &[u8])> = vec![
        ("treehub.json", treehub_json.as_bytes()),
        ("tufrepo.url", config.reposerver.as_bytes()),
        ("targets.pub", pub_file.as_bytes()),
        (secret_entry, secret.as_bytes()),
    ];
    if let Some(r) = &root {
        entries.push(("root.json", r));
    }
    if let Some(orig) = &original {
        for (name, data) in orig.entries() {
            // The original online targets key never rides along with another key.
            if !entries.iter().any(|(n, _)| *n == name) && !TARGETS_KEY_ENTRIES.contains(&name) {
                entries.push((name, data));
            }
        }
    }
    credentials::write_zip(&args.output, &entries)?;
    log::info!(
        "exported {} with targets key {} ({})",
        args.output.display(),
        args.key_name,
        key.key_id()
    );
    Ok(())
}

/// Zip entries that hold the targets key pair or a reference to it.
const TARGETS_KEY_ENTRIES: [&str; 3] = ["targets.pub", "targets.sec", TOKEN_ENTRY];

/// The exported targets key: a `.sec` pair, or a token key exported by reference.
enum TargetsKey {
    Software(crate::keys::PrivateKey),
    Token(crate::pkcs11::Pkcs11Uri, crate::keys::PublicKey),
}

impl TargetsKey {
    fn read(keys_dir: &std::path::Path, name: &str) -> Result<Self> {
        Ok(match keyref::token_reference(keys_dir, name)? {
            Some(uri) => TargetsKey::Token(
                uri.without_pin(),
                keyref::resolve_public_key(keys_dir, name)?,
            ),
            None => TargetsKey::Software(crate::repo::read_private_key_pair(keys_dir, name)?),
        })
    }

    fn key_id(&self) -> crate::keys::KeyId {
        match self {
            TargetsKey::Software(k) => k.key_id(),
            TargetsKey::Token(_, p) => p.key_id(),
        }
    }

    fn pub_file(&self) -> String {
        match self {
            TargetsKey::Software(k) => k.to_pub_file(),
            TargetsKey::Token(_, p) => to_pretty(&p.to_json()),
        }
    }

    /// `targets.sec` with the private key, or `targets.pkcs11` with the URI (no PIN).
    fn secret_entry(&self) -> (&'static str, zeroize::Zeroizing<String>) {
        match self {
            TargetsKey::Software(k) => ("targets.sec", k.to_sec_file()),
            TargetsKey::Token(uri, _) => (TOKEN_ENTRY, zeroize::Zeroizing::new(format!("{uri}\n"))),
        }
    }
}
