//! Keys on PKCS#11 tokens (YubiHSM, Nitrokey, smart cards, cloud HSMs, SoftHSM2).
//!
//! A key is named by an RFC 7512 `pkcs11:` URI: `token=`, `object=` and/or `id=` in the
//! path, `module-path`, `pin-source` and `pin-value` in the query.
//! `OTA_SIGN_PKCS11_MODULE` and `OTA_SIGN_PKCS11_PIN` are the fallbacks for the module
//! and the PIN. The module is loaded at run time (`cryptoki`), so the build has no C
//! dependency. The private key never leaves the token: keys are generated with
//! `CKA_SENSITIVE` true and `CKA_EXTRACTABLE` false, and only the public half is read.
//!
//! Mechanisms: `CKM_SHA256_RSA_PKCS_PSS` (MGF1-SHA256, 32-byte salt), falling back to
//! `CKM_RSA_PKCS_PSS` over a SHA-256 digest computed here; `CKM_EDDSA` for Ed25519.
//! Callers check every signature against the public key before using it
//! ([`crate::keyref::KeyHandle`]).

use crate::crypto::{self, Signer};
use crate::error::{Error, Result};
use crate::keys::{KeyType, PublicKey};
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Function, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::eddsa::{EddsaParams, EddsaSignatureScheme};
use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsPssParams};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, KeyType as CkKeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::{Slot, TokenInfo};
use cryptoki::types::AuthPin;
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use zeroize::Zeroizing;

/// Environment fallback for the module path.
pub const MODULE_ENV: &str = "OTA_SIGN_PKCS11_MODULE";
/// Environment fallback for the user PIN.
pub const PIN_ENV: &str = "OTA_SIGN_PKCS11_PIN";
/// The URI scheme prefix.
pub const SCHEME: &str = "pkcs11:";
/// DER of the Ed25519 OID 1.3.101.112, the `CKA_EC_PARAMS` of an Ed25519 key.
const ED25519_EC_PARAMS: [u8; 5] = [0x06, 0x03, 0x2b, 0x65, 0x70];

/// True when `s` is a `pkcs11:` URI rather than a key name or file.
pub fn is_uri(s: &str) -> bool {
    s.starts_with(SCHEME)
}

/// A parsed RFC 7512 URI. `Debug` and `Display` never show the PIN.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Pkcs11Uri {
    pub token: Option<String>,
    pub serial: Option<String>,
    pub manufacturer: Option<String>,
    pub model: Option<String>,
    pub object: Option<String>,
    pub id: Option<Vec<u8>>,
    pub module_path: Option<PathBuf>,
    pub pin_source: Option<String>,
    pin_value: Option<Zeroizing<String>>,
}

impl fmt::Debug for Pkcs11Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pkcs11Uri({self})")
    }
}

