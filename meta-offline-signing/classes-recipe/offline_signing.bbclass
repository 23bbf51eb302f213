#
# SPDX-License-Identifier: MPL-2.0
#
# offline_signing.bbclass - register an image as an Uptane/TUF target signed
# with the offline Targets key of an offline-credentials.zip.
#
# Opt in with one of
#     IMAGE_CLASSES += "offline_signing"    (local.conf / distro: every image)
#     inherit offline_signing               (one image recipe)
# and point OFFLINE_SIGNING_CREDENTIALS (or meta-updater's
# SOTA_PACKED_CREDENTIALS) at the zip.  Every variable is described in the
# layer's README.md.
#
# The task do_offline_sign runs after do_image_complete and calls
# `ota-sign publish` once: the tool reads the key from the zip into memory,
# pulls targets.json, adds or replaces <name>-<version>, signs and pushes, and
# retries by itself when another builder pushed in between.  Nothing here
# extracts the zip, so the private key is never written to WORKDIR,
# DEPLOY_DIR or sstate.

# Path of offline-credentials.zip.  Empty: signing is not scheduled.
OFFLINE_SIGNING_CREDENTIALS ??= "${@d.getVar('SOTA_PACKED_CREDENTIALS') or ''}"
# "1": fail the build instead of skipping when signing cannot happen.
OFFLINE_SIGNING_REQUIRED ??= "0"
# The target is registered in targets.json as <name>-<version>.
OFFLINE_SIGNING_TARGET_NAME ??= "${@d.getVar('GARAGE_TARGET_NAME') or d.getVar('PN')}"
# Empty: the artifact's sha256 (BINARY) or the OSTree commit hash (OSTREE).
OFFLINE_SIGNING_TARGET_VERSION ??= "${@d.getVar('GARAGE_TARGET_VERSION') or ''}"
# Space- or comma-separated hardware ids.
OFFLINE_SIGNING_HARDWARE_IDS ??= "${@d.getVar('SOTA_HARDWARE_ID') or d.getVar('MACHINE')}"
OFFLINE_SIGNING_URL ??= "${@d.getVar('GARAGE_TARGET_URL') or ''}"
OFFLINE_SIGNING_EXPIRES ??= "${@d.getVar('GARAGE_TARGET_EXPIRES') or ''}"
OFFLINE_SIGNING_EXPIRE_AFTER ??= "${@d.getVar('GARAGE_TARGET_EXPIRE_AFTER') or ('' if d.getVar('OFFLINE_SIGNING_EXPIRES') else '1M')}"
OFFLINE_SIGNING_RETRIES ??= "${@d.getVar('GARAGE_PUSH_RETRIES') or '5'}"
# JSON object merged into the target's "custom" field.
OFFLINE_SIGNING_CUSTOM ??= ""
# BINARY (a deployed image file) or OSTREE (an OSTree commit).
OFFLINE_SIGNING_FORMAT ??= "BINARY"
OFFLINE_SIGNING_IMAGE_TYPE ??= "${@offline_signing_default_image_type(d)}"
OFFLINE_SIGNING_ARTIFACT ??= "${DEPLOY_DIR_IMAGE}/${IMAGE_LINK_NAME}.${OFFLINE_SIGNING_IMAGE_TYPE}"
OFFLINE_SIGNING_OSTREE_COMMIT ??= ""
OFFLINE_SIGNING_OSTREE_MANIFEST ??= "${WORKDIR}/ostree_manifest"
# "1": upload the artifact to the repository server (BINARY only).
OFFLINE_SIGNING_UPLOAD ??= "0"
# Number of versions of this target name to keep in targets.json; empty keeps all.
OFFLINE_SIGNING_KEEP_VERSIONS ??= ""
# "1": sign but do not push; the signed targets.json stays in OFFLINE_SIGNING_WORKDIR.
OFFLINE_SIGNING_DRY_RUN ??= "0"
# Empty: use ota-sign from ota-sign-native.  Otherwise the ota-sign to run,
# normally an absolute path on the build host.
OFFLINE_SIGNING_TOOL ??= ""
OFFLINE_SIGNING_CACERT ??= "${STAGING_ETCDIR_NATIVE}/ssl/certs/ca-certificates.crt"
# Serializes pushes from one build directory (all machines, all images).
OFFLINE_SIGNING_LOCKFILE ??= "${TMPDIR}/offline-signing.lock"
OFFLINE_SIGNING_WORKDIR = "${WORKDIR}/offline-signing"

