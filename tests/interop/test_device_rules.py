# SPDX-License-Identifier: MPL-2.0
"""Plays the device: checks what ota-sign + ota-reposerver produce with aktualizr's rules.

Independent of the Rust code: its own canonical JSON (aktualizr's jsoncpp form and
ota-tuf's form), its own signature verification (PyPI `cryptography`), its own
root-chain walk. The rules follow aktualizr (uptane/aktualizr `uptane/metawithkeys.cc`,
`tuf.cc`, `root.cc`, `imagerepository.cc`, `uptanerepository.cc`, `utilities/types.cc`,
`utilities/utils.cc`), as summarised in shared/reference/reposerver.md §6–§7.
Where this checker is stricter than aktualizr it says so (RSA-PSS salt length,
`1.root.json` version, expiry format parse).
"""
import base64
import binascii
import copy
import datetime
import hashlib
import json
import os
import subprocess

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa


# What conftest.published publishes (kept in sync with it; not imported, the module name "conftest" is shared).
TARGET_NAME = "demo-image-1.0"
HARDWARE_ID = "qemux86-64"
MAX_ROOTS = 100  # bound for the N.root.json walk

KIB = 1024
MAX_ROOT_SIZE = 64 * KIB          # kMaxRootSize
MAX_TIMESTAMP_SIZE = 64 * KIB     # kMaxTimestampSize
MAX_SNAPSHOT_SIZE = 64 * KIB      # kMaxSnapshotSize
MAX_TARGETS_SIZE = 8 * KIB * KIB  # kMaxImageTargetsSize
MIN_SIGNATURES, MAX_SIGNATURES = 1, 1000  # kMinSignatures / kMaxSignatures
METHODS = ("rsassa-pss", "rsassa-pss-sha256", "ed25519")
RSA_SIZES = (2048, 3072, 4096)


class DeviceReject(Exception):
    """The device refuses the metadata (one aktualizr exception)."""


def reject_unless(cond, message):
    if not cond:
        raise DeviceReject(message)


# --- canonical JSON -----------------------------------------------------------

