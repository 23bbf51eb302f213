# SPDX-License-Identifier: MPL-2.0
"""meta-offline-signing parsed and run by the real bitbake library.

None of these tests needs the ota-sign binaries: the task is run against a
fake ota-sign that records its command line.  test_publish.py runs the real
tool against ota-reposerver.
"""

import hashlib
import json
import os
import re

import pytest

import bb
import bb.parse

import bbharness
from bbharness import LAYER, REPO, run_task, task_deps, tasks
from conftest import FAKE_RESULT, FAKE_SECRET, files_containing, make_credentials

OPT_IN = 'IMAGE_CLASSES += "offline_signing"\n'


def build_closure(d, task="do_build"):
    """Every task of the recipe that `task` (transitively) depends on."""
    seen, todo = set(), [task]
    while todo:
        t = todo.pop()
        for dep in task_deps(d, t):
            if dep not in seen:
                seen.add(dep)
                todo.append(dep)
    return seen


def signing_workdir(d):
    return d.getVar("OFFLINE_SIGNING_WORKDIR")


def recorded_argv(d):
    with open(os.path.join(signing_workdir(d), "argv.json")) as f:
        return json.load(f)


def option(argv, name):
    assert argv.count(name) == 1, "%s given %d times in %s" % (name, argv.count(name), argv)
    return argv[argv.index(name) + 1]


def deployed_image(d):
    path = os.path.realpath(d.getVar("OFFLINE_SIGNING_ARTIFACT"))
    with open(path, "rb") as f:
        data = f.read()
    return path, hashlib.sha256(data).hexdigest(), len(data)


# --- layer.conf ---------------------------------------------------------------

def test_layer_conf_declares_own_collection_and_series(project):
    d = project().parse_config()
    assert "offline-signing" in d.getVar("BBFILE_COLLECTIONS").split()
    assert d.getVar("LAYERDEPENDS_offline-signing") == "core"
    assert d.getVar("LAYERSERIES_COMPAT_offline-signing").split() == ["scarthgap", "wrynose"]
    assert LAYER in d.getVar("BBPATH").split(":")


@pytest.mark.parametrize("series", ["scarthgap", "wrynose"])
def test_layer_accepted_by_supported_core_series(project, series):
    d = project(series=series).parse_config()
    assert d.getVar("LAYERSERIES_CORENAMES") == series


def test_layer_rejected_by_unsupported_core_series(project):
    with pytest.raises(bb.BBHandledException):
        project(series="kirkstone").parse_config()


def test_layer_conf_sets_only_layer_variables():
    allowed = {"BBPATH", "BBFILES", "BBFILE_COLLECTIONS"}
    allowed_prefixes = ("BBFILE_PATTERN_offline-signing", "BBFILE_PRIORITY_offline-signing",
                        "LAYERVERSION_offline-signing", "LAYERDEPENDS_offline-signing",
                        "LAYERSERIES_COMPAT_offline-signing")
    with open(os.path.join(LAYER, "conf", "layer.conf")) as f:
        for line in f:
            m = re.match(r"^([A-Za-z0-9_:${}.-]+)\s*(\?\?=|\?=|:=|\+=|\.=|=\+|=\.|=)", line)
            if m:
                var = m.group(1)
                assert var in allowed or var in allowed_prefixes, "layer.conf sets global variable %s" % var


def test_adding_the_layer_changes_no_recipe(project):
    """yocto-check-layer's signature rule: same tasks, ordering and basehashes."""
    without = project(with_layer=False)
    d0 = without.parse("fake-image")
    sig0, tasks0 = without.basehashes(d0), {t: task_deps(d0, t) for t in tasks(d0)}

    with_layer = project(with_layer=True)
    d1 = with_layer.parse("fake-image")
    sig1, tasks1 = with_layer.basehashes(d1), {t: task_deps(d1, t) for t in tasks(d1)}

    assert tasks1 == tasks0
    assert sig1 == sig0
    assert "OFFLINE_SIGNING_CREDENTIALS" not in d1.keys()


# --- task wiring -------------------------------------------------------------------

def test_no_signing_task_scheduled_without_credentials(project):
    d = project(local_conf=OPT_IN).parse("fake-image")
    assert d.getVar("OFFLINE_SIGNING_CREDENTIALS") == ""
    assert "do_offline_sign" in tasks(d)  # defined, so `-c offline_sign` can be asked for
    assert "do_offline_sign" not in build_closure(d)


