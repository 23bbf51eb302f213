#!/usr/bin/env bash
# Prints `export` lines naming checkouts of bitbake 2.8, OE-core scarthgap and
# meta-lts-mixins scarthgap/rust for tests/yocto/test_oe_core.py, made from local bare
# git mirrors (none of them is on a package registry). With no mirrors it prints nothing
# and those tests skip.   Usage: eval "$(scripts/scarthgap-checkouts.sh [MIRROR_DIR] [OUT_DIR])"
set -euo pipefail
mirror=${1:-${OTA_SIGN_GIT_MIRRORS:-/work/.mirror}}
out=${2:-${TMPDIR:-/tmp}/ota-sign-scarthgap}
checkout() { # VAR mirror-name branch
    local git="$mirror/$2/repo"
    git --git-dir="$git" rev-parse --verify -q "$3^{commit}" >/dev/null 2>&1 || return 1
    rm -rf "$out/$2" && mkdir -p "$out/$2"
    git --git-dir="$git" archive "$3" | tar -x -C "$out/$2"
    echo "export $1=$out/$2"
}
exports=$(checkout BITBAKE_SCARTHGAP openembedded+bitbake 2.8 &&
    checkout OE_CORE_SCARTHGAP openembedded+openembedded-core scarthgap &&
    checkout META_LTS_MIXINS_SCARTHGAP bhl-foss-mirrors+meta-lts-mixins scarthgap/rust) || exit 0
echo "$exports"
