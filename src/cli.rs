//! The command line, parsed (ripgrep's "low-level args"): garage-sign 0.7.7's commands,
//! flags and defaults, plus uptane-sign's spellings. Resolving these into what a
//! command does happens in [`crate::commands`].
//!
//! garage-sign uses `-h` for `--home-dir`, so help is `--help` only.

use clap::{ArgAction, Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "ota-sign",
    version,
    about = "Sign Uptane/TUF image-repository metadata with offline keys (garage-sign compatible)",
    long_about = "ota-sign signs Uptane/TUF image-repository metadata for an OTA Connect / ota-tuf reposerver with \
offline keys. It is a drop-in replacement for garage-sign 0.7.7: same commands, flags, local repository layout \
(./tuf/<repo>/) and exit codes (0 ok, 1 explained error, 2 checksum conflict on push, 3 other error, 255 bad \
command line).\n\nTypical rotation to offline keys:\n  ota-sign init --repo myrepo --credentials credentials.zip\n  \
ota-sign key generate --repo myrepo --name myroot --type rsa\n  ota-sign key generate --repo myrepo --name mytargets --type rsa\n  \
ota-sign targets pull --repo myrepo\n  ota-sign move-offline --repo myrepo --old-root-alias origroot --new-root myroot --new-targets mytargets\n  \
ota-sign targets sign --repo myrepo --key-name mytargets\n  ota-sign targets push --repo myrepo\n  \
ota-sign export-credentials --repo myrepo --key-name mytargets --output offline-credentials.zip",
    disable_help_flag = true,
    disable_help_subcommand = true,
    propagate_version = false
)]
pub struct Cli {
    /// Directory that holds the local repositories
    #[arg(
        short = 'h',
        long = "home-dir",
        global = true,
        default_value = "tuf",
        value_name = "PATH"
    )]
    pub home_dir: PathBuf,

    /// Log debug details (never secrets) to stderr
    #[arg(long, global = true)]
    pub verbose: bool,

    /// Extra CA certificates (PEM bundle) to trust for the server, e.g. bitbake's native sysroot bundle
    #[arg(long, global = true, env = "OTA_SIGN_CACERT", value_name = "FILE")]
    pub cacert: Option<PathBuf>,

    /// Print help (there is no -h: it is --home-dir, as in garage-sign)
    #[arg(long, action = ArgAction::Help, global = true)]
    pub help: Option<bool>,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create a local repository from a credentials.zip
    Init(InitArgs),
    /// Generate keys inside a repository
    #[command(subcommand, disable_help_flag = true)]
    Key(KeyCommand),
    /// Keys outside a repository (suppliers, delegations)
    #[command(name = "user-keys", disable_help_flag = true)]
    UserKeys(UserKeysArgs),
    /// Take the server's online root and targets keys offline: new root signed by old and new root keys
    #[command(name = "move-offline", disable_help_flag = true)]
    MoveOffline(MoveOfflineArgs),
    /// Edit, sign, pull and push root.json
    #[command(disable_help_flag = true)]
    Root(RootArgs),
    /// Edit, sign, pull and push targets.json
    #[command(disable_help_flag = true)]
    Targets(TargetsArgs),
    /// Supplier-side delegated targets files
    #[command(subcommand, disable_help_flag = true)]
    Delegations(DelegationsCommand),
    /// Write a credentials.zip that carries an offline targets key (for bitbake)
    #[command(name = "export-credentials", disable_help_flag = true)]
    ExportCredentials(ExportArgs),
    /// Use a client certificate (mutual TLS) for this repository
    #[command(name = "import-client-cert", disable_help_flag = true)]
    ImportClientCert(ImportClientCertArgs),
    /// Print the server's targets.json
    #[command(name = "get-targets", hide = true, disable_help_flag = true)]
    GetTargets(RepoArg),
    /// Check that a root file is signed by a threshold of its own root keys
    #[command(name = "verify-root", hide = true, disable_help_flag = true)]
    VerifyRoot(VerifyRootArgs),
    /// Sign any JSON file with a key pair: prints {"signatures":[…],"signed":<input>}
    #[command(name = "sign-json", disable_help_flag = true)]
    SignJson(SignJsonArgs),
    /// Check the signatures of a signed JSON file against a public key
    #[command(name = "verify-json", disable_help_flag = true)]
    VerifyJson(VerifyJsonArgs),
    /// Sign and publish one image target from a credentials zip, safe with many builders at once
    #[command(
        disable_help_flag = true,
        long_about = "Sign and publish one image target from a credentials zip, safe with many builders at once.\n\n\
Needs no local repository: tufrepo.url, the auth settings, root.json and the targets key pair are read straight \
from the zip, and the private key stays in memory. The server's root chain is walked from the zip's root.json \
(forged or rolled-back roots are refused) and the zip's key must be a targets key of the latest root. \
With --upload the image is uploaded first, unless the server already stores it with this sha256 and length \
(a file an interrupted upload left behind is replaced). Then: pull targets.json, add or replace \
<name>-<version> (version: the sha256 unless given), sign (version + 1), push; after a concurrent push \
(412/428) it pulls again and retries with jittered backoff. An identical target that is already published \
is not pushed again, so re-running is safe. A BINARY target with no --upload, no --url and no stored file \
gets a warning (devices could not download it). Prints one summary line: target, sha256, length, targets \
version, attempts; with --json an object that adds pushed, uploaded, the target's entry, the root and \
targets expiry on the server and the warnings. --skip-unless-offline turns a zip without offline keys \
into a warning and exit 0 ({\"skipped\": true, \"reason\": …} with --json)."
    )]
    Publish(Box<crate::cli::PublishArgs>),
    /// Check the repository as a device (aktualizr) would: exit 0 accept, 1 reject (every finding), 3 cannot tell
    #[command(
        disable_help_flag = true,
        long_about = "Check the repository as a device (aktualizr) would, before a rollout finds out.\n\nWalks the root chain from 1.root.json (or the trusted root: the zip's root.json, --trusted-root) upward, \
then timestamp.json, snapshot.json, targets.json and delegations, and applies aktualizr's acceptance rules: \
_type strings, 20-character UTC timestamps, signature methods, duplicate key ids, thresholds, the root chain \
(version + 1, old and new thresholds), version and hash links timestamp -> snapshot -> targets over the \
canonical form, ASCII-only metadata (aktualizr's canonical form must equal ota-tuf's), size limits, expiry of \
every role, non-empty custom.hardwareIds on every target, well-formed hashes and lengths, and that every BINARY \
target can be downloaded (custom.uri, or HEAD targets/<file> on the server).\n\nExit 0: a device would accept the repository. Exit 1: it would not; every finding is printed with the role, \
the version and the rule. Exit 3: cannot tell (server down, unreadable input).\n\nExamples:\n  ota-sign verify --credentials offline-credentials.zip\n  \
ota-sign verify --credentials offline-credentials.zip --at +7D   # will it still be accepted next week?\n  \
ota-sign verify --url http://127.0.0.1:8085/api/v1/user_repo --trusted-root root.json --hardware-id raspberrypi4-64"
    )]
    Verify(VerifyArgs),
    /// One table of the repository's roles: versions, expiry, signatures, keys, size; and what to do next
    #[command(disable_help_flag = true)]
    Status(StatusArgs),
    /// Re-sign targets.json unchanged with a new expiry (from cron/CI: --if-expires-within 7D)
    #[command(
        disable_help_flag = true,
        long_about = "Re-sign targets.json unchanged but with a new expiry, so devices never see it expire.\n\nPulls targets.json (checked against the latest root, reached by the root chain), keeps every target \
byte-identical, sets version + 1 and the new expiry, signs with the offline targets key and pushes; after a \
concurrent push it pulls again and retries, as publish does. With --if-expires-within 7D it does nothing \
(exit 0, and says so) while the expiry is further away, so it can run from cron or a CI schedule. It refuses a \
targets key that the latest root does not list, and warns when root.json itself expires within 30 days.\n\nExample (cron, daily):\n  ota-sign refresh --credentials offline-credentials.zip --if-expires-within 7D"
    )]
    Refresh(RefreshArgs),
}

