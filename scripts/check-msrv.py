#!/usr/bin/env python3
"""Fails when a crate the `ota-sign` signer compiles needs a newer Rust than the package's
`rust-version` (or edition 2024, which needs Rust 1.85).

No older toolchain can be installed here, so this reads what Cargo.lock resolves instead:
`cargo tree` lists what the signer build compiles (normal and build dependencies, host
platform, `--no-default-features` as the Yocto recipe builds it) and `cargo metadata` gives
each crate's declared `rust-version` and edition. dev-dependencies are not part of it.

Usage: scripts/check-msrv.py [--manifest-path Cargo.toml] [--features F]
"""
import argparse
import json
import subprocess
import sys

EDITION_MIN_RUST = {"2015": (1, 0), "2018": (1, 31), "2021": (1, 56), "2024": (1, 85)}


def version_tuple(text):
    """'1.81' / '1.81.0' -> (1, 81); None when absent."""
    if not text:
        return None
    parts = text.split(".")
    return (int(parts[0]), int(parts[1]) if len(parts) > 1 else 0)


def cargo(args, manifest):
    cmd = ["cargo", *args, "--locked", "--manifest-path", manifest]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return out.stdout


def compiled_crates(manifest, features):
    """(name, version) of every crate the signer build compiles."""
    args = ["tree", "-e", "normal,build", "--no-default-features", "--prefix", "none",
            "-f", "{p}"]
    if features:
        args += ["--features", features]
    crates = set()
    for line in cargo(args, manifest).splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[1].startswith("v"):
            crates.add((fields[0], fields[1][1:]))
    return crates


def problems(packages, crates, root_name):
    """Human-readable violations: crates needing more than the root's rust-version."""
    by_key = {(p["name"], p["version"]): p for p in packages}
    root = next(p for p in packages if p["name"] == root_name and p["source"] is None)
    limit = version_tuple(root.get("rust_version"))
    if limit is None:
        return [f"{root_name} declares no rust-version"], None
    found = []
    for key in sorted(crates):
        pkg = by_key.get(key)
        if pkg is None:
            found.append(f"{key[0]} {key[1]}: not in cargo metadata")
            continue
        needs = [version_tuple(pkg.get("rust_version")) or (1, 0),
                 EDITION_MIN_RUST.get(pkg["edition"], (9999, 0))]
        need = max(needs)
        if need > limit:
            why = f"rust-version {pkg.get('rust_version')}" if needs[0] >= needs[1] \
                else f"edition {pkg['edition']}"
            found.append(f"{key[0]} {key[1]}: {why} > {root['rust_version']}")
    return found, root["rust_version"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--manifest-path", default="Cargo.toml")
    ap.add_argument("--features", default="")
    ap.add_argument("--package", default="ota-sign")
    a = ap.parse_args()
    meta = json.loads(cargo(["metadata", "--format-version", "1"], a.manifest_path))
    crates = compiled_crates(a.manifest_path, a.features)
    found, limit = problems(meta["packages"], crates, a.package)
    if found:
        print(f"crates the signer compiles that Rust {limit} cannot build:", file=sys.stderr)
        for f in found:
            print(f"  {f}", file=sys.stderr)
        print("pick older versions (CARGO_RESOLVER_INCOMPATIBLE_RUST_VERSIONS=fallback "
              "cargo update -p <crate>) or gate the crate behind a feature", file=sys.stderr)
        return 1
    print(f"msrv: {len(crates)} crates of the signer build support Rust {limit}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
