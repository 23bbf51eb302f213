# SPDX-License-Identifier: MPL-2.0
"""oelint-adv is clean for every supported release (scripts/lint-layer.sh)."""

import os
import shutil
import subprocess
import sys

import pytest

from bbharness import REPO


def oelint_adv():
    found = shutil.which("oelint-adv")
    if not found:
        candidate = os.path.join(os.path.dirname(sys.executable), "oelint-adv")
        found = candidate if os.access(candidate, os.X_OK) else None
    if not found:
        pytest.fail("oelint-adv is not installed: pip install -r tests/yocto/requirements.txt", pytrace=False)
    return found


def test_oelint_adv_clean_for_scarthgap_and_wrynose():
    env = dict(os.environ, OELINT_ADV=oelint_adv())
    proc = subprocess.run(["sh", os.path.join(REPO, "scripts", "lint-layer.sh")], env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "clean for scarthgap wrynose" in proc.stdout