#[derive(Args, Debug)]
pub struct RepoArg {
    /// Name of the local repository (a directory under --home-dir)
    #[arg(short = 'r', long)]
    pub repo: String,
}

#[derive(Args, Debug)]
pub struct InitArgs {
    #[arg(short = 'r', long)]
    pub repo: String,
    /// credentials.zip from OTA Connect (or ota-reposerver init-account)
    #[arg(short = 'c', long)]
    pub credentials: PathBuf,
    /// Use this server URL instead of the zip's tufrepo.url
    #[arg(long)]
    pub reposerver: Option<String>,
    /// reposerver or director
    #[arg(short = 't', long = "servertype", default_value = "reposerver", value_parser = ["reposerver", "director", "RepoServer", "Director", "REPOSERVER", "DIRECTOR"])]
    pub servertype: String,
}

#[derive(Subcommand, Debug)]
pub enum KeyCommand {
    /// Generate a key pair into <repo>/keys/<name>.{pub,sec} (or on a PKCS#11 token with --pkcs11)
    #[command(disable_help_flag = true)]
    Generate(KeyGenerateArgs),
    /// Use a key pair already on a PKCS#11 token: writes <repo>/keys/<name>.pub and
    /// the alias <repo>/keys/<name>.pkcs11 (the URI without the PIN)
    #[command(disable_help_flag = true)]
    Import(KeyImportArgs),
}

