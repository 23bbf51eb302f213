//! `import-client-cert`: switch a repository to mutual TLS.

use super::Context;
use crate::cli::ImportClientCertArgs;
use crate::credentials::AuthConfig;
use crate::error::Result;
use crate::fsutil::{self, PRIVATE_FILE};
use crate::http::{ClientAuth, ReposerverClient};
use zeroize::Zeroizing;

pub fn run(ctx: &Context, a: ImportClientCertArgs) -> Result<()> {
    let repo = ctx.repo(&a.repo)?;
    repo.ensure_exists()?;
    let mut config = repo.read_config()?;
    let client = Zeroizing::new(fsutil::read(&a.client_cert)?);
    let server = a.server_cert.as_deref().map(fsutil::read).transpose()?;
    // Building a client parses both stores: broken files fail before anything is written.
    ReposerverClient::new(
        &config.reposerver,
        ClientAuth::mutual_tls(client.clone(), server.clone()),
        &ctx.client_options(),
    )?;
    fsutil::write_atomic(&repo.dir().join("client_auth.p12"), &client, PRIVATE_FILE)?;
    if let Some(s) = &server {
        fsutil::write_atomic(&repo.dir().join("server.p12"), s, PRIVATE_FILE)?;
    }
    config.auth = AuthConfig::MutualTls {
        cert_path: "client_auth.p12".into(),
        server_cert_path: server.map(|_| "server.p12".into()),
    };
    repo.write_config(&config)?;
    log::info!(
        "{} now uses mutual TLS with {}",
        repo.dir().display(),
        a.client_cert.display()
    );
    Ok(())
}
