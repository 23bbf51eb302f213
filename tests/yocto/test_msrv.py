# SPDX-License-Identifier: MPL-2.0
"""scripts/check-msrv.py: every crate the signer compiles builds with the package's
rust-version (what the Yocto recipe's toolchain must provide)."""

import importlib.util
import os
import subprocess
import sys

from bbharness import REPO

SCRIPT = os.path.join(REPO, "scripts", "check-msrv.py")


def load_checker():
    spec = importlib.util.spec_from_file_location("check_msrv", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def pkg(name, version, rust_version=None, edition="2021", source="registry"):
    return {"name": name, "version": version, "rust_version": rust_version,
            "edition": edition, "source": source}


def test_checker_flags_newer_rust_and_edition_2024():
    m = load_checker()
    packages = [pkg("ota-sign", "0.1.0", "1.81", source=None),
                pkg("old", "1.0.0", "1.70"), pkg("plain", "2.0.0"),
                pkg("new", "3.0.0", "1.85"), pkg("ed2024", "0.2.0", None, "2024"),
                pkg("dev-only", "9.0.0", "1.90")]
    compiled = {("old", "1.0.0"), ("plain", "2.0.0"), ("new", "3.0.0"), ("ed2024", "0.2.0")}
    found, limit = m.problems(packages, compiled, "ota-sign")
    assert limit == "1.81"
    assert found == ["ed2024 0.2.0: edition 2024 > 1.81", "new 3.0.0: rust-version 1.85 > 1.81"]
    ok, _ = m.problems(packages, {("old", "1.0.0")}, "ota-sign")
    assert ok == []


def test_signer_build_fits_the_package_rust_version():
    r = subprocess.run([sys.executable, SCRIPT, "--manifest-path", os.path.join(REPO, "Cargo.toml")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "support Rust 1.81" in r.stdout
