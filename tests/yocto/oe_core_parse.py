# SPDX-License-Identifier: MPL-2.0
"""Parses meta-offline-signing with a real OE-core and bitbake; prints facts as JSON.

Run by test_oe_core.py in a subprocess, because it imports the `bb` library of the
given bitbake checkout (scarthgap's bitbake 2.8), not the one of the test virtualenv:

    python3 oe_core_parse.py BITBAKE OE_CORE LAYER_PARENT BUILD_DIR [EXTRA_LAYER...]

BUILD_DIR gets a conf/ with bblayers.conf and local.conf (plus $OE_CORE_PARSE_LOCAL_CONF);
the image parsed is OE-core's core-image-minimal with offline_signing from IMAGE_CLASSES.
"""

import json
import os
import sys
import types


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def main():
    bitbake, oe_core, layer_parent, build = sys.argv[1:5]
    extra = sys.argv[5:]
    sys.path.insert(0, os.path.join(bitbake, "lib"))
    import bb.cache
    import bb.cookerdata
    import bb.data
    import bb.parse
    import bb.utils

    layers = [os.path.join(oe_core, "meta")] + extra + [os.path.join(layer_parent, "meta-offline-signing")]
    write(os.path.join(build, "conf", "bblayers.conf"),
          'BBPATH = "${TOPDIR}"\nBBFILES ?= ""\nBBLAYERS = "%s"\n' % " ".join(layers))
    creds = os.path.join(build, "offline-credentials.zip")
    write(os.path.join(build, "conf", "local.conf"),
          'MACHINE = "qemux86-64"\nIMAGE_CLASSES += "offline_signing"\n'
          'OFFLINE_SIGNING_CREDENTIALS = "%s"\n'
          # Parsing only: no host tools are run.
          'HOSTTOOLS:forcevariable = ""\nHOSTTOOLS_NONFATAL:forcevariable = ""\n' % creds
          + os.environ.get("OE_CORE_PARSE_LOCAL_CONF", ""))
    os.environ["BBPATH"] = build
    import logging
    messages = []
    handler = logging.Handler()
    handler.emit = lambda record: messages.append(record.getMessage())
    logging.getLogger("BitBake").addHandler(handler)
    cfg = types.SimpleNamespace(prefile=[], postfile=[], tracking=False, skip_fragments=True,
                                env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")})
    os.chdir(build)
    builder = bb.cookerdata.CookerDataBuilder(cfg)
    builder.parseBaseConfiguration()
    data = builder.data
    bb.parse.init_parser(data)
    bb.parse.siggen = bb.siggen.init(data)

    def parse(fn):
        return bb.parse.handle(fn, bb.data.createCopy(data))

    facts = {"RUSTVERSION": data.getVar("RUSTVERSION"), "LAYERSERIES_CORENAMES": data.getVar("LAYERSERIES_CORENAMES")}
    recipe = os.path.join(layer_parent, "meta-offline-signing", "recipes-devtools", "ota-sign", "ota-sign_0.1.0.bb")
    for variant, d in parse(recipe).items():
        skipped = d.getVar("__SKIPPED")
        cache_error = None
        if not skipped:
            # What bitbake's cache records per recipe, [file-checksums] included: where a
            # missing local source (SRC_URI file://) breaks parsing for every build.
            try:
                bb.cache.CoreRecipeInfo(recipe, d)
            except Exception as e:  # noqa: BLE001 - reported to the test
                cache_error = "%s: %s %s" % (type(e).__name__, e, " ".join(messages))
        facts["recipe:" + (variant or "target")] = {
            "skipped": skipped,
            "cache_error": cache_error,
            "cargo_build_flags": d.getVar("CARGO_BUILD_FLAGS"),
            "tasks": sorted(d.getVar("__BBTASKS", False) or []),
        }
    image = os.path.join(oe_core, "meta", "recipes-core", "images", "core-image-minimal.bb")
    d = parse(image)[""]
    facts["image"] = {
        "tasks": sorted(d.getVar("__BBTASKS", False) or []),
        "offline_sign_depends": (d.getVarFlag("do_offline_sign", "depends") or "").split(),
        "offline_sign_deps": sorted(d.getVarFlag("do_offline_sign", "deps", False) or []),
        "build_deps": sorted(d.getVarFlag("do_build", "deps", False) or []),
    }
    print(json.dumps(facts))


if __name__ == "__main__":
    main()
