//! `ota-reposerver`: a small, persistent server that behaves like the ota-tuf
//! reposerver + keyserver as garage-sign and aktualizr see them
//! (reference/reposerver.md), for testing clients.
//!
//! ## Data directory
//! ```text
//! <data-dir>/                 0700
//!   account.json              0600  repo id, key type, auth mode, OAuth2 client, admin token
//!   admin.token               0600  the admin token alone (for scripts and tests)
//!   repo/roots/<N>.root.json        every root version (canonical JSON)
//!   repo/metadata.json              targets, snapshot, timestamp, delegations (one atomic file)
//!   keys/<keyid>.json         0600  online key pairs (directory 0700)
//!   targets/<sha256(name)>          stored target files
//!   uploads/tmp/, uploads/multipart/<uploadId>/   uploads in progress
//!   tls/                      0700  CA, server and client certificates (mutual TLS only)
//! ```
//! Every write is atomic (temporary file + rename), so a killed server restarts with
//! the last committed state; one mutex serialises all metadata changes.
//!
//! ## Authentication (chosen at `init-account`, stored in account.json)
//! - `none`: no checks; treehub.json has `"no_auth": true`.
//! - `oauth2`: `POST /token` with HTTP Basic `client_id:client_secret` and the form
//!   `grant_type=client_credentials` returns `{"access_token",…}`; every `/api/…`
//!   route then requires `Authorization: Bearer <token>` (401 otherwise). treehub.json
//!   carries `oauth2.server = <url>/token`, the client id, secret and scope.
//! - `mtls`: https only; the TLS handshake requires a client certificate issued by the
//!   server's CA. credentials.zip then carries `client_auth.p12` and `server.p12`.
//!
//! ## Admin and fault injection
//! `/_admin/faults` (header `x-ota-admin-token: <admin.token>`, never faulted, not
//! subject to OAuth2): `POST` a [`faults::FaultRule`] or an array of them, `GET` lists
//! the remaining rules, `DELETE` clears them. Rules are kept in memory.
//!
//! ## Uploads
//! `PUT uploads/<file>` answers `302` to `<url>/_storage/uploads/<file>?token=…`;
//! `GET multipart/url/…` hands out `<url>/_storage/multipart/<id>/<part>?token=…`.
//! Those URLs play the part of S3 presigned URLs: no bearer needed, the token is
//! derived from the admin token. `--no-multipart` makes the `multipart/*` routes answer
//! `501 not_implemented` (an Azure/local-storage reposerver). `PUT targets/<file>` with a
//! raw body stores the file and adds the target, signed online. Content-MD5 of parts is
//! not checked; parts get `ETag: "<sha256>"`.

pub mod account;
pub mod auth;
pub mod errors;
pub mod faults;
pub mod keyserver;
pub mod routes;
mod rules;
pub mod state;
pub mod tls;
pub mod uploads;

use crate::error::{Error, IoContext, Result};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

/// Default multipart part size (the upstream default is 100 MiB).
pub const DEFAULT_PART_SIZE: u64 = 100 << 20;
/// Default upload limit (`outOfBandUploadLimit`, 3 GB).
pub const DEFAULT_UPLOAD_LIMIT: u64 = 3_000_000_000;

/// What `serve` is asked for (the `ota-reposerver serve` flags).
pub struct ServeOptions {
    /// The data directory made by `init-account`.
    pub data_dir: PathBuf,
    /// A loopback address; port 0 picks a free port.
    pub listen: SocketAddr,
    /// (Re)write credentials.zip with the URL actually listened on.
    pub credentials: Option<PathBuf>,
    /// `false`: the `multipart/*` routes answer `501 not_implemented`.
    pub multipart: bool,
    /// Part size announced by `multipart/initiate`, in bytes (positive).
    pub part_size: u64,
    /// Largest upload accepted, in bytes.
    pub upload_limit: u64,
}

/// Runs the server until SIGINT/SIGTERM. Prints `listening on <url>` as the first
/// line on stdout once the socket is bound.
pub fn serve(opts: ServeOptions) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::Other(format!("cannot start the runtime: {e}")))?;
    rt.block_on(run(opts))
}

