#!/usr/bin/env bash
# Benchmarks (never a timed test, not part of CI): ota-sign against python-tuf 7 and
# openssl/sha256sum, measured side by side in the same run on this machine. Prints one
# table and rewrites the generated section of BENCHMARKS.md.
#
#   scripts/bench.sh            # 5 runs per figure (medians)
#   RUNS=7 scripts/bench.sh     # more runs
#   SLOW_RUNS=3 scripts/bench.sh  # fewer runs for the largest python-tuf case only
#
# Needs: cargo, python3 (venv), /usr/bin/time (apt-get install time), openssl.
# Everything runs on loopback; the server it starts, it stops.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
RUNS=${RUNS:-5}
SLOW_RUNS=${SLOW_RUNS:-$RUNS}

if [ ! -x /usr/bin/time ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >/dev/null
fi
cargo build --locked --release --bins --quiet
[ -x .venv-bench/bin/python ] || python3 -m venv .venv-bench
.venv-bench/bin/pip install --quiet --disable-pip-version-check 'tuf>=7,<8' 'securesystemslib[crypto]'

work=$(mktemp -d)
server_pid=
cleanup() {
    if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

export BENCH_WORK=$work BENCH_BIN=$root/target/release BENCH_RUNS=$RUNS BENCH_SLOW_RUNS=$SLOW_RUNS
export BENCH_ROOT=$root BENCH_PY=$root/.venv-bench/bin/python
bin=$root/target/release

# The loopback server for the publish and hashing workloads.
"$bin/ota-reposerver" init-account --data-dir "$work/server" --url http://127.0.0.1:1 >/dev/null
"$bin/ota-reposerver" --log-level warn serve --data-dir "$work/server" --listen 127.0.0.1:0 \
    --credentials "$work/credentials.zip" >"$work/server.out" 2>"$work/server.log" &
server_pid=$!
for _ in $(seq 200); do grep -q '^listening on' "$work/server.out" 2>/dev/null && break; sleep 0.05; done
grep -q '^listening on' "$work/server.out" || { cat "$work/server.log"; exit 1; }
export BENCH_SERVER_PID=$server_pid

.venv-bench/bin/python - <<'PY'
"""The benchmark driver: builds the inputs, runs every workload RUNS times, prints the
table and rewrites BENCHMARKS.md's generated section."""
import json, os, platform, re, statistics, subprocess, sys, time
from datetime import datetime, timezone

W = os.environ["BENCH_WORK"]; BIN = os.environ["BENCH_BIN"]; ROOT = os.environ["BENCH_ROOT"]
PY = os.environ["BENCH_PY"]
RUNS = int(os.environ["BENCH_RUNS"]); SLOW_RUNS = int(os.environ["BENCH_SLOW_RUNS"])
OTA = f"{BIN}/ota-sign"
HOME = f"{W}/home"
ENV = dict(os.environ, OTA_SIGN_LOG="error", RUST_LOG="error")
rows = []          # (workload, figures...) for the table
commands = []      # exact commands, once each


def sh(*args, **kw):
    return subprocess.run(list(args), check=True, env=ENV, capture_output=True, text=True, **kw)


def measure(cmd, runs, setup=None):
    """Medians over `runs` of wall (s), CPU user+sys (s), peak RSS (KiB)."""
    walls, cpus, rss = [], [], []
    for i in range(runs):
        if setup:
            setup(i)
        c = cmd(i) if callable(cmd) else cmd
        t0 = time.perf_counter()
        p = subprocess.run(["/usr/bin/time", "-v", *c], env=ENV, capture_output=True, text=True)
        walls.append(time.perf_counter() - t0)
        if p.returncode != 0:
            sys.exit(f"failed: {' '.join(c)}\n{p.stdout}\n{p.stderr}")
        f = dict(re.findall(r"^\s*([^:\n]+):\s*(.*)$", p.stderr, re.M))
        cpus.append(float(f["User time (seconds)"]) + float(f["System time (seconds)"]))
        rss.append(int(f["Maximum resident set size (kbytes)"]))
    return statistics.median(walls), statistics.median(cpus), statistics.median(rss)


def measure_alternating(cmds, runs, last_runs):
    """`measure` of each command, their runs interleaved (a, b, a, b, ...) so that a
    busy spell on this shared machine hits both tools alike; the last command runs
    `last_runs` times."""
    results = [([], [], []) for _ in cmds]
    for i in range(runs):
        for k, c in enumerate(cmds):
            if k == len(cmds) - 1 and i >= last_runs:
                continue
            w, c_, r = measure(c, 1)
            results[k][0].append(w); results[k][1].append(c_); results[k][2].append(r)
    return [tuple(statistics.median(x) for x in res) for res in results]


def note_command(c):
    text = " ".join(str(x) for x in c).replace(W, "$W").replace(BIN, "target/release")
    text = text.replace(ROOT + "/", "")
    if text not in commands:
        commands.append(text)


# ---------------------------------------------------------------- inputs
def target(i):
    name = f"image-{i % 500}"
    version = f"{i // 500}.{i % 7}.{i}"
    return f"{name}-{version}", {
        "hashes": {"sha256": f"{(i * 2654435761) % (1 << 256):064x}"},
        "length": 1000000 + i,
        "custom": {"name": name, "version": version, "hardwareIds": ["raspberrypi4-64", "qemux86-64"],
                   "targetFormat": "BINARY", "uri": None, "cliUploaded": True,
                   "createdAt": "2026-01-01T00:00:00Z", "updatedAt": "2026-01-02T00:00:00Z"},
    }


def targets_signed(n, version=1):
    return {"_type": "Targets", "expires": "2030-01-01T00:00:00Z",
            "targets": dict(target(i) for i in range(n)), "version": version}


sh(OTA, "--home-dir", HOME, "init", "--repo", "r", "--credentials", f"{W}/credentials.zip")
for name, typ in (("ed", "ed25519"), ("rsa", "rsa")):
    sh(OTA, "--home-dir", HOME, "key", "generate", "--repo", "r", "--name", name, "--type", typ)

# The same private keys for python-tuf, as PEM.
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
for name in ("ed", "rsa"):
    sec = json.load(open(f"{HOME}/r/keys/{name}.sec"))["keyval"]["private"]
    if name == "ed":
        key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(sec)[:32])
    else:
        key = serialization.load_pem_private_key(sec.encode(), None)
    open(f"{W}/{name}.pem", "wb").write(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))

