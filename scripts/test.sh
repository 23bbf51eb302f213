#!/usr/bin/env bash
# Runs every test of the project on a fresh machine (README's second command):
# the Rust unit and integration tests, the Yocto layer lint and its bitbake tests,
# and the device-side (aktualizr rules) check of published metadata.
# Python packages go into .venv-test (created on first use).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --locked --bins
# The signer alone, as the Yocto recipe builds it (no server code or dependencies).
cargo build --locked --no-default-features --bin ota-sign
cargo test --locked --all-targets
# Reliability (RELIABILITY.md): the SIGKILL loop and the fuzz targets, short mode
# (`--long` on either for the long runs). Without nightly, fuzz.sh replays the seeds.
scripts/crash-test.sh
scripts/fuzz.sh

[ -x .venv-test/bin/python ] || python3 -m venv .venv-test
.venv-test/bin/pip install --quiet --disable-pip-version-check \
    -r tests/yocto/requirements.txt -r tests/interop/requirements.txt
export PATH="$PWD/.venv-test/bin:$PATH"
export OTA_SIGN_BIN_DIR="$PWD/target/debug"
scripts/lint-layer.sh
# The real OE-core scarthgap + meta-lts-mixins checks run where local git mirrors of them
# exist (not on any package registry); elsewhere test_oe_core.py skips and says why.
eval "$(scripts/scarthgap-checkouts.sh)"
python -m pytest tests/yocto -q -rs
# An independent "device": aktualizr's verification rules, in Python, over what the
# binaries produce end to end.
python -m pytest tests/interop -q
