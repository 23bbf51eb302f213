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

import bb

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


def download(url, filename):
    """`GET targets/<file>`: what a device downloads."""
    with urllib.request.urlopen("%s/api/v1/user_repo/targets/%s" % (url.rstrip("/"), filename), timeout=30) as r:
        assert r.status == 200
        return r.read()


def summary_of(d):
    path = os.path.join(d.getVar("DEPLOY_DIR_IMAGE"), d.getVar("IMAGE_LINK_NAME") + ".offline-signing.json")
    with open(path) as f:
        return json.load(f)


def host_project(project, credentials, conf=""):
    return project(credentials=credentials, host_tool=os.path.join(bin_dir(), "ota-sign"), local_conf=conf)


def test_published_image_is_downloadable_and_rerunning_the_task_is_a_no_op(project, tmp_path, ota_sign_bin,
                                                                           reposerver):
    credentials, _ = init_account(reposerver, tmp_path / "offline-credentials.zip")
    d = host_project(project, credentials, 'OFFLINE_SIGNING_TARGET_VERSION = "1.0"\n').parse("fake-image")
    run_task(d, "do_image_complete")
    run_task(d, "do_offline_sign")
    with open(os.path.realpath(d.getVar("OFFLINE_SIGNING_ARTIFACT")), "rb") as f:
        image = f.read()
    first = summary_of(d)
    assert first["target"] == "fake-image-1.0" and first["pushed"] and first["uploaded"]
    assert download(reposerver.url, "fake-image-1.0") == image

    # The deploy-dir summary says what is on the server.
    signed = fetch_targets(reposerver.url)["signed"]
    assert first["targets_version"] == signed["version"]
    assert first["targets_expires"] == signed["expires"]
    assert first["item"] == signed["targets"]["fake-image-1.0"]
    assert first["item"]["custom"]["hardwareIds"] == ["qemux86-64"]
    assert first["sha256"] == hashlib.sha256(image).hexdigest() and first["length"] == len(image)

    # `bitbake <image> -c offline_sign -f`, twice, with uploads on.
    for _ in range(2):
        run_task(d, "do_offline_sign")
        again = summary_of(d)
        assert (again["pushed"], again["uploaded"], again["targets_version"]) == (False, False, signed["version"])
    assert download(reposerver.url, "fake-image-1.0") == image


def online_only(server, path):
    with zipfile.ZipFile(server.credentials) as src, zipfile.ZipFile(str(path), "w") as dst:
        for name in src.namelist():
            if name != "targets.sec":
                dst.writestr(name, src.read(name))
    return str(path)


def test_zip_without_offline_keys_skips_unless_required(project, tmp_path, ota_sign_bin, reposerver, caplog):
    online = online_only(reposerver, tmp_path / "credentials.zip")
    version = fetch_targets(reposerver.url)["signed"]["version"]
    d = host_project(project, online).parse("fake-image")
    run_task(d, "do_image_complete")
    with caplog.at_level("WARNING", logger="BitBake"):
        run_task(d, "do_offline_sign")
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("cannot sign offline" in w and "targets.sec" in w and "NOT registered" in w for w in warnings), warnings
    assert not os.path.exists(os.path.join(d.getVar("DEPLOY_DIR_IMAGE"),
                                           d.getVar("IMAGE_LINK_NAME") + ".offline-signing.json"))

    required = host_project(project, online, 'OFFLINE_SIGNING_REQUIRED = "1"\n').parse("fake-image")
    run_task(required, "do_image_complete")
    with pytest.raises(bb.BBHandledException):
        run_task(required, "do_offline_sign")
    assert "cannot sign offline" in caplog.text and "exit code 1" in caplog.text
    assert fetch_targets(reposerver.url)["signed"]["version"] == version


def test_expiry_warning_from_the_server(project, tmp_path, ota_sign_bin, reposerver, caplog):
    credentials, _ = init_account(reposerver, tmp_path / "offline-credentials.zip")
    d = host_project(project, credentials, 'OFFLINE_SIGNING_EXPIRY_WARN = "targets=400 root=40000"\n') \
        .parse("fake-image")
    run_task(d, "do_image_complete")
    with caplog.at_level("WARNING", logger="BitBake"):
        run_task(d, "do_offline_sign")
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert [w.split(".json")[0] for w in warnings] == ["targets", "root"], warnings


