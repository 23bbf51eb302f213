//! `ota-reposerver`: a local ota-tuf reposerver + keyserver for testing clients.
//! The server lives in the library (`ota_sign::server`); this is argument parsing only.

use clap::{Parser, Subcommand};
use ota_sign::keys::KeyType;
use ota_sign::server::{self, account};
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "ota-reposerver",
    version,
    about = "A small, persistent server that behaves like the OTA Connect / ota-tuf reposerver + keyserver",
    long_about = "A small, persistent server that behaves like the OTA Connect / ota-tuf reposerver + keyserver \
(routes under /api/v1/user_repo/), for testing garage-sign compatible clients and devices.\n\n\
Typical use:\n  ota-reposerver init-account --data-dir D --url http://127.0.0.1:8085 --credentials credentials.zip\n  \
ota-reposerver serve --data-dir D --listen 127.0.0.1:8085"
)]
struct Cli {
    /// Log level for stderr (error, warn, info, debug, trace); RUST_LOG overrides it.
    #[arg(long, global = true, default_value = "info")]
    log_level: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create the repository: four online keys (root, targets, snapshot, timestamp;
    /// threshold 1), root.json v1 valid for 365 days, the account settings (auth mode,
    /// OAuth2 client, admin token) and optionally credentials.zip.
    InitAccount {
        /// Directory that will hold all state (created, 0700; must not hold an account).
        #[arg(long)]
        data_dir: PathBuf,
        /// Base URL the server will be reachable at, written to tufrepo.url and
        /// treehub.json (required with --credentials).
        #[arg(long)]
        url: Option<String>,
        /// Key type of the four online keys.
        #[arg(long, value_parser = ["ed25519", "rsa"], default_value = "ed25519")]
        key_type: String,
        /// Authentication: none, oauth2 (POST /token + bearer) or mtls (client certificates, https).
        #[arg(long, default_value = "none")]
        auth: account::AuthMode,
        /// Write credentials.zip (treehub.json, tufrepo.url, root.json, targets.pub/.sec,
        /// and client_auth.p12/server.p12 with mtls) to this file.
        #[arg(long)]
        credentials: Option<PathBuf>,
    },
    /// Serve the repository in --data-dir. Prints `listening on <url>` as the first line
    /// of stdout, then logs one line per request to stderr. Stops on SIGINT/SIGTERM.
    Serve {
        /// Directory created by init-account.
        #[arg(long)]
        data_dir: PathBuf,
        /// Loopback address and port to listen on; port 0 picks a free port.
        #[arg(long, default_value = "127.0.0.1:8085")]
        listen: SocketAddr,
        /// (Re)write credentials.zip with the URL actually listened on.
        #[arg(long)]
        credentials: Option<PathBuf>,
        /// Answer the multipart/* upload routes with 501 not_implemented (like an
        /// Azure-backed reposerver), so clients fall back to PUT uploads/<file>.
        #[arg(long)]
        no_multipart: bool,
        /// Part size announced by multipart/initiate, in bytes.
        #[arg(long, default_value_t = server::DEFAULT_PART_SIZE)]
        part_size: u64,
        /// Largest accepted upload, in bytes (413 payload_too_large beyond).
        #[arg(long, default_value_t = server::DEFAULT_UPLOAD_LIMIT)]
        upload_limit: u64,
    },
}

fn run(cli: Cli) -> ota_sign::Result<()> {
    match cli.command {
        Command::InitAccount {
            data_dir,
            url,
            key_type,
            auth,
            credentials,
        } => {
            let key_type = if key_type == "rsa" {
                KeyType::Rsa
            } else {
                KeyType::Ed25519
            };
            let opts = account::InitOptions {
                data_dir,
                key_type,
                auth,
                url,
                credentials,
            };
            let acc = account::init_account(&opts)?;
            println!(
                "created repository {} in {} (auth: {:?})",
                acc.repo_id,
                opts.data_dir.display(),
                acc.auth
            );
            if let Some(c) = &opts.credentials {
                println!("wrote {}", c.display());
            }
            Ok(())
        }
        Command::Serve {
            data_dir,
            listen,
            credentials,
            no_multipart,
            part_size,
            upload_limit,
        } => server::serve(server::ServeOptions {
            data_dir,
            listen,
            credentials,
            multipart: !no_multipart,
            part_size,
            upload_limit,
        }),
    }
}

fn main() {
    let cli = Cli::parse();
    env_logger::Builder::new()
        .parse_filters(&cli.log_level)
        .parse_env("RUST_LOG")
        .format_timestamp_millis()
        .init();
    if let Err(e) = run(cli) {
        eprintln!("ota-reposerver: error: {e}");
        std::process::exit(if e.exit_code() == ota_sign::error::exit::USAGE {
            2
        } else {
            1
        });
    }
}
