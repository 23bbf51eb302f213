# SPDX-License-Identifier: MPL-2.0
# offline_signing.bbclass - publishes an image as an Uptane/TUF target (see the layer's README): one `ota-sign
# publish --json` with flags from these variables; every rule lives in the tool, the key in its memory.

OFFLINE_SIGNING_CREDENTIALS ??= "${@d.getVar('SOTA_PACKED_CREDENTIALS') or ''}"
OFFLINE_SIGNING_REQUIRED ??= "0"
OFFLINE_SIGNING_TARGET_NAME ??= "${@d.getVar('GARAGE_TARGET_NAME') or d.getVar('PN')}"
OFFLINE_SIGNING_TARGET_VERSION ??= "${@d.getVar('GARAGE_TARGET_VERSION') or ''}"
OFFLINE_SIGNING_HARDWARE_IDS ??= "${@d.getVar('SOTA_HARDWARE_ID') or d.getVar('MACHINE')}"
OFFLINE_SIGNING_URL ??= "${@d.getVar('GARAGE_TARGET_URL') or ''}"
OFFLINE_SIGNING_EXPIRES ??= "${@d.getVar('GARAGE_TARGET_EXPIRES') or ''}"
OFFLINE_SIGNING_EXPIRE_AFTER ??= "${@d.getVar('GARAGE_TARGET_EXPIRE_AFTER') or ''}"
OFFLINE_SIGNING_RETRIES ??= "${@d.getVar('GARAGE_PUSH_RETRIES') or '5'}"
OFFLINE_SIGNING_CUSTOM ??= ""
OFFLINE_SIGNING_FORMAT ??= "BINARY"
OFFLINE_SIGNING_IMAGE_TYPE ??= "${@next((t for t in (d.getVar('IMAGE_FSTYPES') or '').split() if t.startswith('wic')), ((d.getVar('IMAGE_FSTYPES') or '').split() or ['wic'])[0])}"
OFFLINE_SIGNING_ARTIFACT ??= "${DEPLOY_DIR_IMAGE}/${IMAGE_LINK_NAME}.${OFFLINE_SIGNING_IMAGE_TYPE}"
OFFLINE_SIGNING_OSTREE_COMMIT ??= ""
OFFLINE_SIGNING_OSTREE_MANIFEST ??= "${WORKDIR}/ostree_manifest"
OFFLINE_SIGNING_UPLOAD ??= "auto"
OFFLINE_SIGNING_KEEP_VERSIONS ??= ""
OFFLINE_SIGNING_DRY_RUN ??= "0"
OFFLINE_SIGNING_TOOL ??= ""
OFFLINE_SIGNING_CACERT ??= "${STAGING_ETCDIR_NATIVE}/ssl/certs/ca-certificates.crt"
OFFLINE_SIGNING_EXPIRY_WARN ??= "targets=7 root=30"
OFFLINE_SIGNING_LOCKFILE ??= "${TMPDIR}/offline-signing.lock"
OFFLINE_SIGNING_WORKDIR = "${WORKDIR}/offline-signing"

def offline_signing_image_args(d):
    if d.getVar('OFFLINE_SIGNING_FORMAT').upper() != 'OSTREE':
        artifact = d.getVar('OFFLINE_SIGNING_ARTIFACT')
        if not os.path.isfile(artifact):
            bb.fatal("Image artifact '%s' does not exist; set OFFLINE_SIGNING_IMAGE_TYPE or "
                     "OFFLINE_SIGNING_ARTIFACT to a file this image deploys" % artifact)
        return ['--image', os.path.realpath(artifact)]
    commit, manifest = d.getVar('OFFLINE_SIGNING_OSTREE_COMMIT'), d.getVar('OFFLINE_SIGNING_OSTREE_MANIFEST')
    if not commit and os.path.isfile(manifest):
        commit = open(manifest).read().strip()
    if not commit:
        bb.fatal("OSTREE targets need OFFLINE_SIGNING_OSTREE_COMMIT or meta-updater's commit file %s" % manifest)
    return ['--sha256', commit]

def offline_signing_command(d):
    fmt, url, upload = d.getVar('OFFLINE_SIGNING_FORMAT'), d.getVar('OFFLINE_SIGNING_URL'), d.getVar('OFFLINE_SIGNING_UPLOAD')
    cmd = [d.getVar('OFFLINE_SIGNING_TOOL') or 'ota-sign', 'publish', '--json',
           '--name', d.getVar('OFFLINE_SIGNING_TARGET_NAME'), '--hardwareids',
           ','.join(d.getVar('OFFLINE_SIGNING_HARDWARE_IDS').replace(',', ' ').split()), '--format', fmt]
    flags = {'--version': d.getVar('OFFLINE_SIGNING_TARGET_VERSION'), '--url': url, '--custom': d.getVar('OFFLINE_SIGNING_CUSTOM'),
             '--expires': d.getVar('OFFLINE_SIGNING_EXPIRES'), '--expire-after': d.getVar('OFFLINE_SIGNING_EXPIRE_AFTER'),
             '--retries': d.getVar('OFFLINE_SIGNING_RETRIES'), '--keep-versions': d.getVar('OFFLINE_SIGNING_KEEP_VERSIONS')}
    cmd += offline_signing_image_args(d) + [x for flag, val in flags.items() if val for x in (flag, val)]
    upload = ('0' if url or fmt.upper() == 'OSTREE' else '1') if upload == 'auto' else upload  # what else serves it?
    cmd += ['--upload'] if bb.utils.to_boolean(upload) else []
    cmd += [] if bb.utils.to_boolean(d.getVar('OFFLINE_SIGNING_REQUIRED')) else ['--skip-unless-offline']
    cmd += ['--cacert', d.getVar('OFFLINE_SIGNING_CACERT')] if os.path.isfile(d.getVar('OFFLINE_SIGNING_CACERT')) else []
    return cmd + (['--dry-run', '--output', os.path.join(d.getVar('OFFLINE_SIGNING_WORKDIR'), 'targets.json')]
                  if bb.utils.to_boolean(d.getVar('OFFLINE_SIGNING_DRY_RUN')) else [])