def _akt_string(s):
    """jsoncpp 1.9 valueToQuotedStringN with emitUTF8 = false."""
    out = ['"']
    for ch in s:
        c = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch in "\b\f\n\r\t":
            out.append({"\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}[ch])
        elif c < 0x20:
            out.append("\\u%04x" % c)
        elif c < 0x80:  # 0x7F is written raw
            out.append(ch)
        elif c < 0x10000:
            out.append("\\u%04x" % c)
        else:
            c -= 0x10000
            out.append("\\u%04x\\u%04x" % (0xD800 + (c >> 10), 0xDC00 + (c & 0x3FF)))
    out.append('"')
    return "".join(out)


def _tuf_string(s):
    """circe Printer.noSpaces string escaping (ota-tuf CanonicalJson)."""
    out = ['"']
    for ch in s:
        c = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch in "\b\f\n\r\t":
            out.append({"\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}[ch])
        elif c < 0x20 or 0x7F <= c <= 0x9F:
            out.append("\\u%04x" % c)
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _canonical(value, string, key_order):
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        raise ValueError("non-integer number %r: the canonical forms are only defined for integers" % value)
    if isinstance(value, str):
        return string(value)
    if isinstance(value, list):
        return "[" + ",".join(_canonical(v, string, key_order) for v in value) + "]"
    if isinstance(value, dict):
        items = sorted(value.items(), key=lambda kv: key_order(kv[0]))
        return "{" + ",".join(string(k) + ":" + _canonical(v, string, key_order) for k, v in items) + "}"
    raise TypeError(type(value))


def akt_canonical(value):
    """aktualizr Utils::jsonToCanonicalStr: std::map key order (bytewise), compact, ASCII-only output."""
    return _canonical(value, _akt_string, lambda k: k.encode("utf-8", "surrogatepass")).encode("ascii")


def tuf_canonical(value):
    """ota-tuf CanonicalJson: keys in UTF-16 code-unit order, compact, raw UTF-8 output."""
    return _canonical(value, _tuf_string, lambda k: k.encode("utf-16-be", "surrogatepass")).encode(
        "utf-8", "surrogatepass")


def parse(raw):
    """Parses served bytes like the device (a JSON object is required)."""
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise DeviceReject("not JSON: %s" % e)
    reject_unless(isinstance(doc, dict) and isinstance(doc.get("signed"), dict), "invalid metadata json")
    return doc


# --- keys and signatures ------------------------------------------------------

class KeySet:
    """The keys and roles of a root.json (MetaWithKeys::ParseKeys / ParseRole)."""

    def __init__(self, root_doc):
        signed = root_doc["signed"]
        reject_unless("keys" in signed, "root: missing keys field")
        reject_unless("roles" in signed, "root: missing roles field")
        self.keys = {}
        for keyid, key in signed["keys"].items():  # ids are taken as listed, never recomputed
            keytype = str(key.get("keytype", "")).lower()
            reject_unless(keytype in ("rsa", "ed25519"), "root: unsupported key type %r" % key.get("keytype"))
            self.keys[keyid] = (keytype, key.get("keyval", {}).get("public"))
        self.roles = {}
        for name, role in signed["roles"].items():
            name = name.lower()
            if name not in ("root", "targets", "snapshot", "timestamp"):
                continue  # Role::InvalidRole(): a warning, ignored
            threshold = role.get("threshold")
            reject_unless(isinstance(threshold, int) and MIN_SIGNATURES <= threshold <= MAX_SIGNATURES,
                          "root: role %s has illegal threshold %r (must be %d..%d)"
                          % (name, threshold, MIN_SIGNATURES, MAX_SIGNATURES))
            self.roles[name] = (set(role.get("keyids", [])), threshold)


def verify_with_key(keytype, public, sig_b64, message):
    """PublicKey::VerifySignature; dispatches on the key type, not the method. Salt 32 (stricter, see below)."""
    try:
        sig = base64.b64decode(sig_b64, validate=True)
    except (binascii.Error, ValueError, TypeError):
        return False
    if keytype == "ed25519":
        try:
            raw = bytes.fromhex(public)
        except (ValueError, TypeError):
            return False
        if len(raw) != 32 or len(sig) != 64:
            return False
        try:
            ed25519.Ed25519PublicKey.from_public_bytes(raw).verify(sig, message)
            return True
        except InvalidSignature:
            return False
    try:
        key = serialization.load_pem_public_key(public.encode("ascii"))
    except (ValueError, TypeError, AttributeError, UnicodeEncodeError):
        return False
    if not isinstance(key, rsa.RSAPublicKey) or key.key_size not in RSA_SIZES:
        return False  # crypto.cc: RSA 2048/3072/4096 only
    # aktualizr verifies with RSA_PSS_SALTLEN_AUTO (any salt). ota-tuf (BouncyCastle SHA256withRSAandMGF1) needs
    # salt 32, and so do we: a signature that only verifies with another salt length is reported as invalid.
    try:
        key.verify(sig, message, padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32), hashes.SHA256())
        return True
    except InvalidSignature:
        return False


def verify_signatures(doc, role, keyset):
    """MetaWithKeys::UnpackSignedObject for one role; returns the ids of the valid signatures."""
    signed = doc["signed"]
    _type = signed.get("_type")
    if role == "root":
        reject_unless(isinstance(_type, str) and _type.lower() == "root",
                      "root: _type %r, expected 'Root' (compared lower-cased)" % (_type,))
    else:
        expected = role.capitalize()
        reject_unless(_type == expected, "%s: _type %r, expected exactly %r" % (role, _type, expected))
    message = akt_canonical(signed)
    signatures = doc.get("signatures")
    reject_unless(isinstance(signatures, list), "%s: signatures is not a list" % role)
    role_keyids, threshold = keyset.roles.get(role, (set(), 0))
    reject_unless(MIN_SIGNATURES <= threshold <= MAX_SIGNATURES,
                  "%s: invalid signature threshold %r (role missing from root?)" % (role, threshold))
    seen, valid = set(), []
    for sig in signatures:
        keyid = sig.get("keyid")
        reject_unless(keyid not in seen, "%s: duplicate keyid %s in signatures (NonUniqueSignatures)" % (role, keyid))
        seen.add(keyid)
        method = str(sig.get("method", "")).lower()
        reject_unless(method in METHODS, "%s: unsupported sign method %r (aborts the whole verification)"
                      % (role, sig.get("method")))
        if keyid not in keyset.keys or keyid not in role_keyids:
            continue  # unknown key / not a key of this role: skipped
        keytype, public = keyset.keys[keyid]
        if verify_with_key(keytype, public, sig.get("sig"), message):
            valid.append(keyid)
    reject_unless(not (len(signatures) == 1 and not valid),
                  "%s: the only signature is invalid or by a key not of this role (BadKeyId)" % role)
    reject_unless(len(valid) >= threshold, "%s: %d valid signature(s), threshold %d (UnmetThreshold)"
                  % (role, len(valid), threshold))
    return valid


# --- timestamps ---------------------------------------------------------------

def now_utc():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def check_expires_format(doc, name):
    """TimeStamp(std::string): exactly 20 characters ending in 'Z', or InvalidMetadata("invalid timestamp")."""
    expires = doc["signed"].get("expires")
    reject_unless(isinstance(expires, str) and len(expires) == 20 and expires.endswith("Z"),
                  "%s: expires %r is not exactly 20 characters ending in Z (invalid timestamp)" % (name, expires))
    try:  # stricter than aktualizr, which only compares strings
        datetime.datetime.strptime(expires, "%Y-%m-%dT%H:%M:%SZ")
    except ValueError:
        raise DeviceReject("%s: expires %r is not YYYY-MM-DDTHH:MM:SSZ" % (name, expires))
    return expires


def check_not_expired(doc, name, now):
    expires = check_expires_format(doc, name)
    reject_unless(not expires < now, "%s: expired (%s < now %s) (ExpiredMetadata)" % (name, expires, now))


# --- the update flow ----------------------------------------------------------

def walk_root_chain(fetch, now, max_roots=MAX_ROOTS):
    """RepositoryCommon::updateRoot on a fresh device. Returns (KeySet, [root docs])."""
    status, raw = fetch("1.root.json")
    reject_unless(200 <= status < 300, "1.root.json: HTTP %d" % status)
    reject_unless(len(raw) <= MAX_ROOT_SIZE, "1.root.json: %d bytes > %d" % (len(raw), MAX_ROOT_SIZE))
    root = parse(raw)
    keyset = KeySet(root)
    verify_signatures(root, "root", keyset)  # self-signed
    check_expires_format(root, "1.root.json")
    reject_unless(root["signed"].get("version") == 1,  # stricter: aktualizr takes the file's word for it
                  "1.root.json: version %r, expected 1" % root["signed"].get("version"))
    chain = [root]
    for version in range(2, max_roots + 2):
        status, raw = fetch("%d.root.json" % version)
        if not 200 <= status < 300:
            break  # any non-2xx ends the walk (404 is the normal end)
        reject_unless(len(raw) <= MAX_ROOT_SIZE, "%d.root.json: %d bytes > %d" % (version, len(raw), MAX_ROOT_SIZE))
        new_root = parse(raw)
        new_keyset = KeySet(new_root)
        try:
            verify_signatures(new_root, "root", keyset)
        except DeviceReject as e:
            raise DeviceReject("%d.root.json not signed by a threshold of the previous root's root keys: %s"
                               % (version, e))
        try:
            verify_signatures(new_root, "root", new_keyset)
        except DeviceReject as e:
            raise DeviceReject("%d.root.json not signed by a threshold of its own root keys: %s" % (version, e))
        check_expires_format(new_root, "%d.root.json" % version)
        got = new_root["signed"].get("version")
        reject_unless(got == chain[-1]["signed"]["version"] + 1,
                      "%d.root.json: version %r is not previous version %d + 1 (RootRotationError)"
                      % (version, got, chain[-1]["signed"]["version"]))
        chain.append(new_root)
        keyset = new_keyset
    else:
        raise DeviceReject("more than %d roots: walk stopped" % max_roots)
    check_not_expired(chain[-1], "root v%d" % chain[-1]["signed"]["version"], now)  # only the final root
    return keyset, chain


def verify_timestamp(raw, keyset, now):
    reject_unless(len(raw) <= MAX_TIMESTAMP_SIZE, "timestamp.json: %d bytes > %d" % (len(raw), MAX_TIMESTAMP_SIZE))
    doc = parse(raw)
    verify_signatures(doc, "timestamp", keyset)
    check_expires_format(doc, "timestamp.json")
    entry = doc["signed"].get("meta", {}).get("snapshot.json") if isinstance(doc["signed"].get("meta"), dict) else None
    reject_unless(isinstance(entry, dict), "timestamp.json: no meta[\"snapshot.json\"] (invalid timestamp.json)")
    reject_unless(isinstance(entry.get("hashes"), dict), "timestamp.json: meta[\"snapshot.json\"].hashes is not an object")
    for field in ("length", "version"):
        reject_unless(isinstance(entry.get(field), int) and not isinstance(entry.get(field), bool),
                      "timestamp.json: meta[\"snapshot.json\"].%s is not an integer: %r" % (field, entry.get(field)))
    check_not_expired(doc, "timestamp.json", now)
    return doc


def check_role_hashes(hashes_obj, referenced, name, require_one):
    """sha256/sha512 entries must match canonical(whole referenced file); other algorithms are ignored."""
    canonical = akt_canonical(referenced)
    found = False
    for alg, value in (hashes_obj or {}).items():
        if alg not in ("sha256", "sha512"):
            continue
        digest = hashlib.new(alg, canonical).hexdigest()
        reject_unless(isinstance(value, str) and value.lower() == digest,
                      "%s: %s %r != %s of the aktualizr-canonical whole file" % (name, alg, value, digest))
        found = True
    reject_unless(found or not require_one, "%s: no sha256/sha512 hash to check" % name)


def verify_snapshot(raw, timestamp, keyset, now):
    entry = timestamp["signed"]["meta"]["snapshot.json"]
    limit = entry["length"] if entry["length"] > 0 else MAX_SNAPSHOT_SIZE  # the fetch is capped at this length
    reject_unless(len(raw) <= limit, "snapshot.json: served %d bytes, more than the %d the %s allows"
                  % (len(raw), limit, "timestamp's length" if entry["length"] > 0 else "64 KiB cap"))
    doc = parse(raw)
    check_role_hashes(entry["hashes"], doc, "timestamp.json meta[\"snapshot.json\"]", require_one=True)
    verify_signatures(doc, "snapshot", keyset)
    check_expires_format(doc, "snapshot.json")
    meta = doc["signed"].get("meta")
    reject_unless(isinstance(meta, dict), "snapshot.json: meta is not an object")
    for name, item in meta.items():
        v = item.get("version") if isinstance(item, dict) else None
        reject_unless(isinstance(v, int) and not isinstance(v, bool),
                      "snapshot.json: meta[%r].version is not an integer: %r" % (name, v))
    reject_unless(doc["signed"].get("version") == entry["version"],
                  "snapshot.json: version %r != timestamp's meta[\"snapshot.json\"].version %r (VersionMismatch)"
                  % (doc["signed"].get("version"), entry["version"]))
    check_not_expired(doc, "snapshot.json", now)
    return doc


def verify_targets(raw, snapshot, keyset, now):
    # Snapshot::init only records a length when it `isObject()`, so an integer length is ignored: 8 MiB cap.
    reject_unless(len(raw) <= MAX_TARGETS_SIZE, "targets.json: %d bytes > 8 MiB" % len(raw))
    doc = parse(raw)
    entry = snapshot["signed"]["meta"].get("targets.json")
    reject_unless(isinstance(entry, dict), "snapshot.json: no meta[\"targets.json\"]")
    check_role_hashes(entry.get("hashes"), doc, "snapshot.json meta[\"targets.json\"]", require_one=False)
    verify_signatures(doc, "targets", keyset)
    check_expires_format(doc, "targets.json")
    reject_unless(isinstance(doc["signed"].get("targets"), dict), "targets.json: targets is not an object")
    reject_unless(doc["signed"].get("version") == entry.get("version"),
                  "targets.json: version %r != snapshot's meta[\"targets.json\"].version %r (VersionMismatch)"
                  % (doc["signed"].get("version"), entry.get("version")))
    check_not_expired(doc, "targets.json", now)
    return doc


def device_update(fetch, now=None):
    """The whole image-repository update of a fresh device: root chain, timestamp, snapshot, targets."""
    now = now or now_utc()
    keyset, chain = walk_root_chain(fetch, now)
    raws = {}
    for name, limit in (("timestamp.json", MAX_TIMESTAMP_SIZE), ("snapshot.json", MAX_SNAPSHOT_SIZE),
                        ("targets.json", MAX_TARGETS_SIZE)):
        status, raws[name] = fetch(name)
        reject_unless(200 <= status < 300, "%s: HTTP %d" % (name, status))
    timestamp = verify_timestamp(raws["timestamp.json"], keyset, now)
    snapshot = verify_snapshot(raws["snapshot.json"], timestamp, keyset, now)
    targets = verify_targets(raws["targets.json"], snapshot, keyset, now)
    return {"keyset": keyset, "chain": chain, "timestamp": timestamp, "snapshot": snapshot, "targets": targets,
            "raw": raws}


# --- Director <-> image matching ------------------------------------------------

def _hashes(target):
    return {alg: str(v).lower() for alg, v in (target.get("hashes") or {}).items() if alg in ("sha256", "sha512")}


def match_target(director_name, director_target, image_targets):
    """Target::MatchTarget of a Director target against the top-level image targets. Returns the image target."""
    image = image_targets.get(director_name)
    reject_unless(image is not None, "target %r not in the image repository's targets.json (TargetMismatch)"
                  % director_name)
    reject_unless(image.get("length") == director_target["length"],
                  "%s: image length %r != %r" % (director_name, image.get("length"), director_target["length"]))
    custom = image.get("custom") or {}
    hwids = custom.get("hardwareIds")
    reject_unless(isinstance(hwids, list) and hwids,
                  "%s: custom.hardwareIds missing or empty: no device can match it (TargetMismatch)" % director_name)
    for ecu, info in director_target["custom"]["ecuIdentifiers"].items():
        reject_unless(info["hardwareId"] in hwids, "%s: ECU %s hardware id %r not in custom.hardwareIds %r"
                      % (director_name, ecu, info["hardwareId"], hwids))
    mine, theirs = _hashes(image), _hashes(director_target)
    common = set(mine) & set(theirs)
    for alg in common:
        reject_unless(mine[alg] == theirs[alg], "%s: %s differs: image %s, director %s"
                      % (director_name, alg, mine[alg], theirs[alg]))
    reject_unless(common, "%s: no sha256/sha512 hash in common with the Director target" % director_name)
    return image


def is_ostree(target):
    fmt = (target.get("custom") or {}).get("targetFormat")
    return fmt == "OSTREE" or (fmt in (None, "") and target.get("length") == 0)


# --- interop precondition --------------------------------------------------------

def non_interop_values(value, path="$"):
    """Paths of floats and of strings with a code point >= 0x7F (where ota-tuf and aktualizr differ)."""
    bad = []
    if isinstance(value, float):
        bad.append("%s: non-integer number %r" % (path, value))
    elif isinstance(value, str):
        if any(ord(c) >= 0x7F for c in value):
            bad.append("%s: non-ASCII or DEL in %r" % (path, value))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            bad += non_interop_values(v, "%s[%d]" % (path, i))
    elif isinstance(value, dict):
        for k, v in value.items():
            bad += non_interop_values(k, "%s key" % path)
            bad += non_interop_values(v, "%s.%s" % (path, k))
    return bad


def spki_keyid(pub):
    """ota-tuf key id of a key file {"keytype", "keyval": {"public"}}: sha256 of the DER SubjectPublicKeyInfo."""
    public = pub["keyval"]["public"]
    if pub["keytype"].lower() == "ed25519":
        der = bytes.fromhex("302a300506032b6570032100") + bytes.fromhex(public)
    else:
        der = serialization.load_pem_public_key(public.encode()).public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


# ==============================================================================
# Tests against the real binaries (one run per key type, see conftest.published)
# ==============================================================================

@pytest.fixture(scope="module")
def device(published):
    """The device's update of the image repository; the tests below look at parts of it."""
    try:
        return device_update(published.fetch)
    except DeviceReject as e:
        pytest.fail("a device (aktualizr rules) rejects the %s repository: %s" % (published.key_type, e),
                    pytrace=False)


def test_root_chain(published, device):
    chain = device["chain"]
    versions = [r["signed"]["version"] for r in chain]
    assert versions == list(range(1, len(chain) + 1)), "root versions %r" % versions
    assert len(chain) >= 2, "move-offline must have produced a new root version (chain %r)" % versions
    served = json.loads(published.fetch_ok("root.json"))
    assert served["signed"]["version"] == versions[-1], \
        "root.json is v%d but the N.root.json walk ends at v%d" % (served["signed"]["version"], versions[-1])
    assert akt_canonical(served) == akt_canonical(chain[-1]), "root.json differs from %d.root.json" % versions[-1]
    status, _ = published.fetch("%d.root.json" % (versions[-1] + 1))
    assert status == 404, "the walk must end with 404, got HTTP %d" % status


def test_offline_keys_took_over(published, device):
    """Not a device rule: the device check is only meaningful if targets are signed by the offline key."""
    root = device["chain"][-1]["signed"]
    myroot, mytargets = (spki_keyid(published.offline_public_key(n)) for n in ("myroot", "mytargets"))
    assert root["roles"]["root"]["keyids"] == [myroot], "final root's root role %r, expected [myroot %s]" % (
        root["roles"]["root"]["keyids"], myroot)
    assert root["roles"]["targets"]["keyids"] == [mytargets], "final root's targets role %r, expected [%s]" % (
        root["roles"]["targets"]["keyids"], mytargets)
    signers = [s["keyid"] for s in device["targets"]["signatures"]]
    assert mytargets in signers, "targets.json signed by %r, not by mytargets %s" % (signers, mytargets)
    expected = {"ed25519": "ed25519", "rsa": "rsassa-pss-sha256"}
    keys = device["keyset"].keys
    for name in ("timestamp", "snapshot", "targets"):
        for s in device[name]["signatures"]:
            keytype = keys[s["keyid"]][0] if s["keyid"] in keys else None
            assert keytype == published.key_type, "%s.json signed by %s key %s in a %s run" % (
                name, keytype, s["keyid"], published.key_type)
            assert s["method"] == expected[keytype], \
                "%s.json: method %r for a %s key (ota-tuf writes %r)" % (name, s["method"], keytype, expected[keytype])


def test_every_signature_is_valid(device):
    """aktualizr only needs a threshold; here every signature by a key of the role must verify (salt 32 for RSA)."""
    keyset = device["keyset"]
    for name in ("timestamp", "snapshot", "targets"):
        doc = device[name]
        role_keyids, _ = keyset.roles[name]
        valid = verify_signatures(doc, name, keyset)
        known = [s["keyid"] for s in doc["signatures"] if s["keyid"] in role_keyids]
        assert sorted(valid) == sorted(known), "%s.json: signatures by role keys %r, valid %r" % (name, known, valid)


def test_keys_are_device_keys(device):
    for root in device["chain"]:
        v = root["signed"]["version"]
        for keyid, (keytype, public) in KeySet(root).keys.items():
            if keytype == "ed25519":
                assert isinstance(public, str) and len(bytes.fromhex(public)) == 32, \
                    "root v%d key %s: Ed25519 public is not 32 bytes of hex" % (v, keyid)
            else:
                key = serialization.load_pem_public_key(public.encode("ascii"))
                assert isinstance(key, rsa.RSAPublicKey) and key.key_size in RSA_SIZES, \
                    "root v%d key %s: RSA key size %s not in %r" % (v, keyid, getattr(key, "key_size", "?"), RSA_SIZES)


def test_timestamps(device):
    now = now_utc()
    docs = [("%d.root.json" % r["signed"]["version"], r) for r in device["chain"]]
    docs += [(n + ".json", device[n]) for n in ("timestamp", "snapshot", "targets")]
    for name, doc in docs:
        expires = check_expires_format(doc, name)
        if name.endswith(".root.json") and doc is not device["chain"][-1]:
            continue  # only the final root is checked for expiry
        assert expires > now, "%s expired: %s" % (name, expires)


def test_timestamp_and_snapshot_agree(device):
    entry = device["timestamp"]["signed"]["meta"]["snapshot.json"]
    raw_snapshot = device["raw"]["snapshot.json"]
    assert entry["version"] == device["snapshot"]["signed"]["version"]
    assert "sha256" in entry["hashes"], "timestamp lists no sha256 for snapshot.json: %r" % entry["hashes"]
    assert entry["hashes"]["sha256"] == hashlib.sha256(akt_canonical(device["snapshot"])).hexdigest()
    assert entry["length"] >= len(raw_snapshot), \
        "timestamp's snapshot length %d < served snapshot.json (%d bytes): the capped download fails" % (
            entry["length"], len(raw_snapshot))


def test_snapshot_and_targets_agree(device):
    entry = device["snapshot"]["signed"]["meta"]["targets.json"]
    assert entry["version"] == device["targets"]["signed"]["version"]
    canonical = akt_canonical(device["targets"])
    if "sha256" in entry.get("hashes", {}):
        assert entry["hashes"]["sha256"] == hashlib.sha256(canonical).hexdigest()
    # aktualizr ignores an integer length (Snapshot::init tests isObject()); note it only
    if "length" in entry:
        assert isinstance(entry["length"], int)


def test_image_matches_and_downloads(published, device):
    image = published.image
    sha256 = hashlib.sha256(image).hexdigest()
    director_target = {"length": len(image), "hashes": {"sha256": sha256},
                       "custom": {"ecuIdentifiers": {"primary-serial": {"hardwareId": HARDWARE_ID}}}}
    target = match_target(TARGET_NAME, director_target, device["targets"]["signed"]["targets"])
    assert target["length"] == len(image), "target length %r != image %d" % (target["length"], len(image))
    assert target["hashes"]["sha256"] == sha256, "target sha256 %r != image %s" % (target["hashes"]["sha256"], sha256)
    assert not is_ostree(target), "a binary image is marked OSTree: %r" % target.get("custom")
    uri = (target.get("custom") or {}).get("uri")
    assert uri in (None, "https://example.com/"), \
        "custom.uri %r would redirect the device's download away from the repo server" % uri
    body = published.fetch_ok("targets/" + TARGET_NAME)
    assert len(body) == target["length"], "download is %d bytes, target says %d" % (len(body), target["length"])
    assert hashlib.sha256(body).hexdigest() == target["hashes"]["sha256"], "downloaded bytes do not match sha256"


def test_interop_precondition_and_canonical_forms_agree(device):
    docs = [("%d.root.json" % r["signed"]["version"], r) for r in device["chain"]]
    docs += [(n + ".json", device[n]) for n in ("timestamp", "snapshot", "targets")]
    for name, doc in docs:
        assert non_interop_values(doc) == [], "%s: %r" % (name, non_interop_values(doc))
        assert tuf_canonical(doc) == akt_canonical(doc), "%s: ota-tuf and aktualizr canonical forms differ" % name
        assert tuf_canonical(doc["signed"]) == akt_canonical(doc["signed"]), name


def test_served_raw_bytes_are_ascii_and_canonical(published, device):
    """Not a device rule (devices re-canonicalise): the server serves canonical bytes, as ota-tuf does."""
    files = _raws(published, device)
    for name, raw in files.items():
        assert all(b < 0x7F for b in raw), "%s: served bytes contain non-ASCII" % name
        assert raw == akt_canonical(json.loads(raw)), "%s: served bytes are not the canonical form" % name
    entry = device["snapshot"]["signed"]["meta"].get("root.json")
    if entry is not None:  # ota-tuf convention: hash/length of the canonical latest root
        latest = files["%d.root.json" % device["chain"][-1]["signed"]["version"]]
        assert entry["version"] == device["chain"][-1]["signed"]["version"], "snapshot's root.json entry %r" % entry
        assert entry["hashes"].get("sha256") == hashlib.sha256(latest).hexdigest() and entry["length"] == len(latest), \
            "snapshot's root.json entry %r does not describe the latest root" % entry


# ==============================================================================
# Negative controls: the checker can fail
# ==============================================================================

def _fetch_from(files):
    def fetch(path):
        if path in files:
            return 200, files[path]
        return 404, b'{"code":"not_found"}'
    return fetch


def _raws(published, device):
    files = {"%d.root.json" % r["signed"]["version"]: published.fetch_ok("%d.root.json" % r["signed"]["version"])
             for r in device["chain"]}
    files.update(device["raw"])
    return files


def test_control_unmodified_copy_passes(published, device):
    device_update(_fetch_from(_raws(published, device)))


def test_control_tampered_targets_custom_is_rejected(published, device):
    raw = device["raw"]["targets.json"]
    hwid = b'"' + HARDWARE_ID.encode() + b'"'
    assert raw.count(hwid) == 1, "expected the hardware id once in targets.json"
    tampered = raw.replace(hwid, hwid[:-2] + bytes([hwid[-2] ^ 1]) + b'"')  # one byte of custom.hardwareIds
    assert tampered != raw and len(tampered) == len(raw)
    doc = parse(tampered)
    with pytest.raises(DeviceReject, match="BadKeyId|UnmetThreshold"):
        verify_signatures(doc, "targets", device["keyset"])
    files = _raws(published, device)
    files["targets.json"] = tampered
    with pytest.raises(DeviceReject, match="targets"):
        device_update(_fetch_from(files))


def test_control_signature_list_abuse_is_rejected(device):
    doc = device["targets"]
    dup = copy.deepcopy(doc)
    dup["signatures"].append(dict(dup["signatures"][0]))
    with pytest.raises(DeviceReject, match="duplicate keyid"):
        verify_signatures(dup, "targets", device["keyset"])
    bad_method = copy.deepcopy(doc)
    bad_method["signatures"].append({"keyid": "00" * 32, "method": "ecPrime256v1", "sig": "AA=="})
    with pytest.raises(DeviceReject, match="unsupported sign method"):
        verify_signatures(bad_method, "targets", device["keyset"])
    wrong_role = copy.deepcopy(device["snapshot"])  # snapshot signed with the snapshot key, checked as targets
    wrong_role["signed"]["_type"] = "Targets"
    with pytest.raises(DeviceReject):
        verify_signatures(wrong_role, "targets", device["keyset"])
    lower = copy.deepcopy(doc)
    lower["signed"]["_type"] = "targets"
    with pytest.raises(DeviceReject, match="_type"):
        verify_signatures(lower, "targets", device["keyset"])


def test_control_image_mismatch_is_rejected(published, device):
    image = published.image
    good = {"length": len(image), "hashes": {"sha256": hashlib.sha256(image).hexdigest()},
            "custom": {"ecuIdentifiers": {"s": {"hardwareId": HARDWARE_ID}}}}
    targets = device["targets"]["signed"]["targets"]
    other_hw = copy.deepcopy(good)
    other_hw["custom"]["ecuIdentifiers"]["s"]["hardwareId"] = "raspberrypi4-64"
    with pytest.raises(DeviceReject, match="hardware id"):
        match_target(TARGET_NAME, other_hw, targets)
    other_hash = copy.deepcopy(good)
    other_hash["hashes"]["sha256"] = hashlib.sha256(image + b"x").hexdigest()
    with pytest.raises(DeviceReject, match="sha256 differs"):
        match_target(TARGET_NAME, other_hash, targets)
    no_hwids = copy.deepcopy(targets)
    no_hwids[TARGET_NAME]["custom"]["hardwareIds"] = []
    with pytest.raises(DeviceReject, match="hardwareIds missing or empty"):
        match_target(TARGET_NAME, good, no_hwids)


# --- synthetic repositories signed here (independent of the binaries) -----------

def _ed25519_key(seed_byte):
    priv = ed25519.Ed25519PrivateKey.from_private_bytes(bytes([seed_byte]) * 32)
    pub = priv.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()
    return priv, pub, hashlib.sha256(bytes.fromhex("302a300506032b6570032100" + pub)).hexdigest()


def _root(version, root_key, expires="2099-01-01T00:00:00Z"):
    _, pub, kid = root_key
    return {"_type": "Root", "consistent_snapshot": False, "expires": expires, "version": version,
            "keys": {kid: {"keytype": "ED25519", "keyval": {"public": pub}}},
            "roles": {r: {"keyids": [kid], "threshold": 1} for r in ("root", "targets", "snapshot", "timestamp")}}


def _sign(signed, *keys):
    message = akt_canonical(signed)
    return {"signatures": [{"keyid": kid, "method": "ed25519", "sig": base64.b64encode(priv.sign(message)).decode()}
                           for priv, _, kid in keys], "signed": signed}


def _dump(doc):
    return json.dumps(doc).encode()


def test_control_root_chain_synthetic():
    k1, k2, k3 = _ed25519_key(1), _ed25519_key(2), _ed25519_key(3)
    now = now_utc()
    r1 = _sign(_root(1, k1), k1)
    good = {"1.root.json": _dump(r1), "2.root.json": _dump(_sign(_root(2, k2), k1, k2))}
    keyset, chain = walk_root_chain(_fetch_from(good), now)  # positive control
    assert [r["signed"]["version"] for r in chain] == [1, 2] and set(keyset.keys) == {k2[2]}

    skipped = {"1.root.json": _dump(r1), "2.root.json": _dump(_sign(_root(3, k2), k1, k2))}
    with pytest.raises(DeviceReject, match="RootRotationError"):
        walk_root_chain(_fetch_from(skipped), now)

    only_new = {"1.root.json": _dump(r1), "2.root.json": _dump(_sign(_root(2, k2), k2))}
    with pytest.raises(DeviceReject, match="previous root"):
        walk_root_chain(_fetch_from(only_new), now)

    only_old = {"1.root.json": _dump(r1), "2.root.json": _dump(_sign(_root(2, k2), k1))}
    with pytest.raises(DeviceReject, match="its own root keys"):
        walk_root_chain(_fetch_from(only_old), now)

    not_self_signed = {"1.root.json": _dump(_sign(_root(1, k1), k3))}
    with pytest.raises(DeviceReject, match="BadKeyId"):
        walk_root_chain(_fetch_from(not_self_signed), now)

    expired_last = {"1.root.json": _dump(r1),
                    "2.root.json": _dump(_sign(_root(2, k2, "2001-01-01T00:00:00Z"), k1, k2))}
    with pytest.raises(DeviceReject, match="expired"):
        walk_root_chain(_fetch_from(expired_last), now)
    expired_first = {"1.root.json": _dump(_sign(_root(1, k1, "2001-01-01T00:00:00Z"), k1)),
                     "2.root.json": _dump(_sign(_root(2, k2), k1, k2))}
    walk_root_chain(_fetch_from(expired_first), now)  # only the final root is checked for expiry

    bad_type = _root(1, k1)
    bad_type["keys"][k1[2]]["keytype"] = "ECPRIME256V1"
    with pytest.raises(DeviceReject, match="unsupported key type"):
        walk_root_chain(_fetch_from({"1.root.json": _dump(_sign(bad_type, k1))}), now)
    bad_threshold = _root(1, k1)
    bad_threshold["roles"]["snapshot"]["threshold"] = 0
    with pytest.raises(DeviceReject, match="illegal threshold"):
        walk_root_chain(_fetch_from({"1.root.json": _dump(_sign(bad_threshold, k1))}), now)


def test_control_timestamp_formats():
    for bad in ("2030-01-01T00:00:00.000Z", "2030-01-01T00:00:00+00:00", "2030-01-01 00:00:00Z",
                "2030-01-01T00:00:00z", None, 1893456000):
        with pytest.raises(DeviceReject):
            check_expires_format({"signed": {"expires": bad}}, "x")
    check_expires_format({"signed": {"expires": "2030-01-01T00:00:00Z"}}, "x")
    with pytest.raises(DeviceReject, match="expired"):
        check_not_expired({"signed": {"expires": "2020-01-01T00:00:00Z"}}, "x", now_utc())


def test_control_rsa_salt_and_size():
    message = b'{"_type":"Targets"}'
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                        serialization.PublicFormat.SubjectPublicKeyInfo).decode()

    def sign(salt, k=key):
        return base64.b64encode(k.sign(message, padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=salt),
                                       hashes.SHA256())).decode()
    assert verify_with_key("rsa", pem, sign(32), message)
    assert not verify_with_key("rsa", pem, sign(32), message + b" ")
    assert not verify_with_key("rsa", pem, sign(20), message), "salt 20: aktualizr would accept, ota-tuf not"
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    small_pem = small.public_key().public_bytes(serialization.Encoding.PEM,
                                                serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    assert not verify_with_key("rsa", small_pem, sign(32, small), message), "RSA-1024 must not verify"


def test_control_canonical_vectors():
    # reposerver.md §6.6: Ed25519 seed 32 x 0x01, ota-tuf/garage-sign signature over canonical(signed).
    signed = {"_type": "Targets", "expires": "2030-01-01T00:00:00Z", "version": 2, "targets": {"myapp-1.0.0": {
        "hashes": {"sha256": "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"}, "length": 3,
        "custom": {"name": "myapp", "version": "1.0.0", "hardwareIds": ["raspberrypi4-64"], "targetFormat": "BINARY",
                   "uri": None, "cliUploaded": False, "createdAt": "2025-01-01T00:00:00Z",
                   "updatedAt": "2025-01-01T00:00:00Z"}}}}
    expected = (b'{"_type":"Targets","expires":"2030-01-01T00:00:00Z","targets":{"myapp-1.0.0":{"custom":'
                b'{"cliUploaded":false,"createdAt":"2025-01-01T00:00:00Z","hardwareIds":["raspberrypi4-64"],'
                b'"name":"myapp","targetFormat":"BINARY","updatedAt":"2025-01-01T00:00:00Z","uri":null,'
                b'"version":"1.0.0"},"hashes":{"sha256":"2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"'
                b'},"length":3}},"version":2}')
    assert akt_canonical(signed) == expected == tuf_canonical(signed)
    _, pub, kid = _ed25519_key(1)
    assert pub == "8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c"
    assert kid == "fd110d301d2f077de1414b8f99f441b1403fab207b2052fbd2c065e4ee8e7dc2"
    sig = "liuq06sC3BXFkiTVjy96ttZTO5UN52kBeR3hEG3VVzQOSCJf71GnllHp17vmPjHXSUKuFysz3+XPckaUCyi2DQ=="
    assert verify_with_key("ed25519", pub, sig, expected)
    assert not verify_with_key("ed25519", pub, sig, expected.replace(b"myapp", b"myapq", 1))
    # jsoncpp vs circe string escapes
    s = {"k": "\u00e9\U0001F600\x7f\x1f\t\"\\/"}
    assert akt_canonical(s) == b'{"k":"\\u00e9\\ud83d\\ude00\x7f\\u001f\\t\\"\\\\/"}'
    assert tuf_canonical(s) == '{"k":"\u00e9\U0001F600\\u007f\\u001f\\t\\"\\\\/"}'.encode()
    assert non_interop_values(s) != []
    # key order: bytewise (jsoncpp) vs UTF-16 code units (ota-tuf) differ above the BMP
    k = {"\uff01": 1, "\U0001F600": 2}
    assert akt_canonical(k).index(b"ff01") < akt_canonical(k).index(b"ud83d")
    assert tuf_canonical(k).index("\U0001F600".encode()) < tuf_canonical(k).index("\uff01".encode())
    with pytest.raises(ValueError):
        akt_canonical({"x": 1.5})


# --- ota-sign verify agrees with this device ---------------------------------------

def _ota_sign_verify(ota_sign_bin, published, *args):
    """`ota-sign verify <args> --json` (the binaries under test): (exit code, report)."""
    proc = subprocess.run([ota_sign_bin, "verify", *args, "--json"], cwd=str(published.workdir),
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
    return proc.returncode, (json.loads(proc.stdout) if proc.stdout.strip() else None)


def _mirror(tmp_path, published, files):
    """A directory laid out like the repository URL, with the image under targets/."""
    for name, body in files.items():
        (tmp_path / name).write_bytes(body)
    (tmp_path / "targets").mkdir()
    (tmp_path / "targets" / TARGET_NAME).write_bytes(published.image)
    return str(tmp_path)


def test_ota_sign_verify_accepts_what_this_device_accepts(ota_sign_bin, published, device):
    code, report = _ota_sign_verify(ota_sign_bin, published, "--url", published.base, "--hardware-id", HARDWARE_ID)
    assert code == 0, report
    assert report["accepted"] is True and report["installable"] == [TARGET_NAME], report
    code, report = _ota_sign_verify(ota_sign_bin, published, "--credentials", "offline-credentials.zip")
    assert code == 0, report


def test_ota_sign_verify_rejects_what_this_device_rejects(ota_sign_bin, published, device, tmp_path):
    files = _raws(published, device)
    raw = files["targets.json"]
    hwid = b'"' + HARDWARE_ID.encode() + b'"'
    files["targets.json"] = raw.replace(hwid, hwid[:-2] + bytes([hwid[-2] ^ 1]) + b'"')
    with pytest.raises(DeviceReject):
        device_update(_fetch_from(files))
    mirror = _mirror(tmp_path, published, files)
    code, report = _ota_sign_verify(ota_sign_bin, published, "--url", mirror, "--trusted-root", os.path.join(mirror, "1.root.json"))
    assert code == 1, report
    assert {(f["role"], f["rule"]) for f in report["findings"]} >= {("targets", "signatures"), ("targets", "hash")}, \
        report