/// Unreserved characters, RFC 7512's `pk11-res-avail` (without `&`, which separates
/// query attributes) and `/` stay as they are; everything else is `%XX`.
fn pct_encode(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&b| {
            if b.is_ascii_alphanumeric() || b"-._~:[]@!$'()*+,=/".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn pct_decode(s: &str, what: &str) -> Result<Vec<u8>> {
    let bad = || {
        Error::Usage(format!(
            "invalid percent-encoding in the pkcs11 URI attribute {what}"
        ))
    };
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b.get(i + 1..i + 3).ok_or_else(bad)?;
            let hex = std::str::from_utf8(hex).map_err(|_| bad())?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| bad())?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Ok(out)
}

fn pct_decode_str(s: &str, what: &str) -> Result<String> {
    String::from_utf8(pct_decode(s, what)?)
        .map_err(|_| Error::Usage(format!("the pkcs11 URI attribute {what} is not UTF-8")))
}

impl Pkcs11Uri {
    /// Parses `pkcs11:token=…;object=…;id=%01?module-path=…&pin-source=…`.
    pub fn parse(text: &str) -> Result<Self> {
        let rest = text.trim().strip_prefix(SCHEME).ok_or_else(|| {
            Error::Usage("a PKCS#11 key reference must start with `pkcs11:`".into())
        })?;
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let mut uri = Pkcs11Uri::default();
        for attr in path.split(';').filter(|a| !a.is_empty()) {
            let (k, v) = attr.split_once('=').ok_or_else(|| {
                Error::Usage(format!(
                    "invalid pkcs11 URI path attribute {attr:?}: use name=value"
                ))
            })?;
            match k {
                "token" => uri.token = Some(pct_decode_str(v, k)?),
                "serial" => uri.serial = Some(pct_decode_str(v, k)?),
                "manufacturer" => uri.manufacturer = Some(pct_decode_str(v, k)?),
                "model" => uri.model = Some(pct_decode_str(v, k)?),
                "object" => uri.object = Some(pct_decode_str(v, k)?),
                "id" => uri.id = Some(pct_decode(v, k)?),
                "type" if matches!(v, "private" | "public") => {}
                "type" => {
                    return Err(Error::Usage(format!(
                        "pkcs11 URI type={v} does not name a key pair: use type=private or leave it out"
                    )))
                }
                k if k.starts_with("library-") || k.starts_with("slot-") => {}
                _ => {
                    return Err(Error::Usage(format!(
                        "unsupported pkcs11 URI attribute {k:?} (supported: token, serial, manufacturer, model, object, id, type)"
                    )))
                }
            }
        }
        for attr in query.split('&').filter(|a| !a.is_empty()) {
            let (k, v) = attr.split_once('=').ok_or_else(|| {
                Error::Usage(format!(
                    "invalid pkcs11 URI query attribute {attr:?}: use name=value"
                ))
            })?;
            match k {
                "module-path" => uri.module_path = Some(PathBuf::from(pct_decode_str(v, k)?)),
                "pin-source" => uri.pin_source = Some(pct_decode_str(v, k)?),
                "pin-value" => uri.pin_value = Some(Zeroizing::new(pct_decode_str(v, k)?)),
                _ => {
                    return Err(Error::Usage(format!(
                        "unsupported pkcs11 URI query attribute {k:?} (supported: module-path, pin-source, pin-value)"
                    )))
                }
            }
        }
        if uri.object.is_none() && uri.id.is_none() {
            return Err(Error::Usage(
                "a pkcs11 key URI needs object=<label> and/or id=<%hex>".into(),
            ));
        }
        Ok(uri)
    }

    /// True when the URI itself carries `pin-value`.
    pub fn has_pin_value(&self) -> bool {
        self.pin_value.is_some()
    }

    /// The same URI without `pin-value`: what aliases and credentials zips store.
    pub fn without_pin(&self) -> Self {
        Pkcs11Uri {
            pin_value: None,
            ..self.clone()
        }
    }

    fn module(&self) -> Result<PathBuf> {
        if let Some(p) = &self.module_path {
            return Ok(p.clone());
        }
        match std::env::var_os(MODULE_ENV) {
            Some(p) if !p.is_empty() => Ok(PathBuf::from(p)),
            _ => Err(Error::key(
                self.to_string(),
                format!("no PKCS#11 module: add ?module-path=/path/to/module.so to the URI or set {MODULE_ENV} (e.g. /usr/lib/softhsm/libsofthsm2.so)"),
            )),
        }
    }

    /// The user PIN: `pin-value`, then the `pin-source` file, then `OTA_SIGN_PKCS11_PIN`.
    fn pin(&self) -> Result<Option<Zeroizing<String>>> {
        if let Some(p) = &self.pin_value {
            return Ok(Some(p.clone()));
        }
        if let Some(src) = &self.pin_source {
            let path = Path::new(src.strip_prefix("file:").unwrap_or(src));
            let text = Zeroizing::new(crate::fsutil::read_to_string(path)?);
            let pin = text.trim_end_matches(['\r', '\n']);
            return Ok(Some(Zeroizing::new(pin.to_string())));
        }
        Ok(std::env::var(PIN_ENV).ok().map(Zeroizing::new))
    }
}

impl fmt::Display for Pkcs11Uri {
    /// The URI without the PIN (`pin-value` is never printed).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut path = Vec::new();
        let mut add = |k: &str, v: Option<&[u8]>| {
            if let Some(v) = v {
                path.push(format!("{k}={}", pct_encode(v)));
            }
        };
        add("token", self.token.as_deref().map(str::as_bytes));
        add("serial", self.serial.as_deref().map(str::as_bytes));
        add(
            "manufacturer",
            self.manufacturer.as_deref().map(str::as_bytes),
        );
        add("model", self.model.as_deref().map(str::as_bytes));
        add("object", self.object.as_deref().map(str::as_bytes));
        if let Some(id) = &self.id {
            path.push(format!(
                "id={}",
                id.iter().map(|b| format!("%{b:02X}")).collect::<String>()
            ));
        }
        let mut query = Vec::new();
        if let Some(m) = &self.module_path {
            query.push(format!(
                "module-path={}",
                pct_encode(m.to_string_lossy().as_bytes())
            ));
        }
        if let Some(s) = &self.pin_source {
            query.push(format!("pin-source={}", pct_encode(s.as_bytes())));
        }
        write!(f, "{SCHEME}{}", path.join(";"))?;
        if !query.is_empty() {
            write!(f, "?{}", query.join("&"))?;
        }
        Ok(())
    }
}