def offline_signing_warnings(limits, result):
    import datetime
    for warning in result['warnings']:
        bb.warn(warning)
    now = datetime.datetime.now(datetime.timezone.utc)
    for role, days in (item.split('=', 1) for item in limits.split()):
        when = result.get(role + '_expires')
        left = when and datetime.datetime.fromisoformat(when.replace('Z', '+00:00')) - now
        if when and left < datetime.timedelta(days=int(days)):
            bb.warn("%s.json on the server expires at %s (in %d days, within OFFLINE_SIGNING_EXPIRY_WARN %s=%s): re-sign "
                    "it with %s" % (role, when, left.days, role, days, '`ota-sign refresh --if-expires-within %sD` (see the '
                    'README for a timer)' % days if role == 'targets' else 'the offline root keys: `ota-sign root pull`, '
                    '`root sign --expire-after 1Y`, `root push`'))

python do_offline_sign() {
    import json, subprocess
    creds = d.getVar('OFFLINE_SIGNING_CREDENTIALS')
    if not creds:
        bb.fatal("Cannot sign: no credentials are configured; set OFFLINE_SIGNING_CREDENTIALS to a zip")
    cmd = offline_signing_command(d) + ['--credentials', creds]
    bb.note("Running: %s" % ' '.join(cmd))
    try:
        proc = subprocess.run(cmd, cwd=d.getVar('OFFLINE_SIGNING_WORKDIR'), env=dict(os.environ, PATH=d.getVar('PATH')),
                              stdin=subprocess.DEVNULL, capture_output=True, text=True)
    except OSError as e:
        bb.fatal("Cannot run %s (%s); set OFFLINE_SIGNING_TOOL to an ota-sign on the build host" % (cmd[0], e))
    if proc.returncode != 0:
        bb.fatal("ota-sign publish failed (exit code %d):\n%s" % (proc.returncode, proc.stderr.strip()))
    bb.note(proc.stderr.strip())
    result = json.loads(proc.stdout)
    if result.get('skipped'):
        return bb.warn("%s. The image was NOT registered; set OFFLINE_SIGNING_REQUIRED = \"1\" to make this "
                       "an error." % result['reason'])
    offline_signing_warnings(d.getVar('OFFLINE_SIGNING_EXPIRY_WARN'), result)
    deployed = os.path.join(d.getVar('DEPLOY_DIR_IMAGE'), d.getVar('IMAGE_LINK_NAME') + '.offline-signing.json')
    for path in (os.path.join(d.getVar('OFFLINE_SIGNING_WORKDIR'), 'target.json'), deployed):
        with open(path + '.tmp', 'w') as f:
            json.dump(result, f, indent=2, sort_keys=True)
        os.replace(path + '.tmp', path)
    bb.note("%s in targets.json version %d (summary: %s)" % (result['target'], result['targets_version'], deployed))
}

addtask offline_sign after do_image_complete
do_offline_sign[doc] = "Signs the deployed image as an Uptane/TUF target with the offline Targets key and pushes targets.json"
# nooelint: oelint.task.network - pushing the signed targets.json needs the repository server
do_offline_sign[network] = "1"
do_offline_sign[depends] += "${@'' if d.getVar('OFFLINE_SIGNING_TOOL') else 'ota-sign-native:do_populate_sysroot'}"
do_offline_sign[depends] += "ca-certificates-native:do_populate_sysroot"
do_offline_sign[file-checksums] += "${@'%s:%s' % (d.getVar('OFFLINE_SIGNING_CREDENTIALS'), os.path.exists(d.getVar('OFFLINE_SIGNING_CREDENTIALS'))) if d.getVar('OFFLINE_SIGNING_CREDENTIALS') else ''}"
do_offline_sign[lockfiles] = "${OFFLINE_SIGNING_LOCKFILE}"
do_offline_sign[dirs] = "${OFFLINE_SIGNING_WORKDIR}"
do_offline_sign[cleandirs] = "${OFFLINE_SIGNING_WORKDIR}"
# The signature follows every variable the task reads (bitbake finds them) but these: the credentials count by
# content ([file-checksums]), not path; the warning limits push nothing.
do_offline_sign[vardepsexclude] += "OFFLINE_SIGNING_CREDENTIALS OFFLINE_SIGNING_EXPIRY_WARN PATH"

# nooelint: oelint.task.noanonpython - the networked task may only join do_build when signing is configured (yocto-check-layer network check)
python __anonymous() {
    if bb.utils.to_boolean(d.getVar('OFFLINE_SIGNING_REQUIRED'), False) or d.getVar('OFFLINE_SIGNING_CREDENTIALS'):
        bb.build.addtask('do_offline_sign', 'do_build', 'do_image_complete', d)
}
