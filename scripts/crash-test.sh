#!/usr/bin/env bash
# Crash safety: SIGKILL at random moments, then check that nothing is half-done.
#   scripts/crash-test.sh           short mode (CI): 40 client kills, 10 server kills
#   scripts/crash-test.sh --long    long mode: 250 client kills, 50 server kills
#   CRASH_KILLS=N CRASH_SERVER_KILLS=M scripts/crash-test.sh   any other count
#
# Client part: ota-sign is killed during `targets sign`, `targets push`, `move-offline`,
# `export-credentials` and `publish` (round robin), after a random delay of 0-120 ms.
# Only kills that hit a running process count (exit status 137); runs that finished
# first are counted apart. After every kill (scripts/crash_check.py):
#   - the repository loads (`root get-unsigned`, `targets get-unsigned` succeed),
#   - every file is the old version (same bytes as before the command) or a complete
#     new one (JSON parses, role files are signed envelopes, zips open),
#   - no file that existed before is missing, every key pair is complete and matches
#     (a .sec has its .pub; `sign-json` accepts the pair),
#   - the server is consistent: a fresh repository from credentials.zip can
#     `root pull` (chain verified) and `targets pull` (signature verified).
# Server part: ota-reposerver is killed during `targets push` (PUT targets) and
# `move-offline` (POST root) loops; after a restart on the same port the same
# consistency check must pass.
# Prints a summary; exit 1 on any violation.
set -euo pipefail
cd "$(dirname "$0")/.."
kills=${CRASH_KILLS:-40}
server_kills=${CRASH_SERVER_KILLS:-10}
if [ "${1:-}" = "--long" ]; then
    kills=${CRASH_KILLS:-250}
    server_kills=${CRASH_SERVER_KILLS:-50}
fi
cargo build --locked --bins -q
bin="$PWD/target/debug"
check="$PWD/scripts/crash_check.py"
work=$(mktemp -d)
server_pid=""
cleanup() {
    local rc=$?
    if [ -n "$server_pid" ]; then
        kill -9 "$server_pid" 2>/dev/null || true
        { wait "$server_pid"; } 2>/dev/null || true
    fi
    rm -rf "$work"
    exit "$rc"
}
trap cleanup EXIT
export OTA_SIGN_HTTP_RETRY_DELAY_MS=20
sign() { "$bin/ota-sign" "$@"; }

# start_server DIR [PORT]: serves DIR/data, writes DIR/credentials.zip; sets server_pid, port.
start_server() {
    local dir=$1 listen="127.0.0.1:${2:-0}"
    port=""
    # Removed first: the old file's `listening on` line must not be mistaken for the
    # new server's (the redirection truncates only once the child runs).
    rm -f "$dir/stdout"
    "$bin/ota-reposerver" serve --data-dir "$dir/data" --listen "$listen" \
        --credentials "$dir/credentials.zip" >"$dir/stdout" 2>>"$dir/server.log" &
    server_pid=$!
    for _ in $(seq 600); do
        port=$(sed -n 's/^listening on .*:\([0-9]*\)$/\1/p' "$dir/stdout" 2>/dev/null || true)
        [ -n "$port" ] && break
        sleep 0.05
    done
    [ -n "$port" ] || { echo "server did not start: $(cat "$dir/server.log")"; exit 1; }
}

stop_server() {
    kill -9 "$server_pid" 2>/dev/null || true
    { wait "$server_pid"; } 2>/dev/null || true
    server_pid=""
}

# new_account DIR: a fresh server account and a repository `r` in DIR/ws (ed25519 keys).
new_account() {
    local dir=$1
    mkdir -p "$dir/ws"
    "$bin/ota-reposerver" init-account --data-dir "$dir/data" --key-type ed25519 --auth none >/dev/null
    start_server "$dir"
    (cd "$dir/ws" && sign init --repo r --credentials "$dir/credentials.zip" 2>/dev/null &&
        sign key generate --repo r --name myroot --type ed25519 &&
        sign key generate --repo r --name mytargets --type ed25519 &&
        sign targets pull --repo r) >/dev/null 2>&1
}

effective=0 finished=0 violations=0
declare -A per_op
# killed DIR -- CMD...: runs CMD in DIR, SIGKILLs it after a random delay, checks.
killed() {
    local dir=$1 op=$2 max_ms=$3
    shift 4
    python3 "$check" snapshot "$dir/ws/tuf/r" "$dir/before.txt"
    (cd "$dir/ws" && exec "$bin/ota-sign" "$@" >/dev/null 2>&1) &
    local pid=$!
    sleep "0.$(printf '%03d' $((RANDOM % max_ms)))"
    kill -9 "$pid" 2>/dev/null || true
    local rc=0
    { wait "$pid"; } 2>/dev/null || rc=$?
    if [ "$rc" = 137 ]; then
        effective=$((effective + 1))
        [ $((effective % 25)) = 0 ] && echo "  $effective kills, $violations violations"
        per_op[$op]=$((${per_op[$op]:-0} + 1))
    else
        finished=$((finished + 1))
    fi
    if ! python3 "$check" verify "$bin/ota-sign" "$dir/ws/tuf/r" "$dir/before.txt" "$dir/credentials.zip" "$dir/ws" >"$dir/check.log" 2>&1; then
        violations=$((violations + 1))
        echo "VIOLATION after $op (exit $rc):"
        sed 's/^/    /' "$dir/check.log"
    fi
}

