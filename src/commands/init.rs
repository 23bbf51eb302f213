//! `init`: a local repository from credentials.zip (reference/garage-sign.md §1.2).
//! Everything is read and checked before the first write; if a write fails the new
//! repository directory is removed again.

use super::Context;
use crate::cli::InitArgs;
use crate::credentials::{AuthConfig, Credentials, RepoConfig};
use crate::error::{Error, Result};
use crate::fsutil::{self, PRIVATE_FILE, PUBLIC_FILE};
use crate::repo::TufRepo;

pub fn run(ctx: &Context, args: InitArgs) -> Result<()> {
    let repo = ctx.repo(&args.repo)?;
    let director = args.servertype.eq_ignore_ascii_case("director");
    let creds = Credentials::read(&args.credentials)?;
    let treehub = creds.treehub()?;
    let auth = creds.auth()?;
    let reposerver = match args.reposerver {
        Some(url) => url.trim().trim_end_matches('/').to_string(),
        None => creds.server_url(if director {
            "api_gateway.url"
        } else {
            "tufrepo.url"
        })?,
    };
    // Absent optional entries are warned about (as garage-sign); a present entry that
    // cannot be used is an error naming it, before anything is written.
    let root = if director {
        None
    } else {
        creds.verified_root()?
    };
    if root.is_none() && !director {
        log::warn!(
            "{} has no root.json: run `ota-sign root pull` before `targets pull`",
            args.credentials.display()
        );
    }
    let targets_key = creds.targets_key()?;
    if targets_key.is_none() {
        log::warn!(
            "{} has no targets.pub/targets.sec: targets are signed online by the server until `move-offline`",
            args.credentials.display()
        );
    }
    let config = RepoConfig {
        reposerver,
        auth,
        treehub,
        director,
    };

    repo.create_dirs()?;
    if let Err(e) = write_repo(
        &repo,
        &args.credentials,
        &creds,
        &config,
        root.is_some(),
        targets_key.as_ref(),
    ) {
        let _ = std::fs::remove_dir_all(repo.dir());
        return Err(e);
    }
    log::info!(
        "initialized repository {} for {}",
        repo.dir().display(),
        config.reposerver
    );
    Ok(())
}

fn write_repo(
    repo: &TufRepo,
    zip_path: &std::path::Path,
    creds: &Credentials,
    config: &RepoConfig,
    has_root: bool,
    targets_key: Option<&crate::keys::PrivateKey>,
) -> Result<()> {
    // The very bytes that were checked, not a second read of a file that may have changed.
    fsutil::write_atomic(&repo.credentials_path(), creds.raw(), PRIVATE_FILE)?;
    if let AuthConfig::MutualTls {
        cert_path,
        server_cert_path,
    } = &config.auth
    {
        for name in std::iter::once(cert_path).chain(server_cert_path) {
            let data = creds.entry(name).ok_or_else(|| {
                Error::invalid(zip_path.display().to_string(), format!("missing {name}"))
            })?;
            fsutil::write_atomic(&repo.dir().join(name), data, PRIVATE_FILE)?;
        }
    }
    repo.write_config(config)?;
    if has_root {
        if let Some(root) = creds.entry("root.json") {
            fsutil::write_atomic(&repo.signed_root_path(), root, PUBLIC_FILE)?;
        }
    }
    if let Some(key) = targets_key {
        repo.write_key_pair("targets", key)?;
    } else if let Some((uri, public)) =
        crate::keyref::zip_token_reference(creds, &zip_path.display().to_string())?
    {
        // A token-backed zip: the targets key stays on the token; keep the reference.
        crate::keyref::write_token_alias(&repo.keys_dir(), "targets", &uri, &public)?;
    }
    Ok(())
}
