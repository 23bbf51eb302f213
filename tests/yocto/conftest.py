# SPDX-License-Identifier: MPL-2.0
import json
import os
import re
import stat
import subprocess
import sys
import threading
import time
import zipfile

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import bbharness  # noqa: E402

REPO = bbharness.REPO

# Marker written into fake targets.sec files; tests search the build tree for it.
FAKE_SECRET = "fake-private-key-0123456789abcdef"


@pytest.fixture
def project(tmp_path):
    """project(**kwargs) -> bbharness.Project in a fresh directory."""
    counter = [0]

    def make(**kwargs):
        counter[0] += 1
        return bbharness.Project(tmp_path / ("proj%d" % counter[0]), **kwargs)

    return make


def make_credentials(path, offline=True, url="http://127.0.0.1:9/"):
    """A credentials zip; offline=False leaves out the offline Targets key."""
    entries = {
        "treehub.json": json.dumps({"no_auth": True, "ostree": {"server": url + "treehub"}}),
        "tufrepo.url": url,
    }
    if offline:
        entries.update({
            "root.json": json.dumps({"signed": {"_type": "Root"}, "signatures": []}),
            "targets.pub": json.dumps({"keytype": "ED25519", "keyval": {"public": "00" * 32}}),
            "targets.sec": json.dumps({"keytype": "ED25519", "keyval": {"private": FAKE_SECRET}}),
        })
    with zipfile.ZipFile(str(path), "w") as zf:
        for name, text in entries.items():
            zf.writestr(name, text)
    return str(path)


@pytest.fixture
def credentials(tmp_path):
    return make_credentials(tmp_path / "offline-credentials.zip")


# What `ota-sign publish --json` prints (the fields the class reads).
FAKE_RESULT = {
    "target": "fake-image-1", "sha256": "ab" * 32, "length": 3, "targets_version": 7, "attempts": 1,
    "pushed": True, "changed": True, "uploaded": True, "dry_run": False, "removed": [],
    "targets_expires": "2099-01-01T00:00:00Z", "root_expires": "2099-06-01T00:00:00Z",
    "item": {"hashes": {"sha256": "ab" * 32}, "length": 3,
             "custom": {"name": "fake-image", "version": "1", "hardwareIds": ["qemux86-64"]}},
    "warnings": [],
}

FAKE_TOOL = """#!{python}
# Records its arguments in ./argv.json (the task's work directory).
import json, sys
with open('argv.json', 'w') as f:
    json.dump(sys.argv[1:], f)
sys.stdout.write({stdout!r})
sys.stderr.write({stderr!r})
sys.exit({code})
"""


@pytest.fixture
def fake_tool(tmp_path):
    """fake_tool(code=0, stderr='') -> path of an executable that records its argv."""

    def make(code=0, stderr="", name="ota-sign", directory=None, result=None):
        directory = str(directory or tmp_path / ("tool-%d" % code))
        os.makedirs(directory, exist_ok=True)
        path = os.path.join(directory, name)
        stdout = json.dumps(FAKE_RESULT if result is None else result) + "\n"
        with open(path, "w") as f:
            f.write(FAKE_TOOL.format(python=sys.executable, code=code, stderr=stderr, stdout=stdout))
        os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        return path

    return make


def files_containing(root, needle):
    needle = needle.encode()
    hits = []
    for dirpath, _, files in os.walk(str(root)):
        for name in files:
            path = os.path.join(dirpath, name)
            if os.path.islink(path):
                continue
            with open(path, "rb") as f:
                if needle in f.read():
                    hits.append(path)
    return hits


# --- real binaries -----------------------------------------------------------

def bin_dir():
    return os.environ.get("OTA_SIGN_BIN_DIR") or os.path.join(REPO, "target", "debug")


def require_binary(name):
    path = os.path.join(bin_dir(), name)
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        pytest.fail("%s not found in %s: run `cargo build --bin ota-sign --bin ota-reposerver` "
                    "or set OTA_SIGN_BIN_DIR" % (name, bin_dir()), pytrace=False)
    return path


class RepoServer:
    """`ota-reposerver serve` on 127.0.0.1, port chosen by the kernel."""

    ADDRESS = re.compile(r"(127\.0\.0\.1):(\d+)")

    def __init__(self, binary, data_dir):
        self.binary = binary
        self.data_dir = str(data_dir)
        self.output = []
        self.proc = None
        self.url = None

    def start(self, timeout=30):
        # The account first (four online keys); `serve --credentials` then writes the
        # credentials.zip for the port the kernel picked.
        self.credentials = self.data_dir + "-credentials.zip"
        init = subprocess.run([self.binary, "init-account", "--data-dir", self.data_dir, "--key-type", "ed25519"],
                              stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
        if init.returncode != 0:
            pytest.fail("ota-reposerver init-account failed:\n%s%s" % (init.stdout, init.stderr), pytrace=False)
        self.proc = subprocess.Popen(
            [self.binary, "serve", "--data-dir", self.data_dir, "--listen", "127.0.0.1:0",
             "--credentials", self.credentials],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            universal_newlines=True)
        found = threading.Event()

        def drain():
            for line in self.proc.stdout:
                self.output.append(line)
                m = self.ADDRESS.search(line)
                if m and not found.is_set():
                    self.url = "http://%s:%s" % (m.group(1), m.group(2))
                    found.set()
            found.set()

        threading.Thread(target=drain, daemon=True).start()
        deadline = time.monotonic() + timeout
        while not found.wait(0.1):
            if time.monotonic() > deadline:
                break
        if self.url is None:
            code = self.proc.poll()
            self.stop()
            pytest.fail("ota-reposerver serve did not print a 127.0.0.1:PORT address within %ds "
                        "(exit code %s); output:\n%s" % (timeout, code, "".join(self.output)), pytrace=False)
        return self

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self.proc.stdout:
            self.proc.stdout.close()
        self.proc = None


@pytest.fixture
def ota_sign_bin():
    """Path of the ota-sign binary; the test fails when it has not been built."""
    return require_binary("ota-sign")


@pytest.fixture
def reposerver(tmp_path):
    """A running ota-reposerver; stopped at the end of the test."""
    server = RepoServer(require_binary("ota-reposerver"), tmp_path / "reposerver")
    try:
        yield server.start()
    finally:
        server.stop()
