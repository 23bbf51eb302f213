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

# Where the sources come from (README.md, "Building ota-sign-native"):
# - by default, the ota-sign source tree this layer is part of (three directories up);
# - OTA_SIGN_SRC_URI: a git repository (with SRCREV and destsuffix=ota-sign) or a release
#   tarball (with subdir=ota-sign;striplevel=1 and its sha256sum) of the same version;
# - externalsrc: EXTERNALSRC:pn-ota-sign-native pointing at a checkout.
# The crates always come from ota-sign-crates.inc.  When none of these is available the
# recipe skips itself at parse time (below), so builds that do not sign never notice.
OTA_SIGN_SRC_URI ??= ""
OTA_SIGN_TREE := "${@os.path.normpath(os.path.join(d.getVar('THISDIR'), '..', '..', '..'))}"
# nooelint: oelint.vars.fileextrapaths,oelint.vars.outofcontext - the recipe builds the source tree that ships the layer
FILESEXTRAPATHS:prepend := "${OTA_SIGN_TREE}:"
OTA_SIGN_HAS_TREE = "${@'1' if os.path.isfile(os.path.join(d.getVar('OTA_SIGN_TREE'), 'Cargo.toml')) else ''}"
SRC_URI += "${@d.getVar('OTA_SIGN_SRC_URI') or ('' if d.getVar('EXTERNALSRC') or not d.getVar('OTA_SIGN_HAS_TREE') else ' '.join('file://%s;subdir=ota-sign' % f for f in ('Cargo.toml', 'Cargo.lock', 'LICENSE', 'src')))}"
# UNPACKDIR exists from styhead on; scarthgap unpacks into WORKDIR.
S = "${@d.getVar('UNPACKDIR') or d.getVar('WORKDIR')}/ota-sign"

# Only the signing tool, without the `server` feature (ota-reposerver and its
# tokio/hyper stack are test tooling).
CARGO_BUILD_FLAGS:append = " --no-default-features --bin ota-sign"

# Cargo.toml's rust-version.  Older toolchains (plain scarthgap ships Rust 1.75)
# cannot build the crate: the recipe is skipped with this explanation.  The fix
# is a newer Rust (scarthgap: meta-lts-mixins, branch scarthgap/rust, Rust 1.81),
# or OFFLINE_SIGNING_TOOL pointing the class at an ota-sign built on the host.
OTA_SIGN_MIN_RUST_VERSION = "1.81"

# nooelint: oelint.task.noanonpython - a parse-time skip is the only way to explain missing sources or an unusable toolchain before the build starts
python __anonymous() {
    if not (d.getVar('OTA_SIGN_SRC_URI') or d.getVar('EXTERNALSRC') or d.getVar('OTA_SIGN_HAS_TREE')):
        raise bb.parse.SkipRecipe("the ota-sign source tree is not beside meta-offline-signing (no %s/Cargo.toml); "
                                  "set OTA_SIGN_SRC_URI (git + SRCREV, or a release tarball) or "
                                  "EXTERNALSRC:pn-ota-sign-native to a checkout, or OFFLINE_SIGNING_TOOL to an "
                                  "ota-sign on the build host (meta-offline-signing/README.md, 'Building ota-sign-native')"
                                  % d.getVar('OTA_SIGN_TREE'))
    rustver = (d.getVar('RUSTVERSION') or '').rstrip('%')
    minver = d.getVar('OTA_SIGN_MIN_RUST_VERSION')
    if rustver and bb.utils.vercmp_string_op(rustver, minver, '<'):
        raise bb.parse.SkipRecipe("ota-sign needs Rust >= %s but RUSTVERSION is %s; on scarthgap add "
                                  "meta-lts-mixins (branch scarthgap/rust) for Rust 1.81, or set "
                                  "OFFLINE_SIGNING_TOOL to an ota-sign installed on the build host" % (minver, rustver))
}

BBCLASSEXTEND = "native"
