//! One module per command group (tough style). [`run`] resolves the parsed command
//! line into the work to do; every command validates its input before it writes.

mod client_cert;
mod delegations;
mod export;
mod init;
mod json;
mod keys;
mod move_offline;
mod publish;
mod refresh;
mod root;
mod status;
mod targets;
mod verify;

use crate::canonical::CanonicalJson;
use crate::cli::{Cli, Command};
use crate::error::{Error, Result};
use crate::fsutil;
use crate::http::{ClientOptions, ReposerverClient};
use crate::keyref::{self, KeyHandle, UncheckedSignature};
use crate::keys::{KeyType, PublicKey};
use crate::metadata::{Signature, Signed};
use crate::repo::TufRepo;
use std::io::Write;
use std::path::PathBuf;

/// What every command may need, resolved from global flags.
pub struct Context {
    pub home: PathBuf,
    pub cacert: Option<PathBuf>,
}

impl Context {
    pub fn repo(&self, name: &str) -> Result<TufRepo> {
        TufRepo::new(&self.home, name)
    }

    /// An existing repository named by a parent command's optional `--repo`.
    /// HTTP options: defaults, the environment, then `--cacert`.
    pub fn client_options(&self) -> ClientOptions {
        let mut options = ClientOptions::from_env();
        if let Some(c) = &self.cacert {
            options.cacert = Some(c.clone());
        }
        options
    }

    /// A client for the repository's server, authenticated as config.json says.
    pub fn client(&self, repo: &TufRepo) -> Result<ReposerverClient> {
        let config = repo.read_config()?;
        ReposerverClient::from_repo_config(&config, repo.dir(), &self.client_options())
    }

    pub fn existing_repo(&self, name: Option<&str>) -> Result<TufRepo> {
        let name = name.ok_or_else(|| Error::Usage("--repo is required".into()))?;
        let repo = self.repo(name)?;
        repo.ensure_exists()?;
        Ok(repo)
    }
}

pub fn run(cli: Cli) -> Result<()> {
    let ctx = Context {
        home: cli.home_dir,
        cacert: cli.cacert,
    };
    let Some(command) = cli.command else {
        use clap::CommandFactory;
        Cli::command()
            .print_help()
            .map_err(|e| Error::io("stdout", e))?;
        return Ok(());
    };
    // garage-sign creates the home directory on every run.
    fsutil::create_private_dir(&ctx.home)?;
    match command {
        Command::Init(a) => init::run(&ctx, a),
        Command::Key(k) => keys::key(&ctx, k),
        Command::UserKeys(a) => keys::user_keys(&ctx, a),
        Command::Root(a) => root::run(&ctx, a),
        Command::Targets(a) => targets::run(&ctx, a),
        Command::Delegations(d) => delegations::run(&ctx, d),
        Command::ExportCredentials(a) => export::run(&ctx, a),
        Command::VerifyRoot(a) => json::verify_root(&ctx, a),
        Command::SignJson(a) => json::sign_json(a),
        Command::VerifyJson(a) => json::verify_json(a),
        Command::MoveOffline(a) => move_offline::run(&ctx, a),
        Command::ImportClientCert(a) => client_cert::run(&ctx, a),
        Command::GetTargets(a) => targets::get_targets(&ctx, &a.repo),
        Command::Publish(a) => publish::run(&ctx, *a),
        Command::Verify(a) => verify::run(&ctx, a),
        Command::Status(a) => status::run(&ctx, a),
        Command::Refresh(a) => refresh::run(&ctx, a),
    }
}

/// Key type from `--type`: `rsa` or `ed25519`, any case (garage-sign is case-sensitive;
/// its docs say "Ed25519 or RSA", so we accept both spellings).
pub fn parse_key_type(s: &str) -> Result<KeyType> {
    match s.to_ascii_lowercase().as_str() {
        "rsa" => Ok(KeyType::Rsa),
        "ed25519" => Ok(KeyType::Ed25519),
        _ => Err(Error::Usage(format!(
            "Invalid keytype: {s} valid: (ed25519, rsa)"
        ))),
    }
}

