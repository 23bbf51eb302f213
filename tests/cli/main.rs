//! The one integration-test binary (ripgrep style: 2 cores link it once).
//! Each module covers one area; `support` holds the shared setup.

mod reposerver;
mod support;