# The entries ota-sign needs to sign offline (the same four meta-updater and
# aktualizr's CanSignOffline() test for).
OFFLINE_SIGNING_ZIP_ENTRIES = "root.json targets.pub targets.sec tufrepo.url"

def offline_signing_default_image_type(d):
    fstypes = (d.getVar('IMAGE_FSTYPES') or '').split()
    for fstype in fstypes:
        if fstype.startswith('wic'):
            return fstype
    return fstypes[0] if fstypes else 'wic'

def offline_signing_file_checksums(d):
    # Re-run the task when the content of the credentials changes.
    creds = d.getVar('OFFLINE_SIGNING_CREDENTIALS')
    if not creds:
        return ''
    return '%s:%s' % (creds, os.path.exists(creds))

def offline_signing_missing_entries(d, path):
    # Lists the zip's names only; nothing is extracted.
    import zipfile
    with zipfile.ZipFile(path) as zf:
        names = set(zf.namelist())
    # A token-backed zip (ota-sign export-credentials with a PKCS#11 key) names the
    # targets key in targets.pkcs11 instead of holding targets.sec.
    if 'targets.pkcs11' in names:
        names.add('targets.sec')
    return [e for e in d.getVar('OFFLINE_SIGNING_ZIP_ENTRIES').split() if e not in names]

def offline_signing_sha256(path):
    import hashlib
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1024 * 1024), b''):
            h.update(block)
    return h.hexdigest()

def offline_signing_tool(d):
    import shutil
    tool = d.getVar('OFFLINE_SIGNING_TOOL') or 'ota-sign'
    if os.sep in tool:
        found = tool if os.access(tool, os.X_OK) else None
    else:
        found = shutil.which(tool, path=d.getVar('PATH'))
    if not found:
        if d.getVar('OFFLINE_SIGNING_TOOL'):
            bb.fatal("OFFLINE_SIGNING_TOOL = '%s' is not an executable file" % tool)
        bb.fatal("ota-sign not found in the native sysroot (ota-sign-native); "
                 "set OFFLINE_SIGNING_TOOL to an ota-sign installed on the build host")
    return found

def offline_signing_target(d):
    """Returns the target description (a dict) or calls bb.fatal."""
    import json
    import re

    fmt = (d.getVar('OFFLINE_SIGNING_FORMAT') or '').upper()
    if fmt not in ('BINARY', 'OSTREE'):
        bb.fatal("OFFLINE_SIGNING_FORMAT must be BINARY or OSTREE, not '%s'" % fmt)
    target = {'format': fmt, 'upload': bb.utils.to_boolean(d.getVar('OFFLINE_SIGNING_UPLOAD'), False)}

    if fmt == 'BINARY':
        artifact = d.getVar('OFFLINE_SIGNING_ARTIFACT')
        if not artifact or not os.path.isfile(artifact):
            bb.fatal("Image artifact '%s' does not exist; set OFFLINE_SIGNING_IMAGE_TYPE or "
                     "OFFLINE_SIGNING_ARTIFACT to a file this image deploys" % artifact)
        real = os.path.realpath(artifact)
        target['artifact'] = real
        target['sha256'] = offline_signing_sha256(real)
        target['length'] = os.path.getsize(real)
    else:
        if target['upload']:
            bb.fatal("OFFLINE_SIGNING_UPLOAD only applies to BINARY targets; "
                     "OSTree objects are pushed to Treehub by other means")
        commit = (d.getVar('OFFLINE_SIGNING_OSTREE_COMMIT') or '').strip()
        if not commit:
            manifest = d.getVar('OFFLINE_SIGNING_OSTREE_MANIFEST')
            if not manifest or not os.path.isfile(manifest):
                bb.fatal("OFFLINE_SIGNING_FORMAT = 'OSTREE' needs OFFLINE_SIGNING_OSTREE_COMMIT or the "
                         "commit file written by meta-updater (%s)" % manifest)
            with open(manifest) as f:
                commit = f.read().strip()
        if not re.fullmatch(r'[0-9a-f]{64}', commit):
            bb.fatal("'%s' is not an OSTree commit hash (64 lower-case hex digits)" % commit)
        target['sha256'] = commit
        target['length'] = 0

    target['name'] = d.getVar('OFFLINE_SIGNING_TARGET_NAME')
    target['version'] = d.getVar('OFFLINE_SIGNING_TARGET_VERSION') or target['sha256']
    if not target['name']:
        bb.fatal("OFFLINE_SIGNING_TARGET_NAME is empty")

    hwids = [h for h in re.split(r'[\s,]+', d.getVar('OFFLINE_SIGNING_HARDWARE_IDS') or '') if h]
    if not hwids:
        bb.fatal("OFFLINE_SIGNING_HARDWARE_IDS is empty")
    bad = [h for h in hwids if not re.fullmatch(r'[A-Za-z0-9._-]+', h)]
    if bad:
        bb.fatal("Invalid hardware id(s) %s: only letters, digits, '.', '_' and '-' are allowed" % ', '.join(bad))
    target['hardwareids'] = hwids

    custom = (d.getVar('OFFLINE_SIGNING_CUSTOM') or '').strip()
    if custom:
        try:
            value = json.loads(custom)
        except ValueError as e:
            bb.fatal("OFFLINE_SIGNING_CUSTOM is not valid JSON: %s" % e)
        if not isinstance(value, dict):
            bb.fatal("OFFLINE_SIGNING_CUSTOM must be a JSON object")
        target['custom'] = json.dumps(value, separators=(',', ':'), sort_keys=True)
    return target