acct="$work/acct"
new_account "$acct"
port_acct=$port
(cd "$acct/ws" && sign move-offline --repo r --old-root-alias origroot --new-root myroot --new-targets mytargets &&
    sign targets sign --repo r --key-name mytargets &&
    sign targets push --repo r &&
    sign export-credentials --repo r --key-name mytargets --output offline.zip) >/dev/null 2>&1

i=0
moves=0
echo "crash-test: $kills client kills, $server_kills server kills"
while [ "$effective" -lt "$kills" ]; do
    i=$((i + 1))
    [ "$i" -gt $((kills * 6)) ] && { echo "too few kills hit a running process"; exit 1; }
    case $((i % 5)) in
    0)
        sign targets add --repo r --home-dir "$acct/ws/tuf" --name fw --version "$i" --length 3 \
            --sha256 4a2e8c7b7b6a4f6c2e3a6c4f1f0e9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e --hardwareids hw >/dev/null 2>&1 || true
        killed "$acct" "targets sign" 30 -- targets sign --repo r --key-name mytargets
        ;;
    1)
        (cd "$acct/ws" && sign targets pull --repo r && sign targets sign --repo r --key-name mytargets) >/dev/null 2>&1 || true
        killed "$acct" "targets push" 120 -- targets push --repo r
        ;;
    2)
        moves=$((moves + 1))
        stop_server
        m="$work/move$moves"
        new_account "$m"
        killed "$m" "move-offline" 150 -- move-offline --repo r --old-root-alias origroot --new-root myroot --new-targets mytargets
        stop_server
        rm -rf "$m"
        start_server "$acct" "$port_acct"
        ;;
    3)
        killed "$acct" "export-credentials" 25 -- export-credentials --repo r --key-name mytargets --output offline.zip
        ;;
    4)
        killed "$acct" "publish" 120 -- publish --credentials offline.zip --name app --version "$i" \
            --hardwareids hw --length 3 --sha256 4a2e8c7b7b6a4f6c2e3a6c4f1f0e9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e
        ;;
    esac
done

# Server kills: ota-reposerver killed while a client pushes targets or posts a root.
server_effective=0
srv="$work/srv"
stop_server
new_account "$srv"
srv_port=$port
for j in $(seq "$server_kills"); do
    if [ $((j % 2)) = 0 ]; then
        stop_server
        rm -rf "$srv"
        new_account "$srv"
        srv_port=$port
        (cd "$srv/ws" && exec "$bin/ota-sign" move-offline --repo r --old-root-alias origroot \
            --new-root myroot --new-targets mytargets >/dev/null 2>&1) &
    else
        (cd "$srv/ws" && for k in 1 2 3 4 5 6 7 8; do
            "$bin/ota-sign" targets pull --repo r && "$bin/ota-sign" targets sign --repo r --key-name targets &&
                "$bin/ota-sign" targets push --repo r
        done >/dev/null 2>&1) &
    fi
    client=$!
    sleep "0.$(printf '%03d' $((RANDOM % 200)))"
    if kill -9 "$server_pid" 2>/dev/null; then server_effective=$((server_effective + 1)); fi
    { wait "$server_pid"; } 2>/dev/null || true
    server_pid=""
    { wait "$client"; } 2>/dev/null || true
    start_server "$srv" "$srv_port"
    if ! python3 "$check" server "$bin/ota-sign" "$srv/credentials.zip" "$work/srvcheck$j" >"$srv/check.log" 2>&1; then
        violations=$((violations + 1))
        echo "VIOLATION after server kill $j:"
        sed 's/^/    /' "$srv/check.log"
    fi
done

echo "crash-test summary: $effective client kills hit a running ota-sign ($finished runs finished before the kill);"
for op in "targets sign" "targets push" "move-offline" "export-credentials" "publish"; do
    echo "  $op: ${per_op[$op]:-0} kills"
done
echo "  unrenamed temp files left by killed writes (never read): $(find "$acct" -name '.ota-sign-*' | wc -l)"
echo "  ota-reposerver: $server_effective kills during push / move-offline loops, restarted each time"
echo "  violations: $violations"
[ "$violations" = 0 ]
