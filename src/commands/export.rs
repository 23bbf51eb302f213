//! `export-credentials` (reference/garage-sign.md §2.3): treehub.json, tufrepo.url,
//! the chosen key pair as targets.pub/targets.sec, roles/root.json, then every other
//! entry of the repository's credentials.zip.

use super::Context;
use crate::canonical::to_pretty;
use crate::cli::ExportArgs;
use crate::credentials::{self, AuthConfig, Credentials};
use crate::error::Result;
use crate::fsutil;

pub fn run(ctx: &Context, args: ExportArgs) -> Result<()> {
    let repo = ctx.repo(&args.repo)?;
    repo.ensure_exists()?;
    let config = repo.read_config()?;
    let key = repo.read_private_key(&args.key_name)?;
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
    let pub_file = key.to_pub_file();
    let sec_file = key.to_sec_file();
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
        ("targets.sec", sec_file.as_bytes()),
    ];
    if let Some(r) = &root {
        entries.push(("root.json", r));
    }
    if let Some(orig) = &original {
        for (name, data) in orig.entries() {
            if !entries.iter().any(|(n, _)| *n == name) {
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
