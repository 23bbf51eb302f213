# SPDX-License-Identifier: MPL-2.0
"""meta-offline-signing with the real OE-core scarthgap, its bitbake (2.8) and
meta-lts-mixins (branch scarthgap/rust, Rust 1.81).

They are not on a package registry, so these tests run when checkouts are named by
BITBAKE_SCARTHGAP, OE_CORE_SCARTHGAP and META_LTS_MIXINS_SCARTHGAP, and are skipped
otherwise (CI has no copy).  oe_core_parse.py does the parsing with that bitbake.
"""

import json
import os
import shutil
import subprocess
import sys

import pytest

from bbharness import LAYER, REPO

HERE = os.path.dirname(os.path.abspath(__file__))
CHECKOUTS = {name: os.environ.get(name) for name in ("BITBAKE_SCARTHGAP", "OE_CORE_SCARTHGAP",
                                                     "META_LTS_MIXINS_SCARTHGAP")}
pytestmark = pytest.mark.skipif(not all(CHECKOUTS.values()),
                                reason="set %s to checkouts to test with the real scarthgap" % ", ".join(CHECKOUTS))


def parse(tmp_path, layer_parent=REPO, mixins=True, local_conf=""):
    layers = [CHECKOUTS["META_LTS_MIXINS_SCARTHGAP"]] if mixins else []
    env = dict(os.environ, OE_CORE_PARSE_LOCAL_CONF=local_conf)
    r = subprocess.run([sys.executable, os.path.join(HERE, "oe_core_parse.py"), CHECKOUTS["BITBAKE_SCARTHGAP"],
                        CHECKOUTS["OE_CORE_SCARTHGAP"], str(layer_parent), str(tmp_path / "build")] + layers,
                       capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-4000:]
    return json.loads(r.stdout.splitlines()[-1])


def copied_layer(tmp_path):
    vendor = tmp_path / "vendor"
    shutil.copytree(LAYER, str(vendor / "meta-offline-signing"))
    return vendor


def test_scarthgap_with_rust_mixin_builds_ota_sign_native(tmp_path):
    facts = parse(tmp_path)
    assert facts["LAYERSERIES_CORENAMES"] == "scarthgap" and facts["RUSTVERSION"] == "1.81%"
    for variant in ("target", "native"):
        recipe = facts["recipe:" + variant]
        assert recipe["skipped"] is None and recipe["cache_error"] is None, recipe
        flags = recipe["cargo_build_flags"].split()
        assert "--no-default-features" in flags and flags[flags.index("--bin") + 1] == "ota-sign"
        assert "do_compile" in recipe["tasks"]
    image = facts["image"]
    assert "ota-sign-native:do_populate_sysroot" in image["offline_sign_depends"]
    assert image["offline_sign_deps"] == ["do_image_complete"] and "do_offline_sign" in image["build_deps"]


def test_plain_scarthgap_skips_with_the_fix(tmp_path):
    facts = parse(tmp_path, mixins=False)
    assert facts["RUSTVERSION"].startswith("1.75")
    for variant in ("target", "native"):
        reason = facts["recipe:" + variant]["skipped"]
        assert reason and "Rust >= 1.81" in reason and "meta-lts-mixins" in reason


def test_copied_layer_parses_and_skips_the_recipe(tmp_path):
    facts = parse(tmp_path, layer_parent=copied_layer(tmp_path),
                  local_conf='OFFLINE_SIGNING_TOOL = "/usr/local/bin/ota-sign"\n')
    for variant in ("target", "native"):
        recipe = facts["recipe:" + variant]
        assert recipe["skipped"] and "not beside meta-offline-signing" in recipe["skipped"]
    image = facts["image"]
    assert "do_offline_sign" in image["build_deps"]
    assert "ota-sign-native:do_populate_sysroot" not in image["offline_sign_depends"]


def test_copied_layer_builds_from_git(tmp_path):
    conf = ('OTA_SIGN_SRC_URI = "git://github.com/example/ota-sign.git;protocol=https;branch=main;destsuffix=ota-sign"\n'
            'SRCREV = "%s"\n' % ("1" * 40))
    facts = parse(tmp_path, layer_parent=copied_layer(tmp_path), local_conf=conf)
    for variant in ("target", "native"):
        recipe = facts["recipe:" + variant]
        assert recipe["skipped"] is None and recipe["cache_error"] is None, recipe