#[derive(Args, Debug)]
pub struct KeyImportArgs {
    #[arg(short = 'r', long)]
    pub repo: String,
    /// Key name to use with --key-name, --new-root, ...
    #[arg(short = 'n', long)]
    pub name: String,
    /// The token key, e.g. 'pkcs11:token=ota;object=targets?module-path=/usr/lib/softhsm/libsofthsm2.so'
    /// (PIN from OTA_SIGN_PKCS11_PIN or pin-source=FILE)
    #[arg(long, value_name = "URI")]
    pub pkcs11: String,
}

#[derive(Args, Debug)]
pub struct KeyTypeArgs {
    /// Key type: rsa (garage-sign's default) or ed25519 (any case)
    #[arg(short = 't', long = "type", default_value = "rsa")]
    pub key_type: String,
    /// RSA modulus size: 2048 (default), 3072 or 4096
    #[arg(long)]
    pub keysize: Option<usize>,
    /// Generate the key pair on this PKCS#11 token instead (RFC 7512 URI, e.g.
    /// 'pkcs11:token=ota;object=targets?module-path=/usr/lib/softhsm/libsofthsm2.so';
    /// PIN from OTA_SIGN_PKCS11_PIN or pin-source=FILE). The private key is created
    /// sensitive and non-extractable; only <name>.pub and the alias <name>.pkcs11 are written
    #[arg(long, value_name = "URI")]
    pub pkcs11: Option<String>,
}

#[derive(Args, Debug)]
pub struct KeyGenerateArgs {
    #[arg(short = 'r', long)]
    pub repo: String,
    /// Key name: files keys/<name>.pub and keys/<name>.sec
    #[arg(short = 'n', long)]
    pub name: String,
    #[command(flatten)]
    pub key: KeyTypeArgs,
}

#[derive(Args, Debug)]
pub struct UserKeysArgs {
    /// Directory of user keys (default <home-dir>/user-keys)
    #[arg(short = 'p', long = "keys-path", global = true)]
    pub keys_path: Option<PathBuf>,
    #[command(subcommand)]
    pub command: UserKeysCommand,
}