def offline_signing_command(d, tool, creds, target, workdir):
    expires = d.getVar('OFFLINE_SIGNING_EXPIRES')
    expire_after = d.getVar('OFFLINE_SIGNING_EXPIRE_AFTER')
    if expires and expire_after:
        bb.fatal("Set only one of OFFLINE_SIGNING_EXPIRES ('%s') and OFFLINE_SIGNING_EXPIRE_AFTER ('%s')"
                 % (expires, expire_after))
    cmd = [tool, 'publish', '--credentials', creds,
           '--name', target['name'], '--version', target['version'],
           '--hardwareids', ','.join(target['hardwareids']),
           '--format', target['format'].lower()]
    if target['upload']:
        cmd += ['--image', target['artifact'], '--upload']
    else:
        cmd += ['--sha256', target['sha256'], '--length', str(target['length'])]
    url = d.getVar('OFFLINE_SIGNING_URL')
    if url:
        cmd += ['--url', url]
    if 'custom' in target:
        cmd += ['--custom', target['custom']]
    if expires:
        cmd += ['--expires', expires]
    elif expire_after:
        cmd += ['--expire-after', expire_after]
    retries = d.getVar('OFFLINE_SIGNING_RETRIES')
    if retries:
        cmd += ['--retries', retries]
    keep = d.getVar('OFFLINE_SIGNING_KEEP_VERSIONS')
    if keep:
        cmd += ['--keep-versions', keep]
    cacert = d.getVar('OFFLINE_SIGNING_CACERT')
    if cacert and os.path.isfile(cacert):
        cmd += ['--cacert', cacert]
    if bb.utils.to_boolean(d.getVar('OFFLINE_SIGNING_DRY_RUN'), False):
        cmd += ['--dry-run', '--output', os.path.join(workdir, 'targets.json')]
    cmd += ['--json']
    return cmd

