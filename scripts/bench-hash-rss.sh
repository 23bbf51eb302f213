#!/usr/bin/env bash
# Benchmark (not a test): peak resident memory and wall time of ota-sign while it
# hashes a 2 GiB sparse image, the work `publish --image` and `targets add-uploaded`
# share (one streaming pass, 1 MiB buffer). The aim is < 32 MiB peak RSS.
# Appends the result to BENCHMARKS.md.  Usage: scripts/bench-hash-rss.sh [SIZE]
set -euo pipefail
cd "$(dirname "$0")/.."
size=${1:-2G}
command -v /usr/bin/time >/dev/null || { apt-get update -qq && apt-get install -y -qq time >/dev/null; }
cargo build --release --locked --bin ota-sign >/dev/null
bin=$PWD/target/release/ota-sign
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
truncate -s "$size" "$work/image.wic"
cd "$work"
"$bin" init --repo bench --credentials "$OLDPWD/../shared/fixtures/ota-tuf/cli/src/test/resources/credentials_ed25519.zip" 2>/dev/null
"$bin" targets init --repo bench --version 1 --expires 2030-01-01T00:00:00Z
/usr/bin/time -v -o time.txt "$bin" targets add-uploaded --repo bench --input image.wic \
    --name bench --version 1 --hardwareids hw 2>/dev/null
rss_kib=$(awk -F': ' '/Maximum resident set size/ {print $2}' time.txt)
wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' time.txt)
cd "$OLDPWD"
line="| $(date -u +%Y-%m-%d) | $(uname -m), $(nproc) cores | hash $size sparse file (\`targets add-uploaded\`) | peak RSS $((rss_kib / 1024)) MiB ($rss_kib KiB) | wall $wall |"
echo "$line"
if [ ! -f BENCHMARKS.md ]; then
    printf '# Benchmarks\n\nMeasured by the scripts named in each section; never by timed tests.\n\n## Hashing memory (`scripts/bench-hash-rss.sh`)\n\nAim: under 32 MiB peak RSS for a 2 GiB image.\n\n| date | machine | work | memory | time |\n|---|---|---|---|---|\n' > BENCHMARKS.md
fi
echo "$line" >> BENCHMARKS.md
