//! garage-sign's local repository (reference/garage-sign.md §3):
//!
//! ```text
//! <home>/<repo>/            0700
//!   config.json             0600 (may hold the OAuth client secret)
//!   credentials.zip         0600 (verbatim copy of the init zip)
//!   client_auth.p12 server.p12   (mutual TLS only)
//!   keys/                   0700; <name>.pub, <name>.sec (0600)
//!   roles/                  0700; root.json, targets.json, targets.json.checksum
//!   roles/unsigned/         0700; root.json, targets.json (the `signed` parts)
//! ```
//! Role files are written in circe's `spaces2` layout with ` : ` separators.

use crate::canonical::{to_pretty, write_pretty_parts};
use crate::credentials::RepoConfig;
use crate::error::{Error, Result};
use crate::fsutil::{self, PRIVATE_FILE, PUBLIC_FILE};
use crate::keys::{PrivateKey, PublicKey};
use crate::metadata::{RootRole, SignedPayload, TargetsRole};
use crate::schema::Sha256;
use serde_json::Value;
use std::path::{Path, PathBuf};

pub struct TufRepo {
    dir: PathBuf,
}

/// Key and repository names become file names: keep them to one path component.
pub fn check_name(kind: &str, name: &str) -> Result<()> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') || name.contains('\0') {
        return Err(Error::Usage(format!(
            "invalid {kind} name {name:?}: it must be a plain file name"
        )));
    }
    Ok(())
}