open(f"{W}/tuf_sign.py", "w").write('''
import sys
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from securesystemslib.signer import CryptoSigner
from tuf.api.metadata import Metadata
md = Metadata.from_file(sys.argv[1])
md.signed.version += 1
md.sign(CryptoSigner(load_pem_private_key(open(sys.argv[2], "rb").read(), None)))
md.to_file(sys.argv[3])
''')

import tuf
unsigned = f"{HOME}/r/roles/unsigned/targets.json"
resign = {}
# The largest size, as the issue names it: 100,000 targets (35 MB canonical) are over
# the reposerver's limit, so `targets sign` warns (push and publish would refuse), but
# signing is the same work at any size.
BIG = 100000
for n in (1000, 10000, BIG):
    role = targets_signed(n)
    # ota-sign: the unsigned role in garage-sign's file layout.
    os.makedirs(os.path.dirname(unsigned), exist_ok=True)
    with open(unsigned, "w") as f:
        json.dump(role, f, indent=2, sort_keys=True, separators=(",", " : "))
    # python-tuf: the same targets as a TUF 1.0 document (spec_version, lower-case _type).
    tuf_in = f"{W}/tuf-{n}.json"
    tuf_role = dict(role, _type="targets", spec_version="1.0.31")
    json.dump({"signatures": [], "signed": tuf_role}, open(tuf_in, "w"), indent=1)
    for keyname, label in (("ed", "Ed25519"), ("rsa", "RSA-2048")):
        ota_cmd = [OTA, "--home-dir", HOME, "targets", "sign", "--repo", "r", "--key-name", keyname]
        tuf_cmd = [PY, f"{W}/tuf_sign.py", tuf_in, f"{W}/{keyname}.pem", f"{W}/tuf-out.json"]
        note_command(ota_cmd); note_command(tuf_cmd)
        o, p = measure_alternating([ota_cmd, tuf_cmd], RUNS, SLOW_RUNS if n == BIG else RUNS)
        signed_size = os.path.getsize(f"{HOME}/r/roles/targets.json")
        resign[(n, label)] = (o, p, signed_size)
        rows.append((f"re-sign {n:,} targets ({signed_size / 1e6:.1f} MB), {label}",
                     f"{o[0]:.3f} s, {o[2] / 1024:.0f} MiB",
                     f"{p[0]:.3f} s, {p[2] / 1024:.0f} MiB",
                     f"{p[0] / o[0]:.1f}x faster, {o[2] / p[2]:.2f}x the memory; RSS {o[2] * 1024 / signed_size:.2f}x the file"))