/// One initialised context per module for the whole process: a second
/// `C_Initialize` on the same module fails, and several keys may share a token.
fn context(module: &Path, uri: &Pkcs11Uri) -> Result<Pkcs11> {
    static MODULES: OnceLock<Mutex<HashMap<PathBuf, Pkcs11>>> = OnceLock::new();
    let mut map = MODULES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(ctx) = map.get(module) {
        return Ok(ctx.clone());
    }
    let ctx = Pkcs11::new(module).map_err(|e| {
        Error::key(
            uri.to_string(),
            format!(
                "cannot load the PKCS#11 module {}: {e}. Check module-path / {MODULE_ENV} (is the package installed?)",
                module.display()
            ),
        )
    })?;
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => return Err(token_error(uri, e)),
    }
    map.insert(module.to_path_buf(), ctx.clone());
    Ok(ctx)
}

/// Turns a cryptoki error into one that says what to do next.
fn token_error(uri: &Pkcs11Uri, e: CkError) -> Error {
    let what = uri.to_string();
    let message = match &e {
        CkError::Pkcs11(RvError::PinIncorrect, _) => format!(
            "wrong PIN for token {:?} (CKR_PIN_INCORRECT); nothing was signed or written. Check {PIN_ENV} or the pin-source file; the token locks after too many wrong PINs",
            uri.token.as_deref().unwrap_or("?")
        ),
        CkError::Pkcs11(RvError::PinLocked, _) => "the token's user PIN is locked (CKR_PIN_LOCKED): unlock it with the security officer PIN using the token vendor's tool, then retry".to_string(),
        CkError::Pkcs11(RvError::PinExpired, _) => "the token's user PIN has expired (CKR_PIN_EXPIRED): set a new PIN with the token vendor's tool".to_string(),
        CkError::Pkcs11(RvError::UserPinNotInitialized, _) => "the token has no user PIN yet (CKR_USER_PIN_NOT_INITIALIZED): initialise the token first".to_string(),
        CkError::Pkcs11(RvError::MechanismInvalid | RvError::MechanismParamInvalid, f) => format!(
            "the token does not support the mechanism needed ({f}: CKR_MECHANISM_INVALID); RSA keys need CKM_SHA256_RSA_PKCS_PSS or CKM_RSA_PKCS_PSS, Ed25519 keys CKM_EDDSA"
        ),
        CkError::Pkcs11(RvError::TokenNotPresent | RvError::DeviceRemoved, _) => "the token is not present (was it unplugged?)".to_string(),
        CkError::Pkcs11(RvError::KeyFunctionNotPermitted, _) => "the key may not sign (CKA_SIGN is false)".to_string(),
        CkError::Pkcs11(rv, f) => format!("{f} failed: {rv}"),
        other => format!("PKCS#11 error: {other}"),
    };
    Error::key(what, message)
}

/// The one token (slot) whose label, serial, manufacturer and model match the URI.
fn find_token(ctx: &Pkcs11, uri: &Pkcs11Uri, module: &Path) -> Result<(Slot, TokenInfo)> {
    let err = |e| token_error(uri, e);
    let want = |w: &Option<String>, have: &str| w.as_deref().map_or(true, |w| w == have.trim_end());
    let mut matches = Vec::new();
    for slot in ctx.get_slots_with_token().map_err(err)? {
        let info = ctx.get_token_info(slot).map_err(err)?;
        if want(&uri.token, info.label())
            && want(&uri.serial, info.serial_number())
            && want(&uri.manufacturer, info.manufacturer_id())
            && want(&uri.model, info.model())
        {
            matches.push((slot, info));
        }
    }
    match matches.len() {
        1 => Ok(matches.remove(0)),
        0 => Err(Error::key(
            uri.to_string(),
            format!("no token matches in module {} (check token=, and that the token is plugged in and initialised)", module.display()),
        )),
        n => Err(Error::key(
            uri.to_string(),
            format!("{n} tokens match: add token=<label> (or serial=) to the URI"),
        )),
    }
}