def test_no_signing_task_scheduled_without_credentials_inherit(project):
    d = project().parse("fake-image-inherit")
    assert "do_offline_sign" not in build_closure(d)


def test_readme_configuration_schedules_signing_task(project, credentials):
    d = project(credentials=credentials).parse("fake-image")
    assert d.getVar("OFFLINE_SIGNING_CREDENTIALS") == credentials
    assert task_deps(d, "do_offline_sign") == ["do_image_complete"]
    assert "do_offline_sign" in task_deps(d, "do_build")
    assert build_closure(d) == {"do_image_complete", "do_offline_sign"}


def test_inherit_with_credentials_schedules_signing_task(project, credentials):
    d = project(local_conf='OFFLINE_SIGNING_CREDENTIALS = "%s"\n' % credentials).parse("fake-image-inherit")
    assert task_deps(d, "do_offline_sign") == ["do_image_complete"]
    assert "do_offline_sign" in task_deps(d, "do_build")


def test_required_schedules_task_without_credentials(project):
    d = project(local_conf=OPT_IN + 'OFFLINE_SIGNING_REQUIRED = "1"\n').parse("fake-image")
    assert "do_offline_sign" in task_deps(d, "do_build")


def test_task_flags(project, credentials):
    d = project(credentials=credentials).parse("fake-image")
    flag = lambda name: d.getVarFlag("do_offline_sign", name)  # noqa: E731
    assert flag("network") == "1"
    assert flag("depends").split() == ["ota-sign-native:do_populate_sysroot",
                                       "ca-certificates-native:do_populate_sysroot"]
    assert flag("file-checksums").split() == ["%s:True" % credentials]
    assert flag("lockfiles") == os.path.join(d.getVar("TMPDIR"), "offline-signing.lock")
    workdir = d.getVar("WORKDIR")
    assert flag("dirs") == flag("cleandirs") == os.path.join(workdir, "offline-signing")
    assert flag("nostamp") is None
    assert flag("doc")
    assert "OFFLINE_SIGNING_CREDENTIALS" in flag("vardepsexclude").split()


# Every variable that changes what is pushed, with a value that differs from its default.
PUSHED_BY = {
    "OFFLINE_SIGNING_TARGET_NAME": "other", "OFFLINE_SIGNING_TARGET_VERSION": "9",
    "OFFLINE_SIGNING_HARDWARE_IDS": "board-x", "OFFLINE_SIGNING_URL": "https://cdn.example.com/x",
    "OFFLINE_SIGNING_EXPIRES": "2031-01-01T00:00:00Z", "OFFLINE_SIGNING_EXPIRE_AFTER": "2M",
    "OFFLINE_SIGNING_CUSTOM": '{"a": 1}', "OFFLINE_SIGNING_FORMAT": "OSTREE",
    "OFFLINE_SIGNING_ARTIFACT": "/srv/other.wic", "OFFLINE_SIGNING_OSTREE_COMMIT": "ab" * 32,
    "OFFLINE_SIGNING_UPLOAD": "0", "OFFLINE_SIGNING_KEEP_VERSIONS": "3", "OFFLINE_SIGNING_DRY_RUN": "1",
    "OFFLINE_SIGNING_REQUIRED": "1", "OFFLINE_SIGNING_TOOL": "/opt/ota-sign", "OFFLINE_SIGNING_RETRIES": "9",
}


def test_signature_covers_every_variable_that_changes_what_is_pushed(project, credentials):
    base = project(credentials=credentials)
    h0 = base.basehashes(base.parse("fake-image"))["do_offline_sign"]
    for var, value in PUSHED_BY.items():
        p = project(credentials=credentials, local_conf="%s = '%s'\n" % (var, value))
        assert p.basehashes(p.parse("fake-image"))["do_offline_sign"] != h0, var
    same = project(credentials=credentials, local_conf='OFFLINE_SIGNING_EXPIRY_WARN = "targets=1"\n')
    assert same.basehashes(same.parse("fake-image"))["do_offline_sign"] == h0


