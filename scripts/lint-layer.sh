#!/bin/sh
# SPDX-License-Identifier: MPL-2.0
#
# Lint every recipe and class of meta-offline-signing with oelint-adv for each
# supported release.  Exits non-zero on any finding (info, warning or error).
# Suppressions live inline in the files (`# nooelint: <rule> - <reason>`).
#
#   pip install -r tests/yocto/requirements.txt
#   scripts/lint-layer.sh
#
# OELINT_ADV overrides the command (default: oelint-adv).
set -eu

cd "$(dirname "$0")/.."
OELINT_ADV=${OELINT_ADV:-oelint-adv}
RELEASES="scarthgap wrynose"

files=$(find meta-offline-signing \( -name '*.bb' -o -name '*.bbappend' -o -name '*.bbclass' \) | LC_ALL=C sort)
if [ -z "$files" ]; then
    echo "lint-layer: no recipes or classes found" >&2
    exit 1
fi

status=0
for release in $RELEASES; do
    echo "== oelint-adv --release $release"
    # Word splitting of $files is intended: the paths contain no spaces.
    # shellcheck disable=SC2086
    if ! $OELINT_ADV --release "$release" --quiet --jobs 1 $files; then
        status=1
    fi
done
[ "$status" -eq 0 ] && echo "lint-layer: clean for $RELEASES"
exit "$status"