/// Logs the user in: with the PIN, or through the reader's PIN pad when it has one.
fn login(session: &Session, info: &TokenInfo, uri: &Pkcs11Uri) -> Result<()> {
    let pin = uri.pin()?;
    let result = match (&pin, info.protected_authentication_path()) {
        (Some(p), _) => session.login(UserType::User, Some(&AuthPin::from(p.as_str()))),
        (None, true) => session.login(UserType::User, None),
        (None, false) => {
            return Err(Error::key(
                uri.to_string(),
                format!("the token needs a PIN: set {PIN_ENV}, or add ?pin-source=/path/to/pin-file to the URI"),
            ))
        }
    };
    match result {
        Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(()),
        Err(e) => Err(token_error(uri, e)),
    }
}

/// An open, logged-in session on the token the URI names.
struct TokenSession {
    session: Session,
    slot: Slot,
    ctx: Pkcs11,
    uri: Pkcs11Uri,
}

impl TokenSession {
    fn open(uri: &Pkcs11Uri, read_write: bool) -> Result<Self> {
        let module = uri.module()?;
        let ctx = context(&module, uri)?;
        let (slot, info) = find_token(&ctx, uri, &module)?;
        if info.user_pin_locked() {
            return Err(token_error(
                uri,
                CkError::Pkcs11(RvError::PinLocked, Function::Login),
            ));
        }
        let session = if read_write {
            ctx.open_rw_session(slot)
        } else {
            ctx.open_ro_session(slot)
        }
        .map_err(|e| token_error(uri, e))?;
        if info.login_required() {
            login(&session, &info, uri)?;
        }
        Ok(TokenSession {
            session,
            slot,
            ctx,
            uri: uri.clone(),
        })
    }

    fn err(&self, e: CkError) -> Error {
        token_error(&self.uri, e)
    }

    fn template(&self, class: ObjectClass) -> Vec<Attribute> {
        let mut t = vec![Attribute::Class(class)];
        if let Some(label) = &self.uri.object {
            t.push(Attribute::Label(label.as_bytes().to_vec()));
        }
        if let Some(id) = &self.uri.id {
            t.push(Attribute::Id(id.clone()));
        }
        t
    }

    /// The single object of `class` the URI names, if any.
    fn find(&self, class: ObjectClass) -> Result<Option<ObjectHandle>> {
        let mut found = self
            .session
            .find_objects(&self.template(class))
            .map_err(|e| self.err(e))?;
        match found.len() {
            0 => Ok(None),
            1 => Ok(found.pop()),
            n => Err(Error::key(
                self.uri.to_string(),
                format!("{n} objects match: make the URI unique with id= or object="),
            )),
        }
    }

    fn mechanisms(&self) -> Result<Vec<MechanismType>> {
        self.ctx
            .get_mechanism_list(self.slot)
            .map_err(|e| self.err(e))
    }

    fn attributes(&self, obj: ObjectHandle, types: &[AttributeType]) -> Result<Vec<Attribute>> {
        self.session
            .get_attributes(obj, types)
            .map_err(|e| self.err(e))
    }

    /// The public key of the pair: from the public object, else (RSA) the private one.
    fn public_key(&self, private: ObjectHandle) -> Result<(PublicKey, CkKeyType)> {
        let public = self.find(ObjectClass::PUBLIC_KEY)?;
        let mut key_type = None;
        let (mut modulus, mut exponent, mut point) = (None, None, None);
        for obj in public.into_iter().chain(std::iter::once(private)) {
            for a in self.attributes(
                obj,
                &[
                    AttributeType::KeyType,
                    AttributeType::Modulus,
                    AttributeType::PublicExponent,
                    AttributeType::EcPoint,
                ],
            )? {
                match a {
                    Attribute::KeyType(t) => key_type = key_type.or(Some(t)),
                    Attribute::Modulus(m) => modulus = modulus.or(Some(m)),
                    Attribute::PublicExponent(e) => exponent = exponent.or(Some(e)),
                    Attribute::EcPoint(p) => point = point.or(Some(p)),
                    _ => {}
                }
            }
        }
        let uri = self.uri.to_string();
        match key_type {
            Some(CkKeyType::RSA) => {
                let (Some(n), Some(e)) = (modulus, exponent) else {
                    return Err(Error::key(
                        uri,
                        "the token does not reveal the RSA public key (CKA_MODULUS)",
                    ));
                };
                let key = PublicKey::rsa_from_pkcs1(&rsa_public_der(&n, &e))
                    .map_err(|e| Error::key(uri, e.to_string()))?;
                Ok((key, CkKeyType::RSA))
            }
            Some(CkKeyType::EC_EDWARDS) => {
                let p = point.ok_or_else(|| {
                    Error::key(
                        uri.clone(),
                        "no public key object with CKA_EC_POINT next to the Ed25519 private key",
                    )
                })?;
                let raw: [u8; 32] = match p.as_slice() {
                    [0x04, 0x20, rest @ ..] if rest.len() == 32 => rest.try_into().ok(),
                    rest if rest.len() == 32 => rest.try_into().ok(),
                    _ => None,
                }
                .ok_or_else(|| Error::key(uri.clone(), "CKA_EC_POINT is not a 32-byte Ed25519 key (only Ed25519 Edwards keys are supported)"))?;
                Ok((PublicKey::ed25519(raw), CkKeyType::EC_EDWARDS))
            }
            other => Err(Error::key(
                uri,
                format!("unsupported key type {other:?} on the token: use RSA or Ed25519 keys"),
            )),
        }
    }
}

