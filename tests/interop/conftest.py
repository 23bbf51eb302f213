# SPDX-License-Identifier: MPL-2.0
"""Fixtures for the device-side (aktualizr rules) check of what ota-sign produces.

One module-scoped fixture per key type runs the OTA Connect "Manage keys for
software metadata" procedure end to end with the real binaries against a local
`ota-reposerver` (loopback only), publishes one image with `--upload`, and
downloads everything a device would fetch. The server keeps running until the
module's tests are done (the image download test needs it) and is always
stopped (terminate, wait) in the fixture's finalizer.
"""
import hashlib
import json
import os
import re
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

IMAGE_NAME = "demo-image"
IMAGE_VERSION = "1.0"
TARGET_NAME = IMAGE_NAME + "-" + IMAGE_VERSION  # test_device_rules.py repeats these two
HARDWARE_ID = "qemux86-64"


def bin_dir():
    return os.environ.get("OTA_SIGN_BIN_DIR") or os.path.join(REPO, "target", "debug")


def require_binary(name):
    path = os.path.join(bin_dir(), name)
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        pytest.fail("%s not found in %s: run `cargo build --bins` or set OTA_SIGN_BIN_DIR" % (name, bin_dir()),
                    pytrace=False)
    return path


def run(argv, cwd, timeout=300, env=None):
    """Runs one command; fails the test with its output when it exits non-zero."""
    proc = subprocess.run(argv, cwd=str(cwd), stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=timeout, env=env)
    if proc.returncode != 0:
        pytest.fail("command failed (exit %d): %s\n--- stdout\n%s--- stderr\n%s"
                    % (proc.returncode, " ".join(argv), proc.stdout, proc.stderr), pytrace=False)
    return proc


class RepoServer:
    """`ota-reposerver serve --listen 127.0.0.1:0`; the first stdout line gives the URL."""

    LISTENING = re.compile(r"^listening on (http://127\.0\.0\.1:\d+)\s*$")

    def __init__(self, binary, data_dir, credentials):
        self.binary = binary
        self.data_dir = str(data_dir)
        self.credentials = str(credentials)
        self.proc = None
        self.url = None
        self.stdout = []
        self.log_path = self.data_dir + ".log"

    def start(self, timeout=30):
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [self.binary, "serve", "--data-dir", self.data_dir, "--listen", "127.0.0.1:0",
             "--credentials", self.credentials],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self._log, universal_newlines=True)
        first = threading.Event()

        def drain():
            for line in self.proc.stdout:
                self.stdout.append(line)
                if not first.is_set():
                    m = self.LISTENING.match(line)
                    if m:
                        self.url = m.group(1)
                    first.set()
            first.set()

        threading.Thread(target=drain, daemon=True).start()
        first.wait(timeout)
        if self.url is None:
            code = self.proc.poll()
            self.stop()
            with open(self.log_path) as f:
                log = f.read()
            pytest.fail("ota-reposerver serve did not print `listening on http://127.0.0.1:PORT` first within "
                        "%ds (exit code %s); stdout %r; stderr:\n%s" % (timeout, code, self.stdout, log),
                        pytrace=False)
        return self

    def stop(self):
        if self.proc is not None:
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
        if getattr(self, "_log", None):
            self._log.close()
            self._log = None


def http_get(url, timeout=20):
    """(status, body) of a GET; HTTP errors are returned, not raised. Loopback only."""
    assert url.startswith("http://127.0.0.1:"), "only loopback URLs are fetched: %s" % url
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


class Published:
    """What one end-to-end run produced: URL, local files, and a fetch() for the repo."""

    def __init__(self, key_type, url, workdir, image):
        self.key_type = key_type
        self.url = url
        self.workdir = workdir
        self.image = image
        self.base = url.rstrip("/") + "/api/v1/user_repo/"

    def fetch(self, path):
        return http_get(self.base + path)

    def fetch_ok(self, path):
        status, body = self.fetch(path)
        assert 200 <= status < 300, "GET %s: HTTP %d %r" % (path, status, body[:300])
        return body

    def offline_public_key(self, name):
        with open(os.path.join(str(self.workdir), "tuf", "myimagerepo", "keys", name + ".pub")) as f:
            return json.load(f)