impl TufRepo {
    pub fn new(home: &Path, name: &str) -> Result<Self> {
        check_name("repository", name)?;
        Ok(TufRepo {
            dir: home.join(name),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.join("config.json")
    }
    pub fn credentials_path(&self) -> PathBuf {
        self.dir.join("credentials.zip")
    }
    pub fn keys_dir(&self) -> PathBuf {
        self.dir.join("keys")
    }
    pub fn roles_dir(&self) -> PathBuf {
        self.dir.join("roles")
    }
    pub fn unsigned_dir(&self) -> PathBuf {
        self.dir.join("roles").join("unsigned")
    }
    pub fn signed_root_path(&self) -> PathBuf {
        self.roles_dir().join("root.json")
    }
    pub fn signed_targets_path(&self) -> PathBuf {
        self.roles_dir().join("targets.json")
    }
    pub fn checksum_path(&self) -> PathBuf {
        self.roles_dir().join("targets.json.checksum")
    }
    pub fn unsigned_root_path(&self) -> PathBuf {
        self.unsigned_dir().join("root.json")
    }
    pub fn unsigned_targets_path(&self) -> PathBuf {
        self.unsigned_dir().join("targets.json")
    }

    /// Fails unless `init` made this repository.
    pub fn ensure_exists(&self) -> Result<()> {
        if self.dir.is_dir() {
            Ok(())
        } else {
            Err(Error::Other(format!(
                "repository {} does not exist: run `ota-sign init --repo <name> --credentials credentials.zip` first (and check --home-dir)",
                self.dir.display()
            )))
        }
    }

    /// Creates `<repo>`, `roles` and `roles/unsigned`, 0700. Refuses an existing repo.
    pub fn create_dirs(&self) -> Result<()> {
        if self.config_path().exists() {
            return Err(Error::Other(format!(
                "RepoAlreadyInitialized: {} already exists",
                self.config_path().display()
            )));
        }
        if self.dir.exists() {
            return Err(Error::Other(format!(
                "{} already exists; remove it or choose another --repo name",
                self.dir.display()
            )));
        }
        fsutil::create_private_dir(&self.dir)?;
        fsutil::create_private_dir(&self.roles_dir())?;
        fsutil::create_private_dir(&self.unsigned_dir())
    }

    pub fn read_config(&self) -> Result<RepoConfig> {
        let path = self.config_path();
        if !path.exists() {
            return Err(Error::Other(format!(
                "{} is missing: run `ota-sign init` for this repository first",
                path.display()
            )));
        }
        let bytes = fsutil::read_secret(&path)?;
        let v: Value = serde_json::from_slice(&bytes).map_err(|e| {
            Error::invalid(path.display().to_string(), format!("invalid JSON: {e}"))
        })?;
        let config = RepoConfig::from_json(&v, &path.display().to_string());
        crate::credentials::wipe(v);
        config
    }

    /// config.json may hold the OAuth2 client secret: it is built in a zeroizing buffer.
    pub fn write_config(&self, config: &RepoConfig) -> Result<()> {
        let value = config.to_json();
        let text = zeroize::Zeroizing::new(to_pretty(&value));
        crate::credentials::wipe(value);
        fsutil::write_atomic(&self.config_path(), text.as_bytes(), PRIVATE_FILE)
    }

    fn key_path(&self, name: &str, ext: &str) -> Result<PathBuf> {
        check_name("key", name)?;
        Ok(self.keys_dir().join(format!("{name}.{ext}")))
    }

    pub fn write_key_pair(&self, name: &str, key: &PrivateKey) -> Result<()> {
        write_key_pair(&self.keys_dir(), name, key)
    }

    pub fn write_public_key(&self, name: &str, key: &PublicKey) -> Result<()> {
        fsutil::create_private_dir(&self.keys_dir())?;
        fsutil::write_atomic(
            &self.key_path(name, "pub")?,
            to_pretty(&key.to_json()).as_bytes(),
            PUBLIC_FILE,
        )
    }

    pub fn has_private_key(&self, name: &str) -> bool {
        self.key_path(name, "sec")
            .map(|p| p.exists())
            .unwrap_or(false)
    }

    pub fn read_public_key(&self, name: &str) -> Result<PublicKey> {
        read_public_key_file(&self.key_path(name, "pub")?)
    }

    /// Reads `<name>.sec`, checked against `<name>.pub` when that exists.
    pub fn read_private_key(&self, name: &str) -> Result<PrivateKey> {
        read_private_key_pair(&self.keys_dir(), name)
    }

    pub fn read_signed_root(&self) -> Result<SignedPayload> {
        read_signed(
            &self.signed_root_path(),
            "run `ota-sign root pull` or init from a credentials.zip that contains root.json",
        )
    }

    pub fn write_signed_root(&self, root: &SignedPayload) -> Result<()> {
        write_role(
            &self.signed_root_path(),
            &crate::error::to_json_value(root, "root.json")?,
        )
    }

    pub fn read_signed_targets(&self) -> Result<SignedPayload> {
        read_signed(
            &self.signed_targets_path(),
            "run `ota-sign targets sign` first",
        )
    }

    /// Writes the canonical signed document in garage-sign's file layout.
    pub fn write_signed_targets(&self, targets: &SignedPayload) -> Result<()> {
        write_role(
            &self.signed_targets_path(),
            &crate::error::to_json_value(targets, "targets.json")?,
        )
    }

    /// The file that will replace roles/targets.json once committed (the caller writes
    /// it in garage-sign's layout, see `targets sign`).
    pub fn create_signed_targets_file(&self) -> Result<fsutil::AtomicFile> {
        let path = self.signed_targets_path();
        if let Some(dir) = path.parent() {
            fsutil::create_private_dir(dir)?;
        }
        fsutil::AtomicFile::create(&path, PUBLIC_FILE)
    }

    /// The unsigned root; falls back to the `signed` part of roles/root.json.
    pub fn read_unsigned_root(&self) -> Result<RootRole> {
        let path = self.unsigned_root_path();
        if path.exists() {
            let v: Value = fsutil::read_json(&path)?;
            return RootRole::from_signed(&v, &path.display().to_string());
        }
        let signed = self.read_signed_root()?;
        RootRole::from_signed(
            &signed.signed,
            &self.signed_root_path().display().to_string(),
        )
    }

    pub fn write_unsigned_root(&self, root: &RootRole) -> Result<()> {
        write_role(&self.unsigned_root_path(), &root.to_signed()?)
    }

    pub fn read_unsigned_targets(&self) -> Result<TargetsRole> {
        let path = self.unsigned_targets_path();
        if !path.exists() {
            return Err(Error::Other(format!(
                "{} is missing: run `ota-sign targets pull` (or `targets init`) first",
                path.display()
            )));
        }
        TargetsRole::from_vec(fsutil::read(&path)?, &path.display().to_string())
    }

    pub fn write_unsigned_targets(&self, targets: &TargetsRole) -> Result<()> {
        let path = self.unsigned_targets_path();
        if let Some(dir) = path.parent() {
            fsutil::create_private_dir(dir)?;
        }
        let canonical = targets.canonical()?;
        fsutil::write_atomic_with(&path, PUBLIC_FILE, |w| {
            write_pretty_parts(w, &[canonical.as_bytes()])
        })
    }

    pub fn read_checksum(&self) -> Result<Option<Sha256>> {
        let path = self.checksum_path();
        if !path.exists() {
            return Ok(None);
        }
        let s = fsutil::read_to_string(&path)?;
        Sha256::parse(s.trim()).map(Some).map_err(|e| {
            Error::invalid(
                path.display().to_string(),
                format!("{e}; run `targets pull` again"),
            )
        })
    }

    /// 64 hex characters, no newline, as garage-sign writes it.
    pub fn write_checksum(&self, checksum: &str) -> Result<()> {
        fsutil::create_private_dir(&self.roles_dir())?;
        fsutil::write_atomic(&self.checksum_path(), checksum.as_bytes(), PUBLIC_FILE)
    }
}

/// Writes `<dir>/<name>.pub`, then `<dir>/<name>.sec` (0600); `dir` becomes 0700.
/// The public half goes first: a kill in between leaves a lone `.pub` (harmless, and
/// overwritten by the next attempt), never a `.sec` that nothing can check.
pub fn write_key_pair(dir: &Path, name: &str, key: &PrivateKey) -> Result<()> {
    check_name("key", name)?;
    fsutil::create_private_dir(dir)?;
    fsutil::write_atomic(
        &dir.join(format!("{name}.pub")),
        key.to_pub_file().as_bytes(),
        PUBLIC_FILE,
    )?;
    fsutil::write_atomic(
        &dir.join(format!("{name}.sec")),
        key.to_sec_file().as_bytes(),
        PRIVATE_FILE,
    )
}

pub fn read_public_key_file(path: &Path) -> Result<PublicKey> {
    if !path.exists() {
        return Err(Error::key(
            path.display().to_string(),
            "no such key file (generate it with `ota-sign key generate` or import it)",
        ));
    }
    let v: Value = fsutil::read_json(path)?;
    PublicKey::from_json(&v, false)
        .map_err(|e| Error::key(path.display().to_string(), e.to_string()))
}

/// Reads `<dir>/<name>.sec`, checked against `<dir>/<name>.pub`, which must exist: a
/// `.sec` without its `.pub` is an incomplete pair and is not used.
pub fn read_private_key_pair(dir: &Path, name: &str) -> Result<PrivateKey> {
    check_name("key", name)?;
    let sec = dir.join(format!("{name}.sec"));
    let public_path = dir.join(format!("{name}.pub"));
    if sec.exists() && !public_path.exists() {
        return Err(Error::key(
            sec.display().to_string(),
            format!(
                "{} is missing, so this private key cannot be checked: restore the pair (e.g. from a backup or the credentials.zip) or remove the .sec file",
                public_path.display()
            ),
        ));
    }
    let public = read_public_key_file(&public_path).ok();
    read_private_key_file(&sec, public.as_ref())
}

pub fn read_private_key_file(path: &Path, public: Option<&PublicKey>) -> Result<PrivateKey> {
    if !path.exists() {
        return Err(Error::key(
            path.display().to_string(),
            "no such private key file",
        ));
    }
    let bytes = fsutil::read_secret(path)?;
    let v: Value = serde_json::from_slice(&bytes)
        .map_err(|_| Error::key(path.display().to_string(), "not a JSON private key file"))?;
    let key = PrivateKey::from_json(&v, public);
    crate::credentials::wipe(v);
    key.map_err(|e| Error::key(path.display().to_string(), e.to_string()))
}

fn read_signed(path: &Path, hint: &str) -> Result<SignedPayload> {
    if !path.exists() {
        return Err(Error::Other(format!(
            "{} is missing: {hint}",
            path.display()
        )));
    }
    let bytes = fsutil::read(path)?;
    SignedPayload::parse(&bytes, &path.display().to_string())
}

fn write_role(path: &Path, value: &Value) -> Result<()> {
    if let Some(dir) = path.parent() {
        fsutil::create_private_dir(dir)?;
    }
    fsutil::write_atomic(path, to_pretty(value).as_bytes(), PUBLIC_FILE)
}