/// PKCS#1 `RSAPublicKey` DER from the big-endian modulus and exponent.
fn rsa_public_der(n: &[u8], e: &[u8]) -> Vec<u8> {
    fn len(out: &mut Vec<u8>, l: usize) {
        if l < 0x80 {
            out.push(l as u8);
        } else {
            let bytes: Vec<u8> = l
                .to_be_bytes()
                .into_iter()
                .skip_while(|b| *b == 0)
                .collect();
            out.push(0x80 | bytes.len() as u8);
            out.extend(bytes);
        }
    }
    fn int(out: &mut Vec<u8>, v: &[u8]) {
        let v: Vec<u8> = v.iter().copied().skip_while(|b| *b == 0).collect();
        let pad = v.first().map_or(true, |b| b & 0x80 != 0);
        out.push(0x02);
        len(out, v.len() + pad as usize);
        if pad {
            out.push(0);
        }
        out.extend(v);
    }
    let mut body = Vec::new();
    int(&mut body, n);
    int(&mut body, e);
    let mut out = vec![0x30];
    len(&mut out, body.len());
    out.extend(body);
    out
}

/// A private key on a token, ready to sign. Dropping it closes its session.
pub struct TokenKey {
    session: TokenSession,
    key: ObjectHandle,
    public: PublicKey,
    mechanism: TokenMechanism,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TokenMechanism {
    Sha256RsaPss,
    RsaPssOverDigest,
    Eddsa,
}

impl fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "TokenKey({} {} via {:?})",
            self.session.uri,
            self.public.key_id(),
            self.mechanism
        )
    }
}

/// What the token says about a private key's protection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Protection {
    pub sensitive: bool,
    pub extractable: bool,
}

impl TokenKey {
    /// Opens the private key the URI names and picks the signing mechanism.
    pub fn open(uri: &Pkcs11Uri) -> Result<Self> {
        let session = TokenSession::open(uri, false)?;
        let key = session.find(ObjectClass::PRIVATE_KEY)?.ok_or_else(|| {
            Error::key(
                uri.to_string(),
                "no private key with this object=/id= on the token (list them with `pkcs11-tool --module <module> --login --list-objects`)",
            )
        })?;
        let (public, key_type) = session.public_key(key)?;
        let available = session.mechanisms()?;
        let mechanism = if key_type == CkKeyType::RSA {
            if available.contains(&MechanismType::SHA256_RSA_PKCS_PSS) {
                TokenMechanism::Sha256RsaPss
            } else if available.contains(&MechanismType::RSA_PKCS_PSS) {
                TokenMechanism::RsaPssOverDigest
            } else {
                return Err(unsupported(
                    uri,
                    "CKM_SHA256_RSA_PKCS_PSS or CKM_RSA_PKCS_PSS",
                ));
            }
        } else if available.contains(&MechanismType::EDDSA) {
            TokenMechanism::Eddsa
        } else {
            return Err(unsupported(uri, "CKM_EDDSA"));
        };
        let token_key = TokenKey {
            session,
            key,
            public,
            mechanism,
        };
        let p = token_key.protection()?;
        if p.extractable || !p.sensitive {
            log::warn!(
                "the private key {} can leave the token (CKA_EXTRACTABLE {}, CKA_SENSITIVE {}); generate keys with `ota-sign key generate --pkcs11` to keep them on the token",
                uri, p.extractable, p.sensitive
            );
        }
        Ok(token_key)
    }

    /// The public half, read from the token.
    pub fn public(&self) -> &PublicKey {
        &self.public
    }

