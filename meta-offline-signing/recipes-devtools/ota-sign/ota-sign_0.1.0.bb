# nooelint: oelint.var.mandatoryvar.HOMEPAGE,oelint.var.suggestedvar.BUGTRACKER - ota-sign has no public home page or bug tracker yet
SUMMARY = "Offline signing of Uptane/TUF targets metadata for OTA Connect"
DESCRIPTION = "ota-sign is a garage-sign compatible command line tool that signs \
               targets.json with an offline Targets key read from offline-credentials.zip \
               and pushes it to an ota-tuf repository server. offline_signing.bbclass uses \
               the native build to register images as update targets."
SECTION = "devel"
LICENSE = "MPL-2.0"
LIC_FILES_CHKSUM = "file://LICENSE;md5=815ca599c9df247a0c7f619bab123dad"
CVE_PRODUCT = "ota-sign"

inherit cargo cargo-update-recipe-crates

# The crates.io dependencies, generated from Cargo.lock by
# scripts/gen-crates-inc.py (same layout as `bitbake -c update_crates`).
require ota-sign-crates.inc

# This recipe lives in the ota-sign source tree (meta-offline-signing/ is a
# top-level directory of it) and builds that tree: the crate's own files are
# taken from three directories up.
# nooelint: oelint.vars.fileextrapaths,oelint.vars.outofcontext - the recipe builds the source tree that ships the layer
FILESEXTRAPATHS:prepend := "${THISDIR}/../../..:"
SRC_URI += "file://Cargo.toml;subdir=ota-sign \
            file://Cargo.lock;subdir=ota-sign \
            file://LICENSE;subdir=ota-sign \
            file://src;subdir=ota-sign \
            "
# UNPACKDIR exists from styhead on; scarthgap unpacks into WORKDIR.
S = "${@d.getVar('UNPACKDIR') or d.getVar('WORKDIR')}/ota-sign"

# Only the signing tool is needed; ota-reposerver is a test server.
CARGO_BUILD_FLAGS:append = " --bin ota-sign"

# Cargo.toml's rust-version.  Older toolchains (plain scarthgap ships Rust 1.75)
# cannot build the crate: the recipe is skipped with this explanation.  The fix
# is a newer Rust (scarthgap: meta-lts-mixins, branch scarthgap/rust, Rust 1.81),
# or OFFLINE_SIGNING_TOOL pointing the class at an ota-sign built on the host.
OTA_SIGN_MIN_RUST_VERSION = "1.81"

# nooelint: oelint.task.noanonpython - a parse-time skip is the only way to explain an unusable toolchain before the build starts
python __anonymous() {
    rustver = (d.getVar('RUSTVERSION') or '').rstrip('%')
    minver = d.getVar('OTA_SIGN_MIN_RUST_VERSION')
    if rustver and bb.utils.vercmp_string_op(rustver, minver, '<'):
        raise bb.parse.SkipRecipe("ota-sign needs Rust >= %s but RUSTVERSION is %s; on scarthgap add "
                                  "meta-lts-mixins (branch scarthgap/rust) for Rust 1.81, or set "
                                  "OFFLINE_SIGNING_TOOL to an ota-sign installed on the build host" % (minver, rustver))
}

BBCLASSEXTEND = "native"
