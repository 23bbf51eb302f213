//! The one integration-test binary (ripgrep style: 2 cores link it once).
//! Each module covers one area; `support` holds the shared setup.

mod canonical_direct;
mod fixtures;
mod hostile;
mod hostile_faults;
mod hostile_fuzz;
mod hostile_secrets;
mod http_client;
mod local_repo;
mod pkcs11;
mod procedure;
mod props;
mod publish;
mod refresh;
mod reposerver;
mod signer_alone;
mod status;
mod support;
mod verify;