    /// `CKA_SENSITIVE` and `CKA_EXTRACTABLE` of the private key.
    pub fn protection(&self) -> Result<Protection> {
        let mut p = Protection {
            sensitive: false,
            extractable: true,
        };
        for a in self.session.attributes(
            self.key,
            &[AttributeType::Sensitive, AttributeType::Extractable],
        )? {
            match a {
                Attribute::Sensitive(s) => p.sensitive = s,
                Attribute::Extractable(x) => p.extractable = x,
                _ => {}
            }
        }
        Ok(p)
    }

    fn raw_sign(&self, message: &[u8]) -> Result<Vec<u8>> {
        let params = PkcsPssParams {
            hash_alg: MechanismType::SHA256,
            mgf: PkcsMgfType::MGF1_SHA256,
            s_len: 32u64.into(),
        };
        let digest;
        let (mechanism, data): (Mechanism, &[u8]) = match self.mechanism {
            TokenMechanism::Sha256RsaPss => (Mechanism::Sha256RsaPkcsPss(params), message),
            TokenMechanism::RsaPssOverDigest => {
                digest = crypto::sha256(message);
                (Mechanism::RsaPkcsPss(params), &digest)
            }
            TokenMechanism::Eddsa => (
                Mechanism::Eddsa(EddsaParams::new(EddsaSignatureScheme::Pure)),
                message,
            ),
        };
        self.session
            .session
            .sign(&mechanism, self.key, data)
            .map_err(|e| self.session.err(e))
    }
}

fn unsupported(uri: &Pkcs11Uri, needed: &str) -> Error {
    Error::key(
        uri.to_string(),
        format!(
            "the token does not offer {needed}, which this key type needs (unsupported mechanism)"
        ),
    )
}

impl Signer for TokenKey {
    /// Signs on the token; RSA signatures shorter than the modulus are left-padded.
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>> {
        let sig = self.raw_sign(message)?;
        fit_signature(&self.public, sig).map_err(|m| Error::key(self.session.uri.to_string(), m))
    }
}

/// RSA signatures come back as integers and some tokens drop leading zero bytes:
/// left-pad to the modulus length. Anything longer, or an Ed25519 signature that is
/// not 64 bytes, is an error.
fn fit_signature(public: &PublicKey, sig: Vec<u8>) -> std::result::Result<Vec<u8>, String> {
    let rsa = public.keytype() == KeyType::Rsa;
    let expected = if rsa {
        public.rsa_bits().unwrap_or(0).div_ceil(8)
    } else {
        64
    };
    if sig.len() > expected || (!rsa && sig.len() != expected) {
        return Err(format!(
            "the token returned a {}-byte signature; {expected} bytes were expected",
            sig.len()
        ));
    }
    let mut padded = vec![0u8; expected - sig.len()];
    padded.extend_from_slice(&sig);
    Ok(padded)
}

/// Creates a key pair on the token (`CKA_TOKEN`, `CKA_SENSITIVE`, not extractable) and
/// returns the URI that names it (with a fresh random `id=` when none was given).
/// Refuses to touch a token that already holds an object the URI names.
pub fn generate(uri: &Pkcs11Uri, keytype: KeyType, bits: Option<usize>) -> Result<Pkcs11Uri> {
    let mut uri = uri.clone();
    let session = TokenSession::open(&uri, true)?;
    for class in [ObjectClass::PRIVATE_KEY, ObjectClass::PUBLIC_KEY] {
        if session.find(class)?.is_some() {
            return Err(Error::key(
                uri.to_string(),
                "the token already holds a key with this object=/id=: choose another label, or use `ota-sign key import --pkcs11` for an existing key",
            ));
        }
    }
    if uri.id.is_none() {
        let mut id = vec![0u8; 16];
        crypto::fill_random(&mut id)?;
        uri.id = Some(id);
    }
    let label = uri.object.clone().unwrap_or_else(|| "ota-sign".into());
    let (mechanism, public, private) = key_pair_templates(
        keytype,
        bits,
        label.as_bytes(),
        uri.id.as_deref().unwrap_or_default(),
    )?;
    session
        .session
        .generate_key_pair(&mechanism, &public, &private)
        .map_err(|e| session.err(e))?;
    drop(session);
    // Read it back through the normal path: the mechanism must work and the key must
    // be protected as asked, or it is removed again.
    if let Err(e) = check_generated(&uri, keytype) {
        let _ = destroy(&uri);
        return Err(e);
    }
    Ok(uri.without_pin())
}

