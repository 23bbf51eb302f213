//! The signer builds alone: without the `server` feature, the `ota-sign` binary's
//! dependency graph holds no HTTP server, certificate generator or tokio macros
//! (the Yocto recipe builds it with `--no-default-features`). hyper (client), tokio
//! (runtime) and tokio-rustls stay: reqwest's blocking client is built on them.

use crate::support::Cmd;

fn tree(args: &[&str]) -> String {
    Cmd::program(env!("CARGO"))
        .args([
            "tree",
            "--quiet",
            "--prefix",
            "none",
            "-e",
            "normal,features",
        ])
        .args(args)
        .arg("--manifest-path")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"))
        .ok()
}

/// Lines naming a server-only dependency (or feature) in a `cargo tree` listing.
fn server_only(tree: &str) -> Vec<&str> {
    tree.lines()
        .filter(|l| {
            l.starts_with("hyper feature \"server\"")
                || l.starts_with("rcgen ")
                || l.starts_with("tokio-macros ")
                || l.starts_with("tokio feature \"macros\"")
        })
        .collect()
}

#[test]
fn without_the_server_feature_no_server_dependencies() {
    let default = tree(&[]);
    // The check can fail: with the feature on, the server's dependencies are there.
    assert!(
        !server_only(&default).is_empty(),
        "default build should include the server:\n{default}"
    );
    let signer = tree(&["--no-default-features"]);
    assert!(signer.contains("ring v"), "unexpected tree:\n{signer}");
    let found = server_only(&signer);
    assert!(
        found.is_empty(),
        "server-only dependencies without the feature: {found:?}"
    );
}
