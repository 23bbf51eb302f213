# SPDX-License-Identifier: MPL-2.0
"""A minimal standalone bitbake project, parsed in-process with the `bb`
library of the PyPI bitbake-setup wheel.

The project has a stand-in for OE-core ("fake-core": collection `core`, a
minimal bitbake.conf, base/image classes and empty cargo/native classes) and
the real meta-offline-signing layer.  bblayers.conf and local.conf are built
from the snippets in meta-offline-signing/README.md, so the README's
instructions are the ones exercised.

There is no runqueue: tests read task flags and dependencies from the parsed
datastore and run task functions with bb.build.exec_func().
"""

import os
import re
import sys
import textwrap
import types

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
LAYER = os.path.join(REPO, "meta-offline-signing")
README = os.path.join(LAYER, "README.md")

# bitbake-setup lacks hashserv, which bb.siggen imports; use empty stubs.
_STUBS = os.path.join(HERE, "stubs")
if _STUBS not in sys.path:
    sys.path.insert(0, _STUBS)

import bb  # noqa: E402
import bb.build  # noqa: E402
import bb.cookerdata  # noqa: E402
import bb.data  # noqa: E402
import bb.parse  # noqa: E402
import bb.siggen  # noqa: E402
import bb.utils  # noqa: E402

README_CREDENTIALS = "/path/to/offline-credentials.zip"
README_REPO = "/path/to/ota-sign"
README_TOOL = "/usr/local/bin/ota-sign"


def readme_snippet(name):
    """The fenced block that follows `<!-- test:NAME -->` in the README."""
    with open(README, encoding="utf-8") as f:
        text = f.read()
    m = re.search(r"<!-- test:%s -->\s*\n```[^\n]*\n(.*?)\n```" % re.escape(name), text, re.S)
    if not m:
        raise AssertionError("README.md has no snippet marked <!-- test:%s -->" % name)
    return m.group(1) + "\n"


FAKE_CORE_LAYER_CONF = """\
BBPATH .= ":${LAYERDIR}"
BBFILES += "${LAYERDIR}/recipes-*/*/*.bb"
BBFILE_COLLECTIONS += "core"
BBFILE_PATTERN_core = "^${LAYERDIR}/"
BBFILE_PRIORITY_core = "5"
LAYERSERIES_CORENAMES = "@SERIES@"
LAYERSERIES_COMPAT_core = "@SERIES@"
"""

# A small subset of OE-core's bitbake.conf.
FAKE_BITBAKE_CONF = """\
PN = "${@bb.parse.vars_from_file(d.getVar('FILE', False), d)[0] or 'defaultpkgname'}"
PV = "${@bb.parse.vars_from_file(d.getVar('FILE', False), d)[1] or '1.0'}"
PR = "r0"
PF = "${PN}-${PV}-${PR}"
P = "${PN}-${PV}"
BPN = "${PN}"
BP = "${BPN}-${PV}"
THISDIR = "${@os.path.dirname(d.getVar('FILE'))}"
FILE_DIRNAME = "${@os.path.dirname(d.getVar('FILE', False))}"
TMPDIR = "${TOPDIR}/tmp"
PERSISTENT_DIR = "${TOPDIR}/cache"
STAMP = "${TMPDIR}/stamps/${MACHINE}/${PN}/${PV}"
WORKDIR = "${TMPDIR}/work/${MACHINE}/${PN}/${PV}"
T = "${WORKDIR}/temp"
S = "${WORKDIR}/${BP}"
B = "${S}"
DEPLOY_DIR = "${TMPDIR}/deploy"
DEPLOY_DIR_IMAGE = "${DEPLOY_DIR}/images/${MACHINE}"
STAGING_DIR = "${TMPDIR}/sysroots"
STAGING_DIR_NATIVE = "${STAGING_DIR}/${MACHINE}-native"
STAGING_BINDIR_NATIVE = "${STAGING_DIR_NATIVE}/usr/bin"
STAGING_ETCDIR_NATIVE = "${STAGING_DIR_NATIVE}/etc"
PATH:prepend = "${STAGING_BINDIR_NATIVE}:"
PATH[export] = "1"
DATETIME = "20260101000000"
BB_SIGNATURE_HANDLER = "basichash"
BB_BASEHASH_IGNORE_VARS = "TMPDIR FILE PATH PWD BB_TASKHASH BBPATH BBFILES BBLAYERS DATE TIME DATETIME \\
    TOPDIR THISDIR FILE_DIRNAME PERSISTENT_DIR BB_CACHEDIR __inherit_cache BBINCLUDED"

include conf/local.conf
"""

FAKE_BASE_BBCLASS = """\
addtask build
do_build[noexec] = "1"
do_build[doc] = "Default task"
"""

