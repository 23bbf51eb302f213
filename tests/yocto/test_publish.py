# SPDX-License-Identifier: MPL-2.0
"""do_offline_sign against a real ota-reposerver with the real ota-sign.

Binaries come from OTA_SIGN_BIN_DIR (default: <repo>/target/debug).  When
they are missing the tests fail and say how to build them.
"""

import hashlib
import json
import os
import shutil
import urllib.request
import zipfile

import pytest

from bbharness import run_task
from conftest import bin_dir, files_containing, require_binary

OFFLINE_ENTRIES = {"root.json", "targets.pub", "targets.sec", "tufrepo.url"}


def init_account(server, credentials):
    """The account's credentials.zip (written by `serve --credentials`), copied to `credentials`."""
    shutil.copyfile(server.credentials, str(credentials))
    with zipfile.ZipFile(str(credentials)) as zf:
        names = set(zf.namelist())
        missing = OFFLINE_ENTRIES - names
        assert not missing, "init-account wrote no %s; ota-sign publish needs them" % ", ".join(sorted(missing))
        secret = json.loads(zf.read("targets.sec").decode())["keyval"]["private"]
    return str(credentials), secret


def fetch_targets(url):
    with urllib.request.urlopen(url.rstrip("/") + "/api/v1/user_repo/targets.json", timeout=30) as r:
        assert r.status == 200
        return json.loads(r.read().decode("utf-8"))


def deployed(d):
    path = os.path.realpath(d.getVar("OFFLINE_SIGNING_ARTIFACT"))
    with open(path, "rb") as f:
        data = f.read()
    return hashlib.sha256(data).hexdigest(), len(data)


def build_and_sign(project, credentials, tool_mode, content):
    conf = 'FAKE_IMAGE_CONTENT = "%s"\n' % content
    if tool_mode == "host":
        # README's OFFLINE_SIGNING_TOOL setting.
        p = project(credentials=credentials, host_tool=os.path.join(bin_dir(), "ota-sign"), local_conf=conf)
        d = p.parse("fake-image")
    else:
        # As ota-sign-native would: the tool in the native sysroot's bindir, found through PATH.
        p = project(credentials=credentials, local_conf=conf)
        d = p.parse("fake-image")
        bindir = d.getVar("STAGING_BINDIR_NATIVE")
        os.makedirs(bindir, exist_ok=True)
        os.symlink(os.path.join(bin_dir(), "ota-sign"), os.path.join(bindir, "ota-sign"))
    run_task(d, "do_image_complete")
    run_task(d, "do_offline_sign")
    return d


@pytest.mark.parametrize("tool_mode", ["host", "native-sysroot"])
def test_task_publishes_fake_image_to_reposerver(project, tmp_path, ota_sign_bin, reposerver, tool_mode):
    credentials, secret = init_account(reposerver, tmp_path / "offline-credentials.zip")

    first = build_and_sign(project, credentials, tool_mode, "first image")
    second = build_and_sign(project, credentials, tool_mode, "second image")

    targets = fetch_targets(reposerver.url)["signed"]["targets"]
    for d in (first, second):
        sha, length = deployed(d)
        name = "fake-image-%s" % sha  # <name>-<version>, version defaults to the sha256
        assert name in targets, "target %s missing; targets.json has %s" % (name, sorted(targets))
        target = targets[name]
        assert target["hashes"]["sha256"] == sha
        assert target["length"] == length
        custom = target.get("custom") or {}
        if custom:
            assert custom.get("name") == "fake-image"
            assert custom.get("version") == sha
            assert custom.get("hardwareIds") == ["qemux86-64"]

    # The Targets private key never reaches the build tree.
    assert files_containing(first.getVar("TMPDIR"), secret) == []
    assert files_containing(second.getVar("TMPDIR"), secret) == []