#[derive(Subcommand, Debug)]
pub enum UserKeysCommand {
    /// Generate a key pair <keys-path>/<name>.{pub,sec}
    #[command(disable_help_flag = true)]
    Gen {
        #[arg(short = 'k', long = "key-name")]
        key_name: String,
        #[command(flatten)]
        key: KeyTypeArgs,
    },
    /// Print the key id of a JSON public key file
    #[command(disable_help_flag = true)]
    Id {
        #[arg(short = 'i', long)]
        input: PathBuf,
    },
    /// Import a PEM public key into <repo>/keys/<name>.pub
    #[command(disable_help_flag = true)]
    Importpub {
        #[arg(short = 'r', long)]
        repo: String,
        #[arg(short = 'k', long = "key-name")]
        key_name: String,
        #[arg(short = 'i', long)]
        input: PathBuf,
    },
}

#[derive(Args, Debug)]
pub struct MoveOfflineArgs {
    #[arg(short = 'r', long)]
    pub repo: String,
    /// Name under which the server's current root key is saved locally
    #[arg(long = "old-root-alias")]
    pub old_root_alias: String,
    /// Local key to become the new root key (a name in <repo>/keys, a .pkcs11 alias, or a pkcs11: URI)
    #[arg(long = "new-root")]
    pub new_root: Option<String>,
    /// Local key to become the new targets key (a name in <repo>/keys, a .pkcs11 alias, or a pkcs11: URI)
    #[arg(long = "new-targets")]
    pub new_targets: Option<String>,
    /// Id of the root key to take offline (default: the last root key id)
    #[arg(long = "old-keyid")]
    pub old_keyid: Option<String>,
}

#[derive(Args, Debug)]
pub struct RootArgs {
    /// Name of the local repository (a directory under --home-dir)
    #[arg(short = 'r', long, global = true)]
    pub repo: Option<String>,
    #[command(subcommand)]
    pub command: RootCommand,
}

#[derive(Args, Debug)]
pub struct KeySelector {
    /// Key name(s) in <repo>/keys
    #[arg(short = 'k', long = "key-name", num_args = 1.., action = ArgAction::Append)]
    pub key_names: Vec<String>,
    /// Key id(s) to remove
    #[arg(long = "key-id", num_args = 1.., action = ArgAction::Append)]
    pub key_ids: Vec<String>,
}

#[derive(Subcommand, Debug)]
pub enum RoleKeyCommand {
    /// Add keys/<name>.pub to the role in the unsigned root
    #[command(disable_help_flag = true)]
    Add(KeySelector),
    /// Remove keys (by name or id) from the role in the unsigned root
    #[command(disable_help_flag = true)]
    Remove(KeySelector),
}

#[derive(Args, Debug)]
pub struct ExpiryArgs {
    /// Exact expiry instant, e.g. 2030-01-01T00:00:00Z
    #[arg(long)]
    pub expires: Option<String>,
    /// Expire after a period from now (Java Period: 1Y3M5D, 2W, 1M)
    #[arg(long = "expire-after", allow_hyphen_values = true)]
    pub expire_after: Option<String>,
    /// Accept an expiry date in the past
    #[arg(long)]
    pub force: bool,
}

#[derive(Subcommand, Debug)]
pub enum RootCommand {
    /// Download root.json, following the version chain from the local root
    #[command(disable_help_flag = true)]
    Pull {
        /// Skip the chain check against the local root
        #[arg(long, hide = true)]
        force: bool,
    },
    /// Upload roles/root.json
    #[command(disable_help_flag = true)]
    Push,
    /// Print the canonical unsigned root
    #[command(name = "get-unsigned", disable_help_flag = true)]
    GetUnsigned,
    /// Unsigned root version + 1
    #[command(name = "increment-version", disable_help_flag = true)]
    IncrementVersion,
    /// Root role keys
    #[command(subcommand, disable_help_flag = true)]
    Key(RoleKeyCommand),
    /// Targets role keys
    #[command(name = "targets-key", subcommand, disable_help_flag = true)]
    TargetsKey(RoleKeyCommand),
    /// Set the root role threshold in the unsigned root
    #[command(name = "set-threshold", disable_help_flag = true)]
    SetThreshold {
        #[arg(short = 't', long)]
        threshold: i64,
    },
    /// Sign the unsigned root (version + 1) into roles/root.json
    #[command(disable_help_flag = true)]
    Sign(RootSignArgs),
}

