#!/usr/bin/env bash
# The secrets test alone: the whole OTA Connect procedure over OAuth2 and over mutual
# TLS against ota-reposerver with OTA_SIGN_LOG=trace --verbose, failing if a private
# key (PEM, base64, hex), the client secret, a bearer token or PKCS#12 content shows up
# in stdout, stderr or any file outside keys/, and checking file modes
# (tests/cli/hostile_secrets.rs). Part of `cargo test`, so scripts/test.sh runs it too.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --locked --test cli hostile_secrets:: -- --test-threads 1