@pytest.mark.parametrize("conf,words", [
    ('OFFLINE_SIGNING_EXPIRES = "2030-01-01T00:00:00Z"\nOFFLINE_SIGNING_EXPIRE_AFTER = "1M"\n', "together"),
    ('OFFLINE_SIGNING_FORMAT = "TARBALL"\n', "binary or ostree"),
    ('OFFLINE_SIGNING_CUSTOM = "[1, 2]"\n', "--custom"),
])
def test_tool_rules_fail_the_task(project, tmp_path, ota_sign_bin, reposerver, caplog, conf, words):
    credentials, _ = init_account(reposerver, tmp_path / "offline-credentials.zip")
    d = host_project(project, credentials, conf).parse("fake-image")
    run_task(d, "do_image_complete")
    with pytest.raises(bb.BBHandledException):
        run_task(d, "do_offline_sign")
    assert "ota-sign publish failed" in caplog.text and words in caplog.text

SOFTHSM_MODULES = ["/usr/lib/softhsm/libsofthsm2.so", "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so"]


def test_task_signs_on_a_pkcs11_token(project, tmp_path, ota_sign_bin, reposerver, monkeypatch):
    """A token-backed offline-credentials.zip (targets.pkcs11, no targets.sec): the task
    signs on a SoftHSM2 token; module and PIN file are named by the URI (as the layer
    README says), the PIN itself is never in the zip or the build tree."""
    import subprocess
    module = next((m for m in SOFTHSM_MODULES if os.path.exists(m)), None)
    if module is None:
        pytest.fail("the SoftHSM2 PKCS#11 module is not installed (apt-get install softhsm2)", pytrace=False)
    (tmp_path / "tokens").mkdir()
    conf = tmp_path / "softhsm2.conf"
    conf.write_text("directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n" % (tmp_path / "tokens"))
    for k, v in {"SOFTHSM2_CONF": str(conf), "OTA_SIGN_PKCS11_MODULE": module, "OTA_SIGN_PKCS11_PIN": "4711"}.items():
        monkeypatch.setenv(k, v)

    def sh(*argv):
        proc = subprocess.run(list(argv), cwd=str(tmp_path), capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, "%s: %s%s" % (argv, proc.stdout, proc.stderr)

    (tmp_path / "pin").write_text("4711\n")
    sh("softhsm2-util", "--init-token", "--free", "--label", "ota", "--so-pin", "0815", "--pin", "4711")
    online, _ = init_account(reposerver, tmp_path / "credentials.zip")
    for step in (["init", "--repo", "r", "--credentials", online],
                 ["key", "generate", "--repo", "r", "--name", "myroot", "--type", "rsa",
                  "--pkcs11", "pkcs11:token=ota;object=myroot"],
                 ["key", "generate", "--repo", "r", "--name", "mytargets", "--type", "ed25519",
                  "--pkcs11", "pkcs11:token=ota;object=mytargets?module-path=%s&pin-source=%s"
                  % (module, tmp_path / "pin")],
                 ["targets", "pull", "--repo", "r"],
                 ["move-offline", "--repo", "r", "--old-root-alias", "origroot", "--new-root", "myroot",
                  "--new-targets", "mytargets"],
                 ["targets", "sign", "--repo", "r", "--key-name", "mytargets"],
                 ["targets", "push", "--repo", "r"],
                 ["export-credentials", "--repo", "r", "--key-name", "mytargets", "--to", "token.zip"]):
        sh(ota_sign_bin, *step)
    token_zip = str(tmp_path / "token.zip")
    with zipfile.ZipFile(token_zip) as zf:
        assert "targets.sec" not in zf.namelist() and "targets.pkcs11" in zf.namelist()

    monkeypatch.delenv("OTA_SIGN_PKCS11_PIN")
    monkeypatch.delenv("OTA_SIGN_PKCS11_MODULE")
    d = build_and_sign(project, token_zip, "host", "token image")
    sha, length = deployed(d)
    targets = fetch_targets(reposerver.url)
    assert targets["signed"]["targets"]["fake-image-%s" % sha]["length"] == length
    key_id = subprocess.run([ota_sign_bin, "user-keys", "id", "-i", "tuf/r/keys/mytargets.pub"], cwd=str(tmp_path),
                            capture_output=True, text=True, check=True).stdout.strip()
    assert [s["keyid"] for s in targets["signatures"]] == [key_id]
    assert files_containing(d.getVar("TMPDIR"), "4711") == []