/// Opens the data directory, binds the socket, (re)writes credentials.zip for the
/// URL actually bound (port 0 picks one), announces it and serves until a signal.
async fn run(opts: ServeOptions) -> Result<()> {
    check_options(&opts)?;
    let dir = opts.data_dir.clone();
    let account = account::Account::load(&dir)?;
    let store = state::Store::open(&dir)?;
    let storage = uploads::Storage::new(&dir)?;
    let tls = match account.auth {
        account::AuthMode::Mtls => Some(tokio_rustls::TlsAcceptor::from(tls::server_config(&dir)?)),
        _ => None,
    };
    let listener = tokio::net::TcpListener::bind(opts.listen)
        .await
        .map_err(|e| Error::Other(format!("cannot listen on {}: {e}", opts.listen)))?;
    let addr = listener
        .local_addr()
        .map_err(|e| Error::Other(e.to_string()))?;
    let base_url = format!("{}://{addr}", account.scheme());
    if let Some(out) = &opts.credentials {
        account::write_credentials(&dir, &account, &store, &base_url, out)?;
    }
    let app = Arc::new(routes::App {
        store: Arc::new(store),
        storage: Arc::new(storage),
        account,
        tokens: auth::Tokens::default(),
        faults: faults::Faults::default(),
        base_url: base_url.clone(),
        multipart: opts.multipart,
        part_size: opts.part_size,
        upload_limit: uploads::SizeLimit(opts.upload_limit),
    });
    announce(&base_url)?;
    log::info!("serving {} on {base_url}", dir.display());
    accept_until_shutdown(listener, app, tls).await;
    Ok(())
}

/// Refuses options the server must not run with, before anything is opened: a test
/// server listens on loopback only, and a zero part size would hand out no parts.
fn check_options(opts: &ServeOptions) -> Result<()> {
    if !opts.listen.ip().is_loopback() {
        return Err(Error::Usage(format!(
            "--listen {}: ota-reposerver is a test server and only listens on loopback addresses (127.0.0.1, ::1)",
            opts.listen
        )));
    }
    if opts.part_size == 0 {
        return Err(Error::Usage("--part-size must be positive".into()));
    }
    Ok(())
}

/// Prints `listening on <url>` as the first stdout line and flushes it: scripts and
/// tests wait for that line (and read the port from it) before sending requests.
fn announce(base_url: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "listening on {base_url}").with_path("stdout")?;
    out.flush().with_path("stdout")
}

/// Accepts connections, each served on its own task, until SIGINT/SIGTERM. A failed
/// accept (e.g. out of file descriptors) is logged and the loop goes on.
async fn accept_until_shutdown(
    listener: tokio::net::TcpListener,
    app: Arc<routes::App>,
    tls: Option<tokio_rustls::TlsAcceptor>,
) {
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    tokio::spawn(serve_connection(stream, peer, app.clone(), tls.clone()));
                }
                Err(e) => log::warn!("accept failed: {e}"),
            },
            _ = &mut shutdown => {
                log::info!("shutting down");
                return;
            }
        }
    }
}

/// Serves one connection over HTTP/1.1, after the TLS handshake in mutual-TLS mode
/// (a client without a certificate from our CA is refused there, before any request).
async fn serve_connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    app: Arc<routes::App>,
    tls: Option<tokio_rustls::TlsAcceptor>,
) {
    let service = service_fn(move |req| routes::handle(app.clone(), req));
    let result = match tls {
        Some(acceptor) => match acceptor.accept(stream).await {
            Ok(s) => {
                http1::Builder::new()
                    .serve_connection(TokioIo::new(s), service)
                    .await
            }
            Err(e) => {
                log::info!("TLS handshake with {peer} refused: {e}");
                return;
            }
        },
        None => {
            http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
        }
    };
    if let Err(e) = result {
        log::debug!("connection from {peer}: {e}");
    }
}

async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}
