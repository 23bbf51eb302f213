#!/usr/bin/env python3
"""Checks for scripts/crash-test.sh.

  crash_check.py snapshot REPO OUT            record sha256 of every file in REPO
  crash_check.py verify BIN REPO BEFORE ZIP WS  after a kill: see crash-test.sh
  crash_check.py server BIN ZIP DIR           the server serves a consistent repository
"""
import hashlib
import json
import os
import subprocess
import sys
import zipfile


def files(root):
    for d, _, names in os.walk(root):
        for n in names:
            yield os.path.join(d, n)


def snapshot(repo, out):
    with open(out, "w") as f:
        for p in sorted(files(repo)):
            with open(p, "rb") as g:
                f.write("%s %s\n" % (hashlib.sha256(g.read()).hexdigest(), os.path.relpath(p, repo)))


def run(bin_, args, cwd):
    r = subprocess.run([bin_] + args, cwd=cwd, capture_output=True, text=True)
    return r.returncode, r.stdout + r.stderr


def verify(bin_, repo, before_path, zip_, ws):
    problems = []
    before = {}
    with open(before_path) as f:
        for line in f:
            h, rel = line.rstrip("\n").split(" ", 1)
            before[rel] = h
    home = os.path.dirname(repo)
    temps = 0
    for p in files(repo):
        rel = os.path.relpath(p, repo)
        name = os.path.basename(p)
        if name.startswith(".ota-sign-"):
            temps += 1  # an unrenamed temp file of a killed write: never read
            continue
        data = open(p, "rb").read()
        if before.get(rel) == hashlib.sha256(data).hexdigest():
            continue  # the old version
        # A new version must be complete.
        if name.endswith((".json", ".pub", ".sec")):
            try:
                v = json.loads(data)
            except ValueError as e:
                problems.append("%s: not complete JSON (%s)" % (rel, e))
                continue
            if rel in ("roles/root.json", "roles/targets.json") and not (
                isinstance(v, dict) and "signatures" in v and "signed" in v
            ):
                problems.append("%s: not a signed document" % rel)
        elif name.endswith(".zip"):
            try:
                zipfile.ZipFile(p).testzip()
            except Exception as e:  # noqa: BLE001
                problems.append("%s: not a complete zip (%s)" % (rel, e))
        elif name == "targets.json.checksum" and len(data) != 64:
            problems.append("%s: %d bytes" % (rel, len(data)))
    for rel in before:
        if not os.path.basename(rel).startswith(".ota-sign-") and not os.path.exists(os.path.join(repo, rel)):
            problems.append("%s: existed before and is gone" % rel)
    keys = os.path.join(repo, "keys")
    for n in sorted(os.listdir(keys)) if os.path.isdir(keys) else []:
        if not n.endswith(".sec"):
            continue
        base = n[:-4]
        pub = os.path.join(keys, base + ".pub")
        if not os.path.exists(pub):
            problems.append("keys/%s without keys/%s.pub" % (n, base))
            continue
        msg = os.path.join(home, "..", "pair-check.json")
        with open(msg, "w") as f:
            f.write('{"check": 1}')
        rc, out = run(bin_, ["sign-json", "--pub-key", pub, "--priv-key", os.path.join(keys, n), "--input", msg], ws)
        if rc != 0:
            problems.append("keys/%s: not a usable pair: %s" % (base, out.strip()))
    for args in (["root", "get-unsigned", "--repo", "r"], ["targets", "get-unsigned", "--repo", "r"]):
        rc, out = run(bin_, args, ws)
        if rc != 0:
            problems.append("%s: exit %d: %s" % (" ".join(args), rc, out.strip()))
    offline = os.path.join(ws, "offline.zip")
    if os.path.exists(offline):
        try:
            zipfile.ZipFile(offline).testzip()
        except Exception as e:  # noqa: BLE001
            problems.append("offline.zip: not a complete zip (%s)" % e)
    problems += check_server(bin_, zip_, os.path.join(ws, "..", "servercheck"))
    if temps:
        print("note: %d leftover temp file(s)" % temps)
    for p in problems:
        print(p)
    return not problems


def signed_by_previous_root(bin_, zip_, dirname):
    """Whether the served targets.json verifies with a targets key of the root before
    the latest one."""
    import urllib.request

    with zipfile.ZipFile(zip_) as z:
        url = z.read("tufrepo.url").decode().strip().rstrip("/") + "/api/v1/user_repo/"

    def get(path):
        with urllib.request.urlopen(url + path) as r:
            return r.read()

    latest = json.loads(get("root.json"))["signed"]["version"]
    if latest < 2:
        return False
    prev = json.loads(get("%d.root.json" % (latest - 1)))["signed"]
    doc = os.path.join(dirname, "served-targets.json")
    with open(doc, "wb") as f:
        f.write(get("targets.json"))
    for i, keyid in enumerate(prev["roles"]["targets"]["keyids"]):
        pub = os.path.join(dirname, "prev-targets-%d.pub" % i)
        with open(pub, "w") as f:
            json.dump(prev["keys"][keyid], f)
        if run(bin_, ["verify-json", "--pub-key", pub, "--input", doc], dirname)[0] == 0:
            return True
    return False


def check_server(bin_, zip_, dirname):
    """A fresh repository from credentials.zip: `root pull` must verify the chain and
    `targets pull` the targets signature. One gap is by design, not a crash effect:
    right after move-offline the server still serves the targets.json signed by the
    old online key until the first push; it is accepted if a targets key of the
    previous root verifies it."""
    import shutil

    shutil.rmtree(dirname, ignore_errors=True)
    os.makedirs(dirname)
    problems = []
    for args in (
        ["init", "--repo", "c", "--credentials", zip_],
        ["root", "pull", "--repo", "c"],
        ["targets", "pull", "--repo", "c"],
    ):
        rc, out = run(bin_, args, dirname)
        if rc != 0 and args[:2] == ["targets", "pull"] and "no signature is by a key root lists" in out:
            if signed_by_previous_root(bin_, zip_, dirname):
                continue  # the move-offline window: old targets.json, old targets key
        if rc != 0:
            problems.append("server: %s: exit %d: %s" % (" ".join(args), rc, out.strip()))
            break
    shutil.rmtree(dirname, ignore_errors=True)
    return problems


def main():
    mode = sys.argv[1]
    if mode == "snapshot":
        snapshot(sys.argv[2], sys.argv[3])
    elif mode == "verify":
        sys.exit(0 if verify(*sys.argv[2:7]) else 1)
    elif mode == "server":
        problems = check_server(sys.argv[2], sys.argv[3], sys.argv[4])
        for p in problems:
            print(p)
        sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