@pytest.fixture
def ota_sign_bin():
    """Path of the ota-sign binary under test."""
    return require_binary("ota-sign")


SOFTHSM_MODULES = ["/usr/lib/softhsm/libsofthsm2.so", "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
                   "/usr/lib64/pkcs11/libsofthsm2.so", "/usr/local/lib/softhsm/libsofthsm2.so"]


def softhsm_token(work):
    """A fresh SoftHSM2 token in `work`; the environment for ota-sign to use it. Fails
    (never skips) when SoftHSM2 is missing: .ci/run installs it."""
    module = next((m for m in SOFTHSM_MODULES if os.path.exists(m)), None)
    if module is None:
        pytest.fail("the SoftHSM2 PKCS#11 module is not installed (apt-get install softhsm2)", pytrace=False)
    (work / "tokens").mkdir()
    conf = work / "softhsm2.conf"
    conf.write_text("directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n" % (work / "tokens"))
    env = dict(os.environ, SOFTHSM2_CONF=str(conf), OTA_SIGN_PKCS11_MODULE=module, OTA_SIGN_PKCS11_PIN="246813")
    run(["softhsm2-util", "--init-token", "--free", "--label", "ota", "--so-pin", "135790", "--pin", "246813"],
        work, env=env)
    return env


@pytest.fixture(scope="module", params=[("rsa", False), ("ed25519", False), ("rsa", True), ("ed25519", True)],
                ids=["rsa", "ed25519", "rsa-pkcs11", "ed25519-pkcs11"])
def published(request, tmp_path_factory):
    """With pkcs11, the offline root and targets keys are generated on a SoftHSM2 token
    and publish signs there through a token-backed credentials zip."""
    key_type, on_token = request.param
    ota_sign = require_binary("ota-sign")
    reposerver = require_binary("ota-reposerver")
    work = tmp_path_factory.mktemp("device-" + key_type + ("-pkcs11" if on_token else ""))
    env = softhsm_token(work) if on_token else None

    def token(name):
        return ["--pkcs11", "pkcs11:token=ota;object=" + name] if on_token else []

    run([reposerver, "init-account", "--data-dir", str(work / "server-data"), "--key-type", key_type], work)
    server = RepoServer(reposerver, work / "server-data", work / "credentials.zip")
    try:
        server.start()
        # The procedure, verbatim (scripts/demo.sh), with cwd = the temp dir.
        steps = [
            ["init", "--repo", "myimagerepo", "--credentials", "credentials.zip"],
            ["key", "generate", "--repo", "myimagerepo", "--name", "myroot", "--type", key_type] + token("myroot"),
            ["key", "generate", "--repo", "myimagerepo", "--name", "mytargets", "--type", key_type]
            + token("mytargets"),
            ["targets", "pull", "--repo", "myimagerepo"],
            ["move-offline", "--repo", "myimagerepo", "--old-root-alias", "origroot",
             "--new-root", "myroot", "--new-targets", "mytargets"],
            ["targets", "sign", "--repo", "myimagerepo", "--key-name", "mytargets"],
            ["targets", "push", "--repo", "myimagerepo"],
            ["export-credentials", "--repo", "myimagerepo", "--target-key-name", "mytargets",
             "--to", "offline-credentials.zip"],
        ]
        for step in steps:
            run([ota_sign] + step, work, env=env)
        if on_token:
            names = zipfile.ZipFile(str(work / "offline-credentials.zip")).namelist()
            assert "targets.sec" not in names and "targets.pkcs11" in names, names
            assert not (work / "tuf" / "myimagerepo" / "keys" / "mytargets.sec").exists()
        image = hashlib.sha256(b"device-check " + key_type.encode()).digest() * 4096  # 128 KiB, deterministic
        (work / "demo.wic").write_bytes(image)
        run([ota_sign, "publish", "--credentials", "offline-credentials.zip", "--name", IMAGE_NAME,
             "--version", IMAGE_VERSION, "--hardwareids", HARDWARE_ID, "--image", "demo.wic", "--upload"], work, env=env)
        yield Published(key_type, server.url, work, image)
    finally:
        server.stop()