# ---------------------------------------------------------------- publish, 10k targets
sh(OTA, "--home-dir", HOME, "init", "--repo", "srv", "--credentials", f"{W}/credentials.zip")
sh(OTA, "--home-dir", HOME, "targets", "pull", "--repo", "srv")
with open(f"{HOME}/srv/roles/unsigned/targets.json", "w") as f:
    json.dump(targets_signed(10000, version=1), f)
sh(OTA, "--home-dir", HOME, "targets", "sign", "--repo", "srv", "--key-name", "targets")
sh(OTA, "--home-dir", HOME, "targets", "push", "--repo", "srv")
image = f"{W}/image.bin"
open(image, "wb").write(os.urandom(1 << 20))
server_pid = os.environ["BENCH_SERVER_PID"]


def server_cpu():
    with open(f"/proc/{server_pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


publish = lambda i: [OTA, "publish", "--credentials", f"{W}/credentials.zip", "--name", "bench",
                     "--version", f"p{i}-{time.time_ns()}", "--hardwareids", "qemux86-64", "--image", image]
note_command(publish(0))
cpu0 = server_cpu()
pub = measure(publish, RUNS)
server_per_run = (server_cpu() - cpu0) / RUNS
rows.append(("publish 1 MiB image, 10,000 targets on loopback ota-reposerver",
             f"{pub[0]:.3f} s wall, {pub[1]:.3f} s client CPU, {pub[2] / 1024:.0f} MiB",
             "-", f"server CPU {server_per_run:.3f} s per publish (mean)"))


def five_steps(i):
    repo = f"g{i}-{time.time_ns()}"
    steps = [
        [OTA, "--home-dir", HOME, "init", "--repo", repo, "--credentials", f"{W}/credentials.zip"],
        [OTA, "--home-dir", HOME, "targets", "pull", "--repo", repo],
        [OTA, "--home-dir", HOME, "targets", "add", "--repo", repo, "--name", "five", "--version", repo,
         "--hardwareids", "qemux86-64", "--sha256", "ab" * 32, "--length", "1048576"],
        [OTA, "--home-dir", HOME, "targets", "sign", "--repo", repo, "--key-name", "targets"],
        [OTA, "--home-dir", HOME, "targets", "push", "--repo", repo],
    ]
    return ["sh", "-c", " && ".join(" ".join(s) for s in steps)]


for s in five_steps(0)[2].split(" && "):
    note_command(s.split())
five = measure(five_steps, RUNS)
rows.append(("garage-sign style: init, pull, add, sign, push (five ota-sign runs)",
             f"{five[0]:.3f} s wall, {five[1]:.3f} s CPU, {five[2] / 1024:.0f} MiB (largest step)",
             "-", f"publish is {five[0] / pub[0]:.1f}x faster"))

# ---------------------------------------------------------------- hashing 1 GiB
big = f"{W}/big.img"
with open(big, "wb") as f:
    block = os.urandom(1 << 20)
    for _ in range(1024):
        f.write(block)
hash_cmd = [OTA, "publish", "--credentials", f"{W}/credentials.zip", "--name", "hash", "--version", "1",
            "--hardwareids", "qemux86-64", "--image", big, "--dry-run"]
ossl = ["openssl", "dgst", "-sha256", big]
s256 = ["sha256sum", big]
for c in (hash_cmd, ossl, s256):
    note_command(c)
subprocess.run(["cat", big], stdout=subprocess.DEVNULL)  # warm the page cache
h = measure(hash_cmd, RUNS); ho = measure(ossl, RUNS); hs = measure(s256, RUNS)
rows.append(("hash a 1 GiB image: publish --dry-run --image",
             f"{h[0]:.3f} s ({1024 / h[0]:.0f} MiB/s)",
             f"openssl {ho[0]:.3f} s, sha256sum {hs[0]:.3f} s",
             f"{ho[0] / h[0]:.2f}x openssl, {hs[0] / h[0]:.2f}x sha256sum"))

# ---------------------------------------------------------------- scaling, aims
scale = resign[(BIG, "Ed25519")][0][0] / resign[(10000, "Ed25519")][0][0]
scale_rsa = resign[(BIG, "RSA-2048")][0][0] / resign[(10000, "RSA-2048")][0][0]
K = f"{BIG // 1000}k"
rows.append((f"scaling: re-sign time {K} / 10k", f"Ed25519 {scale:.2f}, RSA {scale_rsa:.2f}", "-",
             f"linear is {BIG / 10000:g}"))

o100, p100, size100 = resign[(BIG, "Ed25519")]
aims = [
    (f"re-sign {K} >= 10x faster than python-tuf (Ed25519)", p100[0] / o100[0] >= 10, f"{p100[0] / o100[0]:.1f}x"),
    (f"re-sign {K} >= 10x faster than python-tuf (RSA-2048)",
     resign[(BIG, "RSA-2048")][1][0] / resign[(BIG, "RSA-2048")][0][0] >= 10,
     f"{resign[(BIG, 'RSA-2048')][1][0] / resign[(BIG, 'RSA-2048')][0][0]:.1f}x"),
    (f"re-sign {K} peak RSS <= 3x targets.json", o100[2] * 1024 <= 3 * size100, f"{o100[2] * 1024 / size100:.2f}x"),
    (f"scaling {K}/10k <= 1.1x linear", scale <= 1.1 * BIG / 10000, f"{scale:.2f}"),
    ("publish with 10k targets < 0.5 s wall", pub[0] < 0.5, f"{pub[0]:.3f} s"),
    ("hashing >= 0.9x openssl", ho[0] / h[0] >= 0.9, f"{ho[0] / h[0]:.2f}x"),
]

# ---------------------------------------------------------------- output
def cmdout(*c):
    try:
        return subprocess.run(list(c), capture_output=True, text=True).stdout.strip()
    except OSError:
        return "?"


cpu = re.search(r"Model name:\s*(.*)", cmdout("lscpu"))
mem = re.search(r"MemTotal:\s*(\d+)", open("/proc/meminfo").read())
machine = (f"{cpu.group(1).strip() if cpu else platform.processor()}, {os.cpu_count()} cores, "
           f"{int(mem.group(1)) // 1024 // 1024 if mem else '?'} GiB RAM, Linux {platform.release()}; "
           f"{cmdout('rustc', '--version')}; python-tuf {tuf.__version__} on Python {platform.python_version()}; "
           f"{cmdout('openssl', 'version')}")
header = ("| work | ota-sign | peer | ratio (same run) |", "|---|---|---|---|")
table = "\n".join(header + tuple("| " + " | ".join(r) + " |" for r in rows))
print(table)
print()
for a, ok, v in aims:
    print(f"{'MET   ' if ok else 'MISSED'} {a}: {v}")

slow_note = "" if SLOW_RUNS == RUNS else f" (python-tuf {BIG:,}: median of {SLOW_RUNS})"
section = f"""<!-- bench.sh:begin (generated by scripts/bench.sh; edit outside these markers) -->
## ota-sign vs python-tuf, publish, hashing (`scripts/bench.sh`)

Run {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}. Every figure is the median of
{RUNS} runs{slow_note}; ratios compare runs made in the same `scripts/bench.sh` invocation.
Wall time from the driver, CPU and peak RSS from `/usr/bin/time -v`. Release build.
The re-sign runs of ota-sign and python-tuf alternate, so both see the same machine.

Machine: {machine}. The machine is shared (other jobs were running), so absolute times are noisy;
the ratios are what the aims use.

{table}

Aims:

{chr(10).join(f"- {'**met**' if ok else '**missed**'}: {a} ({v})" for a, ok, v in aims)}

Inputs: OTA-Connect-style targets (`custom` with name, version, two hardwareIds, targetFormat,
`uri: null`, cliUploaded, createdAt, updatedAt). ota-sign signs `roles/unsigned/targets.json` in
garage-sign's layout; python-tuf loads the same targets as a TUF 1.0 document (adds `spec_version`,
lower-case `_type`), bumps the version, signs with the same key (`CryptoSigner`) and writes it.

Exact commands (`$W` is the temporary work directory):

```
{chr(10).join(commands)}
```
<!-- bench.sh:end -->"""
path = f"{ROOT}/BENCHMARKS.md"
old = open(path).read() if os.path.exists(path) else "# Benchmarks\n"
if "<!-- bench.sh:begin" in old:
    new = re.sub(r"<!-- bench\.sh:begin.*?<!-- bench\.sh:end -->", lambda _: section, old, flags=re.S)
else:
    new = old.rstrip("\n") + "\n\n" + section + "\n"
open(path, "w").write(new)
print(f"\nwrote {path}")
PY