#[derive(Args, Debug)]
pub struct RootSignArgs {
    /// Sign with these keys: names in <repo>/keys (.sec or a .pkcs11 token alias) or pkcs11: URIs
    #[arg(short = 'k', long = "key-name", action = ArgAction::Append)]
    pub key_names: Vec<String>,
    #[command(flatten)]
    pub expiry: ExpiryArgs,
    /// With --signatures: also sign with this local key, first
    #[arg(long = "old-root-alias")]
    pub old_root_alias: Option<String>,
    /// External signatures name=base64sig,... checked against keys/<name>.pub (no version or expiry change)
    #[arg(long)]
    pub signatures: Option<String>,
}

#[derive(Args, Debug)]
pub struct TargetsArgs {
    /// Name of the local repository (a directory under --home-dir)
    #[arg(short = 'r', long, global = true)]
    pub repo: Option<String>,
    #[command(subcommand)]
    pub command: TargetsCommand,
}

#[derive(Args, Debug, Clone)]
pub struct TargetFields {
    /// Target name; the target file name is <name>-<version>
    #[arg(long)]
    pub name: String,
    /// Target version
    #[arg(long)]
    pub version: String,
    /// Hardware ids, comma separated
    #[arg(long = "hardwareids", value_delimiter = ',', required = true)]
    pub hardware_ids: Vec<String>,
    /// Extra custom metadata, a JSON object deep-merged into `custom`
    #[arg(long = "customMeta", alias = "custom-meta")]
    pub custom_meta: Option<String>,
}