def test_host_tool_drops_native_dependency(project, credentials):
    d = project(credentials=credentials, host_tool="/opt/ota-sign/bin/ota-sign").parse("fake-image")
    assert d.getVar("OFFLINE_SIGNING_TOOL") == "/opt/ota-sign/bin/ota-sign"
    assert d.getVarFlag("do_offline_sign", "depends").split() == ["ca-certificates-native:do_populate_sysroot"]


def test_signature_follows_settings_and_credentials_content_not_path(project, tmp_path, credentials):
    base = project(credentials=credentials)
    h0 = base.basehashes(base.parse("fake-image"))["do_offline_sign"]

    renamed = project(local_conf='OFFLINE_SIGNING_TARGET_NAME = "other"\n', credentials=credentials)
    assert renamed.basehashes(renamed.parse("fake-image"))["do_offline_sign"] != h0

    moved = make_credentials(tmp_path / "elsewhere.zip")
    p = project(credentials=moved)
    d = p.parse("fake-image")
    assert p.basehashes(d)["do_offline_sign"] == h0
    # ... the content is tracked through [file-checksums] by the runqueue.
    assert d.getVarFlag("do_offline_sign", "file-checksums").split() == ["%s:True" % moved]


# --- defaults and meta-updater fallbacks ----------------------------------------------

DEFAULTS = {
    "OFFLINE_SIGNING_CREDENTIALS": "",
    "OFFLINE_SIGNING_REQUIRED": "0",
    "OFFLINE_SIGNING_TARGET_NAME": "fake-image",
    "OFFLINE_SIGNING_TARGET_VERSION": "",
    "OFFLINE_SIGNING_HARDWARE_IDS": "qemux86-64",
    "OFFLINE_SIGNING_FORMAT": "BINARY",
    "OFFLINE_SIGNING_IMAGE_TYPE": "wic",
    "OFFLINE_SIGNING_OSTREE_COMMIT": "",
    "OFFLINE_SIGNING_URL": "",
    "OFFLINE_SIGNING_UPLOAD": "auto",
    "OFFLINE_SIGNING_EXPIRES": "",
    "OFFLINE_SIGNING_EXPIRE_AFTER": "",
    "OFFLINE_SIGNING_EXPIRY_WARN": "targets=7 root=30",
    "OFFLINE_SIGNING_RETRIES": "5",
    "OFFLINE_SIGNING_CUSTOM": "",
    "OFFLINE_SIGNING_KEEP_VERSIONS": "",
    "OFFLINE_SIGNING_DRY_RUN": "0",
    "OFFLINE_SIGNING_TOOL": "",
}


def test_defaults(project):
    d = project(local_conf=OPT_IN).parse("fake-image")
    for var, value in DEFAULTS.items():
        assert d.getVar(var) == value, var
    assert d.getVar("OFFLINE_SIGNING_ARTIFACT") == os.path.join(
        d.getVar("DEPLOY_DIR_IMAGE"), "fake-image-qemux86-64.rootfs.wic")
    assert d.getVar("OFFLINE_SIGNING_OSTREE_MANIFEST") == os.path.join(d.getVar("WORKDIR"), "ostree_manifest")
    assert d.getVar("OFFLINE_SIGNING_CACERT") == os.path.join(
        d.getVar("STAGING_ETCDIR_NATIVE"), "ssl", "certs", "ca-certificates.crt")
    assert d.getVar("OFFLINE_SIGNING_LOCKFILE") == os.path.join(d.getVar("TMPDIR"), "offline-signing.lock")


def test_default_image_type_falls_back_to_first_fstype(project):
    d = project(local_conf=OPT_IN + 'IMAGE_FSTYPES = "ext4 tar.bz2"\n').parse("fake-image")
    assert d.getVar("OFFLINE_SIGNING_IMAGE_TYPE") == "ext4"


META_UPDATER = {
    "SOTA_PACKED_CREDENTIALS": ("OFFLINE_SIGNING_CREDENTIALS", "/srv/creds/credentials.zip"),
    "GARAGE_TARGET_NAME": ("OFFLINE_SIGNING_TARGET_NAME", "my-product"),
    "GARAGE_TARGET_VERSION": ("OFFLINE_SIGNING_TARGET_VERSION", "1.2.3"),
    "SOTA_HARDWARE_ID": ("OFFLINE_SIGNING_HARDWARE_IDS", "board-rev2"),
    "GARAGE_TARGET_URL": ("OFFLINE_SIGNING_URL", "https://cdn.example.com/img.wic"),
    "GARAGE_TARGET_EXPIRES": ("OFFLINE_SIGNING_EXPIRES", "2030-01-01T00:00:00Z"),
    "GARAGE_PUSH_RETRIES": ("OFFLINE_SIGNING_RETRIES", "3"),
}


