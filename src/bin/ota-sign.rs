//! The `ota-sign` command line: parse, set up logging, run, map errors to
//! garage-sign's exit codes.
#![forbid(unsafe_code)]

use clap::Parser;
use ota_sign::error::exit;

fn main() {
    let cli = match ota_sign::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    exit::OK
                }
                _ => exit::USAGE,
            };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    let default = if cli.verbose {
        "ota_sign=debug"
    } else {
        "ota_sign=info"
    };
    env_logger::Builder::from_env(env_logger::Env::new().filter_or("OTA_SIGN_LOG", default))
        .format_timestamp(None)
        .format_target(false)
        .init();
    ota_sign::crypto::install_tls_provider();
    if let Err(e) = ota_sign::commands::run(cli) {
        // Printed directly, so no log filter can hide why the command failed.
        eprintln!("error: {e}");
        std::process::exit(e.exit_code());
    }
}
