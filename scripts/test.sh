#!/usr/bin/env bash
# Runs every test of the project on a fresh machine (README's second command):
# the Rust unit and integration tests, the Yocto layer lint and its bitbake tests.
# Python packages go into .venv-test (created on first use).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --locked --bins
cargo test --locked --all-targets

if [ ! -x .venv-test/bin/python ]; then
    python3 -m venv .venv-test
    .venv-test/bin/pip install --quiet --disable-pip-version-check -r tests/yocto/requirements.txt
fi
export PATH="$PWD/.venv-test/bin:$PATH"
export OTA_SIGN_BIN_DIR="$PWD/target/debug"
scripts/lint-layer.sh
python -m pytest tests/yocto -q