def test_meta_updater_fallbacks(project):
    conf = OPT_IN + "".join('%s = "%s"\n' % (k, v[1]) for k, v in META_UPDATER.items())
    d = project(local_conf=conf).parse("fake-image")
    for ours, value in META_UPDATER.values():
        assert d.getVar(ours) == value, ours
    assert d.getVar("OFFLINE_SIGNING_EXPIRE_AFTER") == ""
    # Credentials through SOTA_PACKED_CREDENTIALS schedule the task too.
    assert "do_offline_sign" in task_deps(d, "do_build")


def test_meta_updater_expire_after_fallback(project):
    d = project(local_conf=OPT_IN + 'GARAGE_TARGET_EXPIRE_AFTER = "2M"\n').parse("fake-image")
    assert d.getVar("OFFLINE_SIGNING_EXPIRE_AFTER") == "2M"
    assert d.getVar("OFFLINE_SIGNING_EXPIRES") == ""


def test_own_variables_win_over_meta_updater(project):
    conf = OPT_IN + "".join('%s = "%s"\n' % (k, v[1]) for k, v in META_UPDATER.items())
    conf += 'OFFLINE_SIGNING_TARGET_NAME = "ours"\nOFFLINE_SIGNING_HARDWARE_IDS = "a b"\n'
    d = project(local_conf=conf).parse("fake-image")
    assert d.getVar("OFFLINE_SIGNING_TARGET_NAME") == "ours"
    assert d.getVar("OFFLINE_SIGNING_HARDWARE_IDS") == "a b"


# --- running the task (fake ota-sign) --------------------------------------------------

def signing_project(project, credentials, tool, local_conf=""):
    return project(credentials=credentials, host_tool=tool, local_conf=local_conf)


def signed(project, credentials, tool, local_conf="", image=True):
    d = signing_project(project, credentials, tool, local_conf).parse("fake-image")
    if image:
        run_task(d, "do_image_complete")
    run_task(d, "do_offline_sign")
    return d


def test_task_maps_variables_to_one_publish_call(project, credentials, fake_tool):
    d = signed(project, credentials, fake_tool())
    path, sha, size = deployed_image(d)
    argv = recorded_argv(d)
    assert argv[0] == "publish" and "--json" in argv
    assert option(argv, "--credentials") == credentials
    assert option(argv, "--name") == "fake-image"
    assert option(argv, "--hardwareids") == "qemux86-64"
    assert option(argv, "--format") == "BINARY"
    assert option(argv, "--image") == path
    assert option(argv, "--retries") == "5"
    # The tool hashes the image, names the version after it and picks the expiry.
    for absent in ("--sha256", "--length", "--version", "--expire-after", "--url", "--custom", "--expires",
                   "--dry-run", "--cacert"):
        assert absent not in argv
    # auto: nothing else serves a BINARY image, so it is uploaded; without offline keys the tool skips.
    assert "--upload" in argv and "--skip-unless-offline" in argv
    # The zip is never copied or extracted into the build tree.
    assert files_containing(d.getVar("TMPDIR"), FAKE_SECRET) == []


@pytest.mark.parametrize("conf,upload", [
    ('', True),
    ('OFFLINE_SIGNING_URL = "https://cdn.example.com/i.wic"\n', False),
    ('OFFLINE_SIGNING_UPLOAD = "0"\n', False),
    ('OFFLINE_SIGNING_UPLOAD = "1"\nOFFLINE_SIGNING_URL = "https://cdn.example.com/i.wic"\n', True),
    ('OFFLINE_SIGNING_FORMAT = "OSTREE"\nOFFLINE_SIGNING_OSTREE_COMMIT = "%s"\n' % ("ab" * 32), False),
])
def test_upload_auto_default(project, credentials, fake_tool, conf, upload):
    d = signed(project, credentials, fake_tool(), conf)
    assert ("--upload" in recorded_argv(d)) == upload