python do_offline_sign() {
    import json
    import subprocess

    workdir = d.getVar('OFFLINE_SIGNING_WORKDIR')
    creds = d.getVar('OFFLINE_SIGNING_CREDENTIALS')
    required = bb.utils.to_boolean(d.getVar('OFFLINE_SIGNING_REQUIRED'), False)

    if not creds:
        bb.fatal("Cannot sign: no credentials are configured; set OFFLINE_SIGNING_CREDENTIALS "
                 "(or SOTA_PACKED_CREDENTIALS) to an offline-credentials.zip")
    if not os.path.isfile(creds):
        bb.fatal("Credentials file '%s' does not exist" % creds)
    try:
        missing = offline_signing_missing_entries(d, creds)
    except Exception as e:
        bb.fatal("Cannot read credentials file '%s': %s" % (creds, e))
    if missing:
        msg = ("%s has no offline signing keys (missing: %s). The image was NOT registered as a "
               "target; the server signs uploads with its online key until the Targets key is "
               "taken offline." % (creds, ' '.join(missing)))
        if required:
            bb.fatal(msg + " OFFLINE_SIGNING_REQUIRED is set.")
        bb.warn(msg + " Set OFFLINE_SIGNING_REQUIRED = \"1\" to make this an error.")
        return

    if d.getVar('GARAGE_CUSTOMIZE_TARGET'):
        bb.warn("GARAGE_CUSTOMIZE_TARGET is ignored by offline_signing; use OFFLINE_SIGNING_CUSTOM")

    target = offline_signing_target(d)
    tool = offline_signing_tool(d)
    cmd = offline_signing_command(d, tool, creds, target, workdir)

    env = dict(os.environ)
    if d.getVar('PATH'):
        env['PATH'] = d.getVar('PATH')
    bb.note("Running: %s" % ' '.join(cmd))
    proc = subprocess.run(cmd, cwd=workdir, env=env, stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
    if proc.stderr:
        bb.note(proc.stderr.rstrip())
    with open(os.path.join(workdir, 'publish.out'), 'w') as f:
        f.write(proc.stdout)

    if proc.returncode != 0:
        reasons = {
            1: "rejected",
            2: "gave up after repeated checksum conflicts (another build kept pushing targets.json)",
            3: "failed",
        }
        bb.fatal("ota-sign publish %s (exit code %d) for target %s-%s:\n%s"
                 % (reasons.get(proc.returncode, 'failed'), proc.returncode,
                    target['name'], target['version'], (proc.stderr or proc.stdout).strip()))

    summary = {k: target[k] for k in ('name', 'version', 'format', 'sha256', 'length', 'hardwareids')}
    with open(os.path.join(workdir, 'target.json'), 'w') as f:
        json.dump(summary, f, indent=2, sort_keys=True)
        f.write('\n')
    bb.note("%s target %s-%s (sha256 %s, %d bytes, hardware ids %s)"
            % ('Signed (dry run)' if bb.utils.to_boolean(d.getVar('OFFLINE_SIGNING_DRY_RUN'), False) else 'Published',
               target['name'], target['version'], target['sha256'], target['length'],
               ','.join(target['hardwareids'])))
}

# Ordered after the image is deployed; attached to do_build only when signing
# is configured (anonymous function below), so that a build without
# credentials never schedules a networked task.
addtask offline_sign after do_image_complete
do_offline_sign[doc] = "Signs the deployed image as an Uptane/TUF target with the offline Targets key and pushes targets.json"
# nooelint: oelint.task.network - pushing the signed targets.json needs the repository server
do_offline_sign[network] = "1"
do_offline_sign[depends] += "${@'' if d.getVar('OFFLINE_SIGNING_TOOL') else 'ota-sign-native:do_populate_sysroot'}"
do_offline_sign[depends] += "ca-certificates-native:do_populate_sysroot"
do_offline_sign[file-checksums] += "${@offline_signing_file_checksums(d)}"
do_offline_sign[lockfiles] = "${OFFLINE_SIGNING_LOCKFILE}"
do_offline_sign[dirs] = "${OFFLINE_SIGNING_WORKDIR}"
do_offline_sign[cleandirs] = "${OFFLINE_SIGNING_WORKDIR}"
do_offline_sign[vardeps] += "OFFLINE_SIGNING_REQUIRED OFFLINE_SIGNING_TARGET_NAME OFFLINE_SIGNING_TARGET_VERSION \
                             OFFLINE_SIGNING_HARDWARE_IDS OFFLINE_SIGNING_URL OFFLINE_SIGNING_EXPIRES \
                             OFFLINE_SIGNING_EXPIRE_AFTER OFFLINE_SIGNING_RETRIES OFFLINE_SIGNING_CUSTOM \
                             OFFLINE_SIGNING_FORMAT OFFLINE_SIGNING_ARTIFACT OFFLINE_SIGNING_OSTREE_COMMIT \
                             OFFLINE_SIGNING_UPLOAD OFFLINE_SIGNING_KEEP_VERSIONS OFFLINE_SIGNING_DRY_RUN \
                             OFFLINE_SIGNING_TOOL OFFLINE_SIGNING_ZIP_ENTRIES"
# The credentials are tracked by content ([file-checksums]), not by path, and
# the paths of the lock and of the CA bundle say nothing about what is pushed.
do_offline_sign[vardepsexclude] += "OFFLINE_SIGNING_CREDENTIALS OFFLINE_SIGNING_LOCKFILE OFFLINE_SIGNING_CACERT \
                                    OFFLINE_SIGNING_OSTREE_MANIFEST PATH"

# nooelint: oelint.task.noanonpython - the networked task may only join do_build when signing is configured (yocto-check-layer network check)
python __anonymous() {
    if bb.utils.to_boolean(d.getVar('OFFLINE_SIGNING_REQUIRED'), False) or d.getVar('OFFLINE_SIGNING_CREDENTIALS'):
        bb.build.addtask('do_offline_sign', 'do_build', 'do_image_complete', d)
}