/// Templates for a token key pair used only to sign: SoftHSM2 and others default
/// decrypt/unwrap/derive to true, so everything else is switched off.
fn key_pair_templates(
    keytype: KeyType,
    bits: Option<usize>,
    label: &[u8],
    id: &[u8],
) -> Result<(Mechanism<'static>, Vec<Attribute>, Vec<Attribute>)> {
    let bits = crate::keys::checked_key_size(keytype, bits)?;
    let common = [
        Attribute::Token(true),
        Attribute::Label(label.to_vec()),
        Attribute::Id(id.to_vec()),
    ];
    let mut public = vec![
        Attribute::Verify(true),
        Attribute::Private(false),
        Attribute::Encrypt(false),
        Attribute::Wrap(false),
    ];
    let mut private = vec![
        Attribute::Sign(true),
        Attribute::Decrypt(false),
        Attribute::Unwrap(false),
        Attribute::Derive(false),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
    ];
    public.extend(common.clone());
    private.extend(common);
    let mechanism = if keytype == KeyType::Rsa {
        public.push(Attribute::ModulusBits((bits as u64).into()));
        public.push(Attribute::PublicExponent(vec![0x01, 0x00, 0x01]));
        Mechanism::RsaPkcsKeyPairGen
    } else {
        public.push(Attribute::EcParams(ED25519_EC_PARAMS.to_vec()));
        Mechanism::EccEdwardsKeyPairGen
    };
    Ok((mechanism, public, private))
}

/// A freshly generated key: sensitive, not extractable, and its test signature verifies.
fn check_generated(uri: &Pkcs11Uri, keytype: KeyType) -> Result<()> {
    let key = TokenKey::open(uri)?;
    let p = key.protection()?;
    if p.extractable || !p.sensitive {
        return Err(Error::key(
            uri.to_string(),
            "the token did not keep the new key sensitive and non-extractable",
        ));
    }
    let probe = b"ota-sign key check";
    let sig = base64_std(&crypto::Signer::sign(&key, probe)?);
    if !key.public().verify(keytype.signature_method(), probe, &sig) {
        return Err(Error::key(
            uri.to_string(),
            "the token's test signature does not verify",
        ));
    }
    Ok(())
}