/// A command-line JSON object (`--customMeta`, `--custom`).
pub fn parse_json_object(
    text: Option<&str>,
    flag: &str,
) -> Result<Option<serde_json::Map<String, serde_json::Value>>> {
    match text.map(serde_json::from_str::<serde_json::Value>) {
        None => Ok(None),
        Some(Ok(serde_json::Value::Object(m))) => Ok(Some(m)),
        Some(_) => Err(Error::Usage(format!("{flag} must be a JSON object"))),
    }
}

/// Writes data to stdout as garage-sign does: raw bytes, no trailing newline.
pub fn print_raw(bytes: &[u8]) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)
        .and_then(|_| out.flush())
        .map_err(|e| Error::io("stdout", e))
}

/// `--signatures name=b64,name2=b64`: split at the first `=`, so base64 padding is safe.
pub fn parse_signature_list(spec: &str) -> Result<Vec<(String, String)>> {
    spec.split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|pair| {
            pair.split_once('=')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .filter(|(k, v)| !k.is_empty() && !v.is_empty())
                .ok_or_else(|| {
                    Error::Usage(format!(
                        "invalid --signatures entry {pair:?}: use keyname=base64signature"
                    ))
                })
        })
        .collect()
}

/// Signs the canonical bytes `message` with local `keys` and, with `--signatures`, adds
/// the external signatures checked against the repository's public keys.
pub fn sign_role(
    repo: &TufRepo,
    message: CanonicalJson,
    keys: &[KeyHandle],
    external: Option<&str>,
) -> Result<Signed> {
    let (signatures, unchecked) = sign_unchecked(repo, &message, keys, external)?;
    let signed = Signed::new(message, signatures);
    check_signatures(&unchecked, &signed)?;
    Ok(signed)
}

/// The signatures [`sign_role`] makes, with the keys' own ones still to be checked:
/// the caller must pass them to [`check_signatures`] before it keeps anything signed.
/// External signatures are checked here.
pub fn sign_unchecked(
    repo: &TufRepo,
    message: &CanonicalJson,
    keys: &[KeyHandle],
    external: Option<&str>,
) -> Result<(Vec<Signature>, Vec<UncheckedSignature>)> {
    let unchecked = keys
        .iter()
        .map(|k| k.sign_unchecked(message.as_bytes()))
        .collect::<Result<Vec<_>>>()?;
    let mut signatures: Vec<Signature> = unchecked.iter().map(Signature::unchecked).collect();
    if let Some(spec) = external {
        signatures.extend(external_signatures(repo, message.as_bytes(), spec)?);
    }
    if signatures.is_empty() {
        return Err(Error::Usage(
            "give at least one --key-name (or --signatures)".into(),
        ));
    }
    Ok((signatures, unchecked))
}

/// Checks each signature against its key's public half.
pub fn check_signatures(unchecked: &[UncheckedSignature], signed: &Signed) -> Result<()> {
    unchecked
        .iter()
        .try_for_each(|u| u.check(signed.signed_bytes().as_bytes()))
}

/// Resolves each key name (`keys/<name>.sec`, a `keys/<name>.pkcs11` alias or a
/// `pkcs11:` URI) into a key ready to sign.
pub fn read_private_keys(repo: &TufRepo, names: &[String]) -> Result<Vec<KeyHandle>> {
    names
        .iter()
        .map(|n| keyref::resolve_signing_key(&repo.keys_dir(), n))
        .collect()
}

/// Checks external signatures against `keys/<name>.pub` and turns them into signature
/// objects. The method follows the key type (uptane-sign; garage-sign 0.7.7 always
/// wrote rsassa-pss-sha256, which broke Ed25519).
pub fn external_signatures(repo: &TufRepo, message: &[u8], spec: &str) -> Result<Vec<Signature>> {
    let pairs = parse_signature_list(spec)?;
    if pairs.is_empty() {
        return Err(Error::Usage("--signatures is empty".into()));
    }
    pairs
        .into_iter()
        .map(|(name, sig)| {
            let key: PublicKey = repo.read_public_key(&name)?;
            let method = key.keytype().signature_method();
            if !key.verify(method, message, &sig) {
                return Err(Error::key(
                    name,
                    format!("Wrong signature: keyId: {} signature: {sig} does not verify over the unsigned role (run get-unsigned and sign exactly those bytes)", key.key_id()),
                ));
            }
            Ok(Signature { keyid: key.key_id(), method: method.to_string(), sig })
        })
        .collect()
}
