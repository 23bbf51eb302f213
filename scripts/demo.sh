#!/usr/bin/env bash
# The demo (README's first command): builds ota-sign, starts ota-reposerver on
# loopback with a fresh account (online keys, like an OTA Connect quickstart), runs
# the OTA Connect "Manage keys for software metadata" procedure verbatim with ota-sign,
# shows what changed on the server, publishes an image the way the bitbake class
# does, and stops the server.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --locked --quiet --bins
bin=$PWD/target/debug
export PATH="$bin:$PATH"

work=$(mktemp -d)
server_pid=
cleanup() {
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT
cd "$work"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

# Prints a short summary of the server's root.json and targets.json.
show_server() {
    python3 - "$1" <<'PY'
import json, sys, urllib.request
base = sys.argv[1] + "/api/v1/user_repo/"
def get(p):
    with urllib.request.urlopen(base + p, timeout=10) as r:
        return json.loads(r.read())
root, targets = get("root.json")["signed"], get("targets.json")
roles = root["roles"]
print("  root.json    version %d, expires %s" % (root["version"], root["expires"]))
for role in ("root", "targets", "snapshot", "timestamp"):
    print("    %-9s keys %s (threshold %d)" % (role, ", ".join(k[:12] + "…" for k in roles[role]["keyids"]), roles[role]["threshold"]))
print("  targets.json version %d, signed by %s, targets: %s" % (
    targets["signed"]["version"], ", ".join(s["keyid"][:12] + "…" for s in targets["signatures"]),
    ", ".join(sorted(targets["signed"]["targets"])) or "(none)"))
PY
}

step "Start a local ota-reposerver (four online keys, like a new OTA Connect account)"
run ota-reposerver init-account --data-dir server-data --key-type rsa
ota-reposerver serve --data-dir server-data --listen 127.0.0.1:0 --credentials credentials.zip \
    >server.out 2>server.log &
server_pid=$!
for _ in $(seq 100); do grep -q '^listening on' server.out 2>/dev/null && break; sleep 0.1; done
url=$(sed -n 's/^listening on //p' server.out)
[ -n "$url" ] || { cat server.log; echo "ota-reposerver did not start" >&2; exit 1; }
echo "  listening on $url; credentials.zip written"
show_server "$url"

step "Create a local image repository"
run ota-sign init --repo myimagerepo --credentials credentials.zip

step "Generate new keys"
run ota-sign key generate --repo myimagerepo --name myroot --type rsa
run ota-sign key generate --repo myimagerepo --name mytargets --type rsa

step "Rotate the online keys with your new offline keys"
run ota-sign targets pull --repo myimagerepo
run ota-sign move-offline --repo myimagerepo --old-root-alias origroot \
    --new-root myroot --new-targets mytargets
run ota-sign targets sign --repo myimagerepo --key-name mytargets
run ota-sign targets push --repo myimagerepo

step "Export offline-credentials.zip for bitbake"
run ota-sign export-credentials --repo myimagerepo --target-key-name mytargets --to offline-credentials.zip

step "What changed on the server"
show_server "$url"
echo "  offline keys: myroot $(ota-sign user-keys id --input tuf/myimagerepo/keys/myroot.pub | cut -c1-12)…," \
     "mytargets $(ota-sign user-keys id --input tuf/myimagerepo/keys/mytargets.pub | cut -c1-12)…"

step "Publish an image as the bitbake class does (offline targets key, in memory only)"
head -c 1048576 /dev/urandom >demo-image.wic
run ota-sign publish --credentials offline-credentials.zip --name demo-image --version 1.0 \
    --hardwareids qemux86-64 --image demo-image.wic --upload
show_server "$url"

step "See it as a device would, and what expires when"
run ota-sign verify --credentials offline-credentials.zip --hardware-id qemux86-64
run ota-sign status --repo myimagerepo

step "Stop the server"
kill "$server_pid"; wait "$server_pid" 2>/dev/null || true
server_pid=
echo "  done"