def test_deploy_summary_is_the_publish_result(project, credentials, fake_tool):
    d = signed(project, credentials, fake_tool())
    deployed = os.path.join(d.getVar("DEPLOY_DIR_IMAGE"), "fake-image-qemux86-64.rootfs.offline-signing.json")
    for path in (deployed, os.path.join(signing_workdir(d), "target.json")):
        with open(path) as f:
            assert json.load(f) == FAKE_RESULT


def test_tool_warnings_become_build_warnings(project, credentials, fake_tool, caplog):
    result = dict(FAKE_RESULT, warnings=["devices cannot download fake-image-1"])
    with caplog.at_level("WARNING", logger="BitBake"):
        signed(project, credentials, fake_tool(result=result))
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == ["devices cannot download fake-image-1"]


@pytest.mark.parametrize("conf,roles", [
    ("", ["targets"]),  # defaults: targets within 7 days, root within 30
    ('OFFLINE_SIGNING_EXPIRY_WARN = "targets=10"\n', ["targets"]),
    ('OFFLINE_SIGNING_EXPIRY_WARN = "targets=1 root=40"\n', ["root"]),
])
def test_expiry_warning(project, credentials, fake_tool, caplog, conf, roles):
    import datetime
    soon = lambda days: (datetime.datetime.now(datetime.timezone.utc)  # noqa: E731
                         + datetime.timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")
    result = dict(FAKE_RESULT, targets_expires=soon(5), root_expires=soon(35))
    with caplog.at_level("WARNING", logger="BitBake"):
        signed(project, credentials, fake_tool(result=result), conf)
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert [w.split(".json")[0] for w in warnings] == roles
    for w in warnings:
        assert "OFFLINE_SIGNING_EXPIRY_WARN" in w
        assert ("ota-sign refresh --if-expires-within" in w) == w.startswith("targets")
        assert ("root sign" in w) == w.startswith("root")


def test_native_tool_found_in_sysroot(project, credentials, fake_tool):
    p = project(credentials=credentials)
    d = p.parse("fake-image")
    fake_tool(directory=d.getVar("STAGING_BINDIR_NATIVE"))
    run_task(d, "do_image_complete")
    run_task(d, "do_offline_sign")
    assert recorded_argv(d)[0] == "publish"


def test_all_options_passed(project, credentials, fake_tool, tmp_path):
    cacert = tmp_path / "ca.crt"
    cacert.write_text("-----BEGIN CERTIFICATE-----\n")
    custom = '{"channel": "beta", "build": 42}'
    conf = """\
OFFLINE_SIGNING_TARGET_NAME = "product"
OFFLINE_SIGNING_TARGET_VERSION = "2.0"
OFFLINE_SIGNING_HARDWARE_IDS = "board-a, board-b board-c"
OFFLINE_SIGNING_IMAGE_TYPE = "tar.bz2"
OFFLINE_SIGNING_URL = "https://cdn.example.com/product-2.0.tar.bz2"
OFFLINE_SIGNING_UPLOAD = "1"
OFFLINE_SIGNING_EXPIRES = "2030-01-01T00:00:00Z"
OFFLINE_SIGNING_EXPIRE_AFTER = "2M"
OFFLINE_SIGNING_RETRIES = "7"
OFFLINE_SIGNING_CUSTOM = '%s'
OFFLINE_SIGNING_KEEP_VERSIONS = "10"
OFFLINE_SIGNING_DRY_RUN = "1"
OFFLINE_SIGNING_REQUIRED = "1"
OFFLINE_SIGNING_CACERT = "%s"
""" % (custom, cacert)
    d = signed(project, credentials, fake_tool(), conf)
    path, sha, size = deployed_image(d)
    assert path.endswith(".tar.bz2")
    argv = recorded_argv(d)
    assert option(argv, "--name") == "product"
    assert option(argv, "--version") == "2.0"
    assert option(argv, "--hardwareids") == "board-a,board-b,board-c"
    assert option(argv, "--image") == path
    assert "--upload" in argv and "--sha256" not in argv and "--length" not in argv
    assert option(argv, "--url") == "https://cdn.example.com/product-2.0.tar.bz2"
    # Both expiry settings go to the tool, whose rule refuses the pair.
    assert option(argv, "--expires") == "2030-01-01T00:00:00Z"
    assert option(argv, "--expire-after") == "2M"
    assert option(argv, "--retries") == "7"
    assert option(argv, "--custom") == custom
    assert option(argv, "--keep-versions") == "10"
    assert option(argv, "--cacert") == str(cacert)
    assert option(argv, "--output") == os.path.join(signing_workdir(d), "targets.json")
    assert "--dry-run" in argv
    assert "--skip-unless-offline" not in argv  # OFFLINE_SIGNING_REQUIRED


def test_ostree_target_from_meta_updater_manifest(project, credentials, fake_tool):
    commit = "ab" * 32
    d = signing_project(project, credentials, fake_tool(), 'OFFLINE_SIGNING_FORMAT = "OSTREE"\n').parse("fake-image")
    os.makedirs(d.getVar("WORKDIR"), exist_ok=True)
    with open(d.getVar("OFFLINE_SIGNING_OSTREE_MANIFEST"), "w") as f:
        f.write(commit + "\n")
    run_task(d, "do_image_complete")
    run_task(d, "do_offline_sign")
    argv = recorded_argv(d)
    assert option(argv, "--format") == "OSTREE"
    assert option(argv, "--sha256") == commit
    assert "--image" not in argv and "--upload" not in argv


def test_ostree_commit_variable(project, credentials, fake_tool):
    commit = "cd" * 32
    conf = 'OFFLINE_SIGNING_FORMAT = "ostree"\nOFFLINE_SIGNING_OSTREE_COMMIT = "%s"\n' % commit
    d = signed(project, credentials, fake_tool(), conf)
    assert option(recorded_argv(d), "--sha256") == commit


def test_skipped_by_the_tool_warns(project, credentials, fake_tool, caplog):
    result = {"target": "fake-image", "skipped": True, "reason": "zip cannot sign offline: it has no targets.sec"}
    with caplog.at_level("WARNING", logger="BitBake"):
        d = signed(project, credentials, fake_tool(result=result))
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "targets.sec" in warnings[0] and "OFFLINE_SIGNING_REQUIRED" in warnings[0]
    assert not os.path.exists(os.path.join(signing_workdir(d), "target.json"))


def test_required_without_credentials_fails(project, fake_tool, caplog):
    d = project(host_tool=fake_tool(), local_conf=OPT_IN + 'OFFLINE_SIGNING_REQUIRED = "1"\n').parse("fake-image")
    run_task(d, "do_image_complete")
    with pytest.raises(bb.BBHandledException):
        run_task(d, "do_offline_sign")
    assert "no credentials are configured" in caplog.text


@pytest.mark.parametrize("code", [1, 2, 3, 255])
def test_tool_failure_fails_task(project, credentials, fake_tool, caplog, code):
    d = signing_project(project, credentials, fake_tool(code=code, stderr="error: server said no\n")).parse("fake-image")
    run_task(d, "do_image_complete")
    with pytest.raises(bb.BBHandledException):
        run_task(d, "do_offline_sign")
    assert "exit code %d" % code in caplog.text and "server said no" in caplog.text
    assert not os.path.exists(os.path.join(signing_workdir(d), "target.json"))


@pytest.mark.parametrize("conf,words", [
    ('OFFLINE_SIGNING_IMAGE_TYPE = "ext4"\n', "does not exist"),
    ('OFFLINE_SIGNING_FORMAT = "OSTREE"\n', "OFFLINE_SIGNING_OSTREE_COMMIT"),
])
def test_configuration_errors_fail_task(project, credentials, fake_tool, caplog, conf, words):
    d = signing_project(project, credentials, fake_tool(), conf).parse("fake-image")
    run_task(d, "do_image_complete")
    with pytest.raises(bb.BBHandledException):
        run_task(d, "do_offline_sign")
    assert words in caplog.text


def test_host_tool_must_exist(project, credentials, tmp_path, caplog):
    d = signing_project(project, credentials, str(tmp_path / "nope" / "ota-sign")).parse("fake-image")
    run_task(d, "do_image_complete")
    with pytest.raises(bb.BBHandledException):
        run_task(d, "do_offline_sign")
    assert "OFFLINE_SIGNING_TOOL" in caplog.text


def test_class_is_thin():
    with open(os.path.join(LAYER, "classes-recipe", "offline_signing.bbclass")) as f:
        assert len(f.read().splitlines()) < 120


# --- the ota-sign recipe -------------------------------------------------------------

RECIPE = os.path.join(LAYER, "recipes-devtools", "ota-sign", "ota-sign_0.1.0.bb")


def cargo_toml():
    try:
        import tomllib
    except ImportError:  # Python < 3.11: only build.rs is checked
        return {}
    with open(os.path.join(REPO, "Cargo.toml"), "rb") as f:
        return tomllib.load(f)


def cargo_lock_crates():
    import importlib.util
    spec = importlib.util.spec_from_file_location("gen", os.path.join(REPO, "scripts", "gen-crates-inc.py"))
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    return [p for p in gen.load_packages(os.path.join(REPO, "Cargo.lock")) if "crates.io" in p.get("source", "")]


def test_recipe_version_matches_cargo_toml():
    with open(os.path.join(REPO, "Cargo.toml")) as f:
        version = re.search(r'^version\s*=\s*"([^"]+)"', f.read(), re.M).group(1)
    assert os.path.basename(RECIPE) == "ota-sign_%s.bb" % version


def test_recipe_parses_with_crates_license_and_native_variant(project):
    p = project()
    d = p.parse(RECIPE)
    assert d.getVar("PN") == "ota-sign" and d.getVar("PV") == "0.1.0"
    assert d.getVar("BBCLASSEXTEND") == "native"
    assert p.parse(RECIPE, variant="native") is not None

    src_uri = d.getVar("SRC_URI").split()
    crates = [u for u in src_uri if u.startswith("crate://")]
    expected = cargo_lock_crates()
    assert crates == ["crate://crates.io/%s/%s" % (c["name"], c["version"]) for c in expected]
    for c in expected:
        assert d.getVarFlag("SRC_URI", "%s-%s.sha256sum" % (c["name"], c["version"])) == c["checksum"]

    # Local sources are taken from the top of the source tree.
    local = [u.split(";")[0][len("file://"):] for u in src_uri if u.startswith("file://")]
    assert sorted(local) == ["Cargo.lock", "Cargo.toml", "LICENSE", "src"]
    for name in local:
        assert os.path.exists(os.path.join(REPO, name)), name
    # Everything `cargo build --bin ota-sign` reads must be fetched.
    needed = {"build.rs"} if os.path.exists(os.path.join(REPO, "build.rs")) else set()
    manifest = cargo_toml()
    build = manifest.get("package", {}).get("build")
    if isinstance(build, str):
        needed.add(build)
    for target in [manifest.get("lib", {})] + manifest.get("bin", []):
        if "path" in target:
            needed.add(target["path"])
    for path in needed:
        top = path.replace("\\", "/").split("/")[0]
        assert top in local, "%s is used by Cargo.toml but not in the recipe's SRC_URI" % path

    m = re.fullmatch(r"file://LICENSE;md5=([0-9a-f]{32})", d.getVar("LIC_FILES_CHKSUM"))
    with open(os.path.join(REPO, "LICENSE"), "rb") as f:
        assert m and m.group(1) == hashlib.md5(f.read()).hexdigest()
    assert d.getVar("LICENSE") == "MPL-2.0"


def test_recipe_skipped_with_old_rust(project):
    p = project(local_conf='RUSTVERSION = "1.75%"\n')
    for variant in ("", "native"):
        reason = p.parse(RECIPE, variant=variant).getVar("__SKIPPED")
        assert reason and "Rust >= 1.81" in reason and "OFFLINE_SIGNING_TOOL" in reason
        assert "meta-lts-mixins" in reason
    # meta-lts-mixins' scarthgap/rust branch ships Rust 1.81.
    for ok in ("1.81.0%", "1.94.1%"):
        assert not project(local_conf='RUSTVERSION = "%s"\n' % ok).parse(RECIPE).getVar("__SKIPPED")


def test_recipe_min_rust_matches_cargo_toml(project):
    with open(os.path.join(REPO, "Cargo.toml")) as f:
        m = re.search(r'^rust-version\s*=\s*"([^"]+)"', f.read(), re.M)
    d = project().parse(RECIPE)
    if m:
        assert d.getVar("OTA_SIGN_MIN_RUST_VERSION") == m.group(1)


# --- README ----------------------------------------------------------------------

def test_readme_documents_every_variable_and_contacts():
    with open(bbharness.README) as f:
        readme = f.read()
    with open(os.path.join(LAYER, "classes-recipe", "offline_signing.bbclass")) as f:
        variables = set(re.findall(r"^(OFFLINE_SIGNING_[A-Z_]+) \?\?=", f.read(), re.M))
    assert variables
    for var in sorted(variables):
        assert "| `%s` |" % var in readme, "%s is not in README's variable table" % var
    lower = readme.lower()
    assert "maintainer" in lower and "patch" in lower
    assert re.search(r"[\w.+-]+@[\w-]+\.[\w.-]+", readme)
    assert os.path.getsize(os.path.join(LAYER, "SECURITY.md")) > 0


# --- where the recipe's sources come from ------------------------------------------

def copied_layer(tmp_path):
    """meta-offline-signing vendored away from the ota-sign sources (a BSP monorepo, say)."""
    import shutil
    vendor = tmp_path / "vendor"
    shutil.copytree(LAYER, str(vendor / "meta-offline-signing"))
    return vendor, str(vendor / "meta-offline-signing" / "recipes-devtools" / "ota-sign" / os.path.basename(RECIPE))


def test_copied_layer_skips_the_recipe_with_reason_and_fix(project, tmp_path):
    vendor, recipe = copied_layer(tmp_path)
    p = project(repo=vendor)
    for variant in ("", "native"):
        d = p.parse(recipe, variant=variant)
        reason = d.getVar("__SKIPPED")
        assert reason and "source tree is not beside meta-offline-signing" in reason, reason
        for fix in ("OTA_SIGN_SRC_URI", "EXTERNALSRC", "OFFLINE_SIGNING_TOOL"):
            assert fix in reason
        assert not [u for u in d.getVar("SRC_URI").split() if u.startswith("file://")]


def test_copied_layer_class_works_with_a_host_tool(project, tmp_path, credentials, fake_tool):
    vendor, _ = copied_layer(tmp_path)
    p = project(repo=vendor, credentials=credentials, host_tool=fake_tool())
    d = p.parse("fake-image")
    assert "ota-sign-native" not in d.getVarFlag("do_offline_sign", "depends")
    run_task(d, "do_image_complete")
    run_task(d, "do_offline_sign")
    assert recorded_argv(d)[0] == "publish"


GIT_SRC = "git://github.com/example/ota-sign.git;protocol=https;branch=main;destsuffix=ota-sign"


@pytest.mark.parametrize("conf,fetched", [
    ('OTA_SIGN_SRC_URI = "%s"\nSRCREV = "%s"\n' % (GIT_SRC, "0" * 40), [GIT_SRC]),
    ('OTA_SIGN_SRC_URI = "https://example.com/ota-sign-0.1.0.tar.gz;subdir=ota-sign;striplevel=1"\n',
     ["https://example.com/ota-sign-0.1.0.tar.gz;subdir=ota-sign;striplevel=1"]),
    ('EXTERNALSRC = "%s"\n' % REPO, []),
])
def test_recipe_builds_from_git_tarball_or_externalsrc(project, tmp_path, conf, fetched):
    vendor, recipe = copied_layer(tmp_path)
    for repo, path in ((vendor, recipe), (REPO, RECIPE)):
        d = project(repo=repo, local_conf=conf).parse(path)
        assert not d.getVar("__SKIPPED")
        src_uri = d.getVar("SRC_URI").split()
        crates = [u for u in src_uri if u.startswith("crate://")]
        assert [u for u in src_uri if not u.startswith("crate://")] == fetched
        assert len(crates) == len(cargo_lock_crates())
        assert d.getVar("S").endswith("/ota-sign")


def test_recipe_builds_only_the_signer_without_default_features(project):
    d = project().parse(RECIPE)
    flags = d.getVar("CARGO_BUILD_FLAGS").split()
    assert "--no-default-features" in flags
    assert flags[flags.index("--bin") + 1] == "ota-sign" and flags.count("--bin") == 1
    # The ota-sign binary needs no feature, so --no-default-features still builds it.
    bins = {b["name"]: b for b in cargo_toml().get("bin", [])}
    if bins:
        assert not bins["ota-sign"].get("required-features")
