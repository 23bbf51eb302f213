#!/usr/bin/env bash
# Runs every cargo-fuzz target for a bounded time (libFuzzer, nightly toolchain).
#   scripts/fuzz.sh            short mode (CI-sized): 20 s per target
#   scripts/fuzz.sh --long     long mode: 300 s per target
#   FUZZ_SECONDS=N scripts/fuzz.sh   any other bound
# The generated corpus goes to fuzz/target/corpus/<target> (not committed); the seeds
# are fuzz/corpus/<target>. A crash leaves fuzz/artifacts/<target>/crash-*: copy it to
# fuzz/regressions/<target>/ (replayed by tests/cli/hostile_fuzz.rs on stable) and fix.
# Prints one summary line per target: seconds, executions, corpus size, result.
# Without nightly or cargo-fuzz it says so and replays the seeds on stable instead.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${FUZZ_SECONDS:-20}
[ "${1:-}" = "--long" ] && secs=${FUZZ_SECONDS:-300}
targets=(canonical metadata key_files credentials_zip server_request)

if ! cargo +nightly --version >/dev/null 2>&1 || ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: no nightly toolchain or cargo-fuzz here; replaying the seed corpus on stable"
    exec cargo test --locked --test cli hostile_fuzz::
fi

cd fuzz
cargo +nightly fuzz build -O "${targets[@]/#/}" >/dev/null 2>&1 || cargo +nightly fuzz build -O
status=0
for t in "${targets[@]}"; do
    mkdir -p "target/corpus/$t" "artifacts/$t"
    log="target/fuzz-$t.log"
    if cargo +nightly fuzz run -O "$t" "target/corpus/$t" "corpus/$t" -- \
        -max_total_time="$secs" -rss_limit_mb=2048 -max_len=262144 -timeout=20 \
        >"$log" 2>&1; then
        result=ok
    else
        result="FAILED (see fuzz/$log, fuzz/artifacts/$t)"
        status=1
    fi
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || true)
    [ -n "$execs" ] || execs=$(grep -oE '^#[0-9]+' "$log" | tail -1 | tr -d '#')
    corpus=$(find "target/corpus/$t" -type f | wc -l)
    printf 'fuzz %-16s %5ss  %10s execs  corpus %6s  %s\n' "$t" "$secs" "${execs:-?}" "$corpus" "$result"
done
exit $status