fn base64_std(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// Removes the key pair the URI names (used to undo a failed generation).
fn destroy(uri: &Pkcs11Uri) -> Result<()> {
    let session = TokenSession::open(uri, true)?;
    for class in [ObjectClass::PRIVATE_KEY, ObjectClass::PUBLIC_KEY] {
        if let Some(obj) = session.find(class)? {
            session
                .session
                .destroy_object(obj)
                .map_err(|e| session.err(e))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_round_trip_and_pin_hidden() {
        let u = Pkcs11Uri::parse(
            "pkcs11:token=My%20Token;object=targets;id=%01%A2?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-value=1234",
        )
        .unwrap();
        assert_eq!(u.token.as_deref(), Some("My Token"));
        assert_eq!(u.object.as_deref(), Some("targets"));
        assert_eq!(u.id.as_deref(), Some(&[0x01, 0xa2][..]));
        assert!(u.has_pin_value());
        let shown = u.to_string();
        assert_eq!(
            shown,
            "pkcs11:token=My%20Token;object=targets;id=%01%A2?module-path=/usr/lib/softhsm/libsofthsm2.so"
        );
        assert!(!format!("{u:?}").contains("1234"));
        assert_eq!(Pkcs11Uri::parse(&shown).unwrap(), u.without_pin());
    }

    #[test]
    fn uri_errors() {
        assert!(Pkcs11Uri::parse("pkcs11:token=t").is_err());
        assert!(Pkcs11Uri::parse("pkcs11:object=x;bogus=1").is_err());
        assert!(Pkcs11Uri::parse("pkcs11:object=x?module-name=y").is_err());
        assert!(Pkcs11Uri::parse("pkcs11:object=%4").is_err());
        assert!(Pkcs11Uri::parse("pkcs11:type=cert;object=x").is_err());
    }

    #[test]
    fn short_rsa_signatures_are_left_padded() {
        let key = crate::keys::PrivateKey::generate(KeyType::Rsa, Some(2048)).unwrap();
        let message = b"left-pad";
        // Find a signature with a leading zero byte, as a token might return it stripped.
        let signer = key.signing_key().unwrap();
        let full = (0..4000)
            .map(|_| signer.sign(message).unwrap())
            .find(|s| s[0] == 0)
            .expect("one in 256 signatures starts with a zero byte");
        let stripped = full[1..].to_vec();
        let fitted = fit_signature(key.public(), stripped).unwrap();
        assert_eq!(fitted, full);
        assert!(key
            .public()
            .verify("rsassa-pss-sha256", message, &base64_std(&fitted)));
        assert!(fit_signature(key.public(), vec![1u8; 257]).is_err());
        let ed = crate::keys::PrivateKey::generate(KeyType::Ed25519, None).unwrap();
        assert!(fit_signature(ed.public(), vec![1u8; 63]).is_err());
    }

    #[test]
    fn token_errors_say_what_to_do() {
        let uri = Pkcs11Uri::parse("pkcs11:token=t;object=o?pin-value=5550123").unwrap();
        let msg = |rv| token_error(&uri, CkError::Pkcs11(rv, Function::Login)).to_string();
        assert!(msg(RvError::PinIncorrect).contains("wrong PIN"));
        assert!(msg(RvError::PinLocked).contains("locked"));
        assert!(msg(RvError::MechanismInvalid).contains("does not support the mechanism"));
        assert!(msg(RvError::TokenNotPresent).contains("not present"));
        for rv in [
            RvError::PinIncorrect,
            RvError::PinLocked,
            RvError::GeneralError,
        ] {
            assert!(!msg(rv).contains("5550123"));
        }
    }

    /// The fallback mechanism (CKM_RSA_PKCS_PSS over a digest computed here) on a
    /// SoftHSM2 token; fails (never skips) when SoftHSM2 is not installed.
    #[test]
    fn rsa_pss_over_a_local_digest_on_softhsm() {
        let module = [
            "/usr/lib/softhsm/libsofthsm2.so",
            "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
        ]
        .into_iter()
        .find(|m| Path::new(m).exists())
        .expect("SoftHSM2 is not installed: apt-get install softhsm2");
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("t")).unwrap();
        let conf = dir.path().join("softhsm2.conf");
        let tokens = dir.path().join("t");
        std::fs::write(
            &conf,
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\n",
                tokens.display()
            ),
        )
        .unwrap();
        // Only this test loads SoftHSM2 in the unit-test process.
        std::env::set_var("SOFTHSM2_CONF", &conf);
        let init = std::process::Command::new("softhsm2-util")
            .args([
                "--init-token",
                "--free",
                "--label",
                "unit",
                "--so-pin",
                "1111",
                "--pin",
                "2222",
            ])
            .output()
            .expect("softhsm2-util");
        assert!(
            init.status.success(),
            "{}",
            String::from_utf8_lossy(&init.stderr)
        );
        let text = format!("pkcs11:token=unit;object=fallback?module-path={module}&pin-value=2222");
        let uri = Pkcs11Uri::parse(&text).unwrap();
        let uri = generate(&uri, KeyType::Rsa, Some(2048)).unwrap();
        let uri = Pkcs11Uri {
            pin_value: Some(Zeroizing::new("2222".into())),
            ..uri
        };
        let mut key = TokenKey::open(&uri).unwrap();
        assert_eq!(key.mechanism, TokenMechanism::Sha256RsaPss);
        key.mechanism = TokenMechanism::RsaPssOverDigest;
        for _ in 0..4 {
            let sig = Signer::sign(&key, b"fallback").unwrap();
            assert_eq!(sig.len(), 256);
            assert!(key
                .public()
                .verify("rsassa-pss-sha256", b"fallback", &base64_std(&sig)));
            assert!(!key
                .public()
                .verify("rsassa-pss-sha256", b"fallbacK", &base64_std(&sig)));
        }
        let p = key.protection().unwrap();
        assert!(p.sensitive && !p.extractable);
    }

    #[test]
    fn rsa_public_der_encoding() {
        // Leading zeros dropped, a zero added before a set high bit, short lengths.
        assert_eq!(
            rsa_public_der(&[0x00, 0x80, 0x01, 0x02], &[0x01, 0x00, 0x01]),
            [0x30, 0x0b, 0x02, 0x04, 0x00, 0x80, 0x01, 0x02, 0x02, 0x03, 0x01, 0x00, 0x01]
        );
        // A 2048-bit modulus uses long-form lengths, and PublicKey accepts the result.
        let mut n = vec![0xc5u8; 256];
        n[255] = 0x01;
        let der = rsa_public_der(&n, &[0x01, 0x00, 0x01]);
        assert_eq!(
            der[..9],
            [0x30, 0x82, 0x01, 0x0a, 0x02, 0x82, 0x01, 0x01, 0x00]
        );
        assert_eq!(
            PublicKey::rsa_from_pkcs1(&der).unwrap().rsa_bits(),
            Some(2048)
        );
    }
}