# Stands in for OE-core's image.bbclass: IMAGE_CLASSES are inherited the same
# way (inherit_defer), and do_image_complete deploys FAKE_IMAGE_CONTENT.
FAKE_IMAGE_BBCLASS = """\
IMAGE_CLASSES ??= ""
inherit_defer ${IMAGE_CLASSES}

IMAGE_FSTYPES ??= "tar.bz2 wic"
IMAGE_BASENAME ?= "${PN}"
IMAGE_LINK_NAME ?= "${IMAGE_BASENAME}-${MACHINE}.rootfs"
IMAGE_NAME ?= "${IMAGE_LINK_NAME}-${DATETIME}"
FAKE_IMAGE_CONTENT ??= "fake image payload"

python do_image_complete() {
    deploy = d.getVar('DEPLOY_DIR_IMAGE')
    bb.utils.mkdirhier(deploy)
    for fstype in d.getVar('IMAGE_FSTYPES').split():
        name = '%s.%s' % (d.getVar('IMAGE_NAME'), fstype)
        with open(os.path.join(deploy, name), 'w') as f:
            f.write('%s (%s)\\n' % (d.getVar('FAKE_IMAGE_CONTENT'), fstype))
        link = os.path.join(deploy, '%s.%s' % (d.getVar('IMAGE_LINK_NAME'), fstype))
        if os.path.lexists(link):
            os.unlink(link)
        os.symlink(name, link)
}
addtask image_complete before do_build
"""

FAKE_IMAGE_RECIPE = """\
SUMMARY = "Fake image for the meta-offline-signing tests"
LICENSE = "MIT"
inherit image
"""

FAKE_IMAGE_INHERIT_RECIPE = """\
SUMMARY = "Fake image that inherits offline_signing itself"
LICENSE = "MIT"
inherit image offline_signing
"""


def _write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


class Project:
    """A standalone project under `root`; `build` is TOPDIR."""

    def __init__(self, root, with_layer=True, series="wrynose", local_conf="", credentials=None,
                 host_tool=None, repo=REPO):
        self.root = str(root)
        self.core = os.path.join(self.root, "fake-core")
        self.build = os.path.join(self.root, "build")
        core = self.core
        _write(os.path.join(core, "conf", "layer.conf"), FAKE_CORE_LAYER_CONF.replace("@SERIES@", series))
        _write(os.path.join(core, "conf", "bitbake.conf"), FAKE_BITBAKE_CONF)
        _write(os.path.join(core, "classes-global", "base.bbclass"), FAKE_BASE_BBCLASS)
        _write(os.path.join(core, "classes-recipe", "image.bbclass"), FAKE_IMAGE_BBCLASS)
        for cls in ("cargo", "cargo-update-recipe-crates", "native"):
            _write(os.path.join(core, "classes-recipe", cls + ".bbclass"), "# empty stand-in\n")
        _write(os.path.join(core, "recipes-core", "images", "fake-image.bb"), FAKE_IMAGE_RECIPE)
        _write(os.path.join(core, "recipes-core", "images", "fake-image-inherit.bb"), FAKE_IMAGE_INHERIT_RECIPE)

        bblayers = 'BBPATH = "${TOPDIR}"\nBBFILES ?= ""\nBBLAYERS = "%s"\n' % core
        if with_layer:
            # `repo`: where meta-offline-signing is (a copy away from the sources, say).
            bblayers += readme_snippet("bblayers.conf").replace(README_REPO, str(repo))
        _write(os.path.join(self.build, "conf", "bblayers.conf"), bblayers)

        local = 'MACHINE = "qemux86-64"\n'
        if credentials is not None:
            local += readme_snippet("local.conf").replace(README_CREDENTIALS, str(credentials))
        if host_tool is not None:
            local += readme_snippet("local.conf-host-tool").replace(README_TOOL, str(host_tool))
        local += textwrap.dedent(local_conf)
        _write(os.path.join(self.build, "conf", "local.conf"), local)

        self.data = None

    def recipe(self, name):
        for dirpath, _, files in os.walk(self.core):
            if name + ".bb" in files:
                return os.path.join(dirpath, name + ".bb")
        return os.path.join(LAYER, name)

    def parse_config(self):
        """Parse bblayers.conf, every layer.conf and bitbake.conf like bitbake's cooker."""
        cfg = types.SimpleNamespace(prefile=[], postfile=[], tracking=False, skip_fragments=True,
                                    env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")})
        oldcwd = os.getcwd()
        os.chdir(self.build)
        try:
            builder = bb.cookerdata.CookerDataBuilder(cfg)
            builder.parseBaseConfiguration()
        finally:
            os.chdir(oldcwd)
        self.data = builder.data
        return self.data

    def parse(self, recipe, variant=""):
        """Parse a recipe (name from fake-core or a path); returns its datastore."""
        if self.data is None:
            self.parse_config()
        bb.parse.init_parser(self.data)
        fn = self.recipe(recipe) if not os.path.isabs(recipe) else recipe
        oldcwd = os.getcwd()
        os.chdir(self.build)
        try:
            variants = bb.parse.handle(fn, bb.data.createCopy(self.data))
        finally:
            os.chdir(oldcwd)
        d = variants[variant]
        d.setVar("__harness_fn", fn)
        return d

    def basehashes(self, d):
        """Basehash of every task of a recipe just parsed with parse()."""
        fn = d.getVar("__harness_fn")
        siggen = bb.parse.siggen
        return {task: siggen.basehash[fn + ":" + task] for task in d.getVar("__BBTASKS", False)}


def task_deps(d, task):
    return sorted(d.getVarFlag(task, "deps", False) or [])


def tasks(d):
    return list(d.getVar("__BBTASKS", False) or [])


def run_task(d, task):
    """Runs a task function (no runqueue, no stamps), like bitbake-worker would."""
    d.setVar("BB_RUNTASK", task)
    bb.build.exec_func(task, d)