/// `targets add` and `delegations add-target`: a target described by its hash.
#[derive(Args, Debug, Clone)]
pub struct AddTargetArgs {
    /// Length in bytes (OSTree: 0)
    #[arg(long)]
    pub length: u64,
    #[command(flatten)]
    pub target: TargetFields,
    /// binary (default) or ostree
    #[arg(long, default_value = "binary")]
    pub format: String,
    /// sha256 of the image (OSTree: the commit hash), 64 lower-case hex
    #[arg(long)]
    pub sha256: String,
    /// Where devices download the target from
    #[arg(long)]
    pub url: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum TargetsCommand {
    /// Write an empty unsigned targets.json
    #[command(disable_help_flag = true)]
    Init {
        #[arg(long)]
        version: u64,
        #[arg(long)]
        expires: String,
    },
    /// Add or replace target <name>-<version>
    #[command(disable_help_flag = true)]
    Add(AddTargetArgs),
    /// Add a target uploaded with `targets upload`: sha256 and length from the local file
    #[command(name = "add-uploaded", disable_help_flag = true)]
    AddUploaded {
        #[arg(short = 'i', long)]
        input: PathBuf,
        #[command(flatten)]
        target: TargetFields,
    },
    /// Remove a target from the unsigned targets.json
    #[command(disable_help_flag = true)]
    Delete {
        /// The target file name, <name>-<version>
        #[arg(long)]
        filename: String,
    },
    /// Print the canonical unsigned targets.json
    #[command(name = "get-unsigned", disable_help_flag = true)]
    GetUnsigned,
    /// Unsigned targets version + 1
    #[command(name = "increment-version", disable_help_flag = true)]
    IncrementVersion,
    /// Set the targets role threshold in the unsigned root
    #[command(name = "set-threshold", disable_help_flag = true)]
    SetThreshold {
        #[arg(short = 't', long)]
        threshold: i64,
    },
    /// Sign the unsigned targets (version + 1) into roles/targets.json
    #[command(disable_help_flag = true)]
    Sign(TargetsSignArgs),
    /// Delegate target paths to other keys (in the unsigned targets.json)
    #[command(subcommand, disable_help_flag = true)]
    Delegations(TargetsDelegationsCommand),
    /// Download targets.json and its checksum from the server
    #[command(disable_help_flag = true)]
    Pull,
    /// Upload roles/targets.json
    #[command(disable_help_flag = true)]
    Push,
    /// Upload a binary to the server's storage as <name>-<version>
    #[command(disable_help_flag = true)]
    Upload {
        #[arg(short = 'i', long)]
        input: PathBuf,
        #[arg(long)]
        name: String,
        #[arg(long)]
        version: String,
        /// Read timeout in seconds
        #[arg(long, default_value_t = 3600)]
        timeout: u64,
        /// Replace an existing upload
        #[arg(long, hide = true)]
        force: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum TargetsDelegationsCommand {
    /// Add (or replace) a delegated role with its keys and path prefixes
    #[command(disable_help_flag = true)]
    Add {
        /// Name of the delegated role
        #[arg(short = 'n', long)]
        name: String,
        /// Target path prefixes the role may sign (e.g. "supplier01*")
        #[arg(short = 'p', long = "prefix", required = true, action = ArgAction::Append)]
        prefixes: Vec<String>,
        /// JSON public key files of the role's keys
        #[arg(short = 'k', long = "key", required = true, action = ArgAction::Append)]
        keys: Vec<PathBuf>,
    },
}

#[derive(Args, Debug)]
pub struct TargetsSignArgs {
    /// Sign with these keys (repeatable): names in <repo>/keys (.sec or a .pkcs11 token alias) or pkcs11: URIs
    #[arg(short = 'k', long = "key-name", action = ArgAction::Append)]
    pub key_names: Vec<String>,
    /// Version to sign (default: unsigned version + 1)
    #[arg(long)]
    pub version: Option<u64>,
    #[command(flatten)]
    pub expiry: ExpiryArgs,
    /// External signatures name=base64sig,... checked against keys/<name>.pub (no version or expiry change)
    #[arg(long)]
    pub signatures: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum DelegationsCommand {
    /// Print an empty delegated targets role (version 1, expires in 365 days)
    #[command(disable_help_flag = true)]
    Init,
    /// Sign a delegated targets file with user keys
    #[command(disable_help_flag = true)]
    Sign {
        #[arg(short = 'k', long = "key-name", required = true, action = ArgAction::Append)]
        key_names: Vec<String>,
        #[arg(short = 'p', long = "keys-path")]
        keys_path: Option<PathBuf>,
        #[arg(short = 'i', long)]
        input: PathBuf,
        /// Replace the input file instead of printing
        #[arg(short = 'e', long)]
        inplace: bool,
    },
    /// Add a target to an unsigned delegated targets file
    #[command(name = "add-target", disable_help_flag = true)]
    AddTarget {
        #[command(flatten)]
        add: AddTargetArgs,
        #[arg(short = 'i', long)]
        input: PathBuf,
        #[arg(short = 'e', long)]
        inplace: bool,
    },
    /// Upload a signed delegated targets file
    #[command(disable_help_flag = true)]
    Push {
        #[arg(short = 'r', long)]
        repo: String,
        #[arg(short = 'n', long)]
        name: String,
        #[arg(short = 'i', long)]
        input: PathBuf,
    },
    /// Download a delegated targets file
    #[command(disable_help_flag = true)]
    Pull {
        #[arg(short = 'r', long)]
        repo: String,
        #[arg(short = 'n', long)]
        name: String,
        #[arg(short = 'o', long)]
        output: Option<PathBuf>,
    },
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    #[arg(short = 'r', long)]
    pub repo: String,
    /// The targets key to export (as targets.pub/targets.sec; a token key as targets.pub/targets.pkcs11)
    #[arg(short = 'k', long = "key-name", visible_alias = "target-key-name")]
    pub key_name: String,
    /// The zip to write
    #[arg(short = 'o', long, visible_alias = "to")]
    pub output: PathBuf,
}

#[derive(Args, Debug)]
pub struct ImportClientCertArgs {
    #[arg(short = 'r', long)]
    pub repo: String,
    /// PKCS#12 client certificate and key (empty password)
    #[arg(short = 'c', long = "client-cert")]
    pub client_cert: PathBuf,
    /// PKCS#12 trust store for the server certificate
    #[arg(short = 's', long = "server-cert")]
    pub server_cert: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct VerifyRootArgs {
    #[arg(short = 'r', long)]
    pub repo: Option<String>,
    #[arg(short = 'i', long)]
    pub input: PathBuf,
}

#[derive(Args, Debug)]
pub struct SignJsonArgs {
    /// Private key file (.sec), or a pkcs11: URI of a token key
    #[arg(short = 'k', long = "priv-key")]
    pub priv_key: PathBuf,
    /// Public key file (.pub)
    #[arg(short = 'p', long = "pub-key")]
    pub pub_key: PathBuf,
    #[arg(short = 'i', long)]
    pub input: PathBuf,
}

#[derive(Args, Debug)]
pub struct VerifyJsonArgs {
    #[arg(short = 'p', long = "pub-key")]
    pub pub_key: PathBuf,
    #[arg(short = 'i', long)]
    pub input: PathBuf,
}

#[derive(Args, Debug)]
pub struct PublishArgs {
    /// Credentials zip with root.json, targets.pub, targets.sec (or targets.pkcs11 naming a
    /// token key; PIN from OTA_SIGN_PKCS11_PIN or the URI's pin-source) and tufrepo.url
    #[arg(long, env = "OTA_SIGN_CREDENTIALS")]
    pub credentials: PathBuf,
    /// Target name
    #[arg(long)]
    pub name: String,
    /// Target version (default: the image's sha256, or the OSTree commit)
    #[arg(long)]
    pub version: Option<String>,
    /// Hardware ids, comma separated
    #[arg(long = "hardwareids", value_delimiter = ',', required = true)]
    pub hardware_ids: Vec<String>,
    /// Image file: sha256 and length are computed from it
    #[arg(long, conflicts_with_all = ["sha256", "length"])]
    pub image: Option<PathBuf>,
    /// sha256 of the target (OSTree: the commit hash)
    #[arg(long)]
    pub sha256: Option<String>,
    /// Length in bytes, with --sha256 (OSTree: 0, the default)
    #[arg(long, requires = "sha256")]
    pub length: Option<u64>,
    /// binary (default) or ostree
    #[arg(long, default_value = "binary")]
    pub format: String,
    /// Where devices download the target from (custom.uri)
    #[arg(long)]
    pub url: Option<String>,
    /// Extra custom metadata, a JSON object deep-merged into the target's `custom`
    #[arg(long)]
    pub custom: Option<String>,
    /// Exact expiry of the new targets.json, e.g. 2030-01-01T00:00:00Z
    #[arg(long)]
    pub expires: Option<String>,
    /// Expire after a period from now (Java Period, default 1M as meta-updater)
    #[arg(long = "expire-after", allow_hyphen_values = true)]
    pub expire_after: Option<String>,
    /// Upload the image to the server's storage first
    #[arg(long)]
    pub upload: bool,
    /// How often to re-pull and retry after a concurrent push
    #[arg(long, default_value_t = 10)]
    pub retries: u32,
    /// Do everything but push; with --output, write the signed targets.json there
    #[arg(long = "dry-run")]
    pub dry_run: bool,
    /// With --dry-run: write the signed targets.json to this file
    #[arg(long, requires = "dry_run")]
    pub output: Option<PathBuf>,
    /// Keep only the newest K versions of this target name
    #[arg(long = "keep-versions")]
    pub keep_versions: Option<usize>,
    /// Print the summary as JSON
    #[arg(long)]
    pub json: bool,
    /// A zip that cannot sign offline (no targets.sec, ...) is a warning and exit 0
    /// instead of an error: for builds that sign only where offline keys are present
    #[arg(long = "skip-unless-offline")]
    pub skip_unless_offline: bool,
}

/// Which repository `verify` and `status` look at.
#[derive(Args, Debug)]
#[group(required = true, multiple = false, id = "source")]
pub struct SourceArgs {
    /// A local repository: its server, with its auth settings (trust anchor: the server's 1.root.json)
    #[arg(short = 'r', long)]
    pub repo: Option<String>,
    /// A credentials zip: its tufrepo.url and auth, and its root.json as the trust anchor
    #[arg(short = 'c', long)]
    pub credentials: Option<PathBuf>,
    /// The URL a device uses (aktualizr uptane.repo_server, e.g. <tufrepo.url>/api/v1/user_repo), or a mirror directory / file:// URL
    #[arg(long)]
    pub url: Option<String>,
}

#[derive(Args, Debug)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    /// With --url: trust this root.json instead of the server's 1.root.json
    #[arg(long = "trusted-root", requires = "url")]
    pub trusted_root: Option<PathBuf>,
    /// Judge as of this instant (2030-01-01T00:00:00Z) or period from now (+7D, +1M)
    #[arg(long, allow_hyphen_values = true)]
    pub at: Option<String>,
    /// List what a device with this hardware id could install
    #[arg(long = "hardware-id")]
    pub hardware_id: Option<String>,
    /// Print the report as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct StatusArgs {
    /// A local repository (its server, auth and offline keys)
    #[arg(
        short = 'r',
        long,
        required_unless_present = "credentials",
        conflicts_with = "credentials"
    )]
    pub repo: Option<String>,
    /// A credentials zip (its server, auth, root.json and offline targets key)
    #[arg(short = 'c', long)]
    pub credentials: Option<PathBuf>,
    /// Print the table as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct RefreshArgs {
    /// Credentials zip with root.json, targets.pub, targets.sec (or a token key's
    /// targets.pkcs11) and tufrepo.url
    #[arg(
        short = 'c',
        long,
        env = "OTA_SIGN_CREDENTIALS",
        required_unless_present = "repo",
        conflicts_with = "repo"
    )]
    pub credentials: Option<PathBuf>,
    /// A local repository (its roles/root.json is the trust anchor); records what it pushes as `targets push` does
    #[arg(short = 'r', long, requires = "key_name")]
    pub repo: Option<String>,
    /// With --repo: the offline targets key (keys/<name>.sec, a keys/<name>.pkcs11 token alias or a pkcs11: URI)
    #[arg(short = 'k', long = "key-name")]
    pub key_name: Option<String>,
    /// Expire after a period from now (Java Period, default 1M)
    #[arg(long = "expire-after", allow_hyphen_values = true)]
    pub expire_after: Option<String>,
    /// Exact new expiry, e.g. 2030-01-01T00:00:00Z
    #[arg(long)]
    pub expires: Option<String>,
    /// Do nothing unless targets.json expires within this period (e.g. 7D)
    #[arg(long = "if-expires-within")]
    pub if_expires_within: Option<String>,
    /// How often to re-pull and retry after a concurrent push
    #[arg(long, default_value_t = 10)]
    pub retries: u32,
    /// Do everything but push
    #[arg(long = "dry-run")]
    pub dry_run: bool,
    /// Print the outcome as JSON
    #[arg(long)]
    pub json: bool,
}

#[cfg(test)]
mod tests {
    #[test]
    fn clap_definition_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
