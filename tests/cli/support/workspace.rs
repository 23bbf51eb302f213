//! `Workspace`: a temporary working directory (home `tuf/`) where `ota-sign` runs, and
//! `Repo`: one repository in it, with the steps tests repeat.
//!
//! ```ignore
//! let ws = Workspace::new();
//! let r = ws.init_from_fixture("r", "credentials_ed25519.zip");  // init --repo r ...
//! r.key_generate("k", "ed25519");                                // key generate --repo r ...
//! r.ok(&["targets", "sign", "--key-name", "k"]);                 // targets sign --repo r --key-name k
//! assert_eq!(r.json("roles/targets.json")["signed"]["version"], 2);
//! ```

use super::cmd::Cmd;
use super::{edit_json, fixture_with_valid_root, read_json, tree_snapshot};
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// A temporary working directory with `tuf/` as the default home.
pub struct Workspace {
    pub dir: tempfile::TempDir,
    /// Set for every command run here (e.g. a PKCS#11 token's configuration).
    envs: Vec<(OsString, OsString)>,
}

impl Default for Workspace {
    fn default() -> Self {
        Self::new()
    }
}

impl Workspace {
    pub fn new() -> Self {
        Workspace {
            dir: tempfile::tempdir().unwrap(),
            envs: Vec::new(),
        }
    }

    /// Every command run in this workspace gets `key=value`.
    pub fn with_env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.envs.push((key.into(), value.into()));
        self
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn home(&self) -> PathBuf {
        self.path().join("tuf")
    }

    /// The directory of repository `name` (see [`Workspace::open`] for a handle).
    pub fn repo(&self, name: &str) -> PathBuf {
        self.home().join(name)
    }

    /// A handle on repository `name` (which need not exist yet).
    pub fn open(&self, name: &str) -> Repo<'_> {
        Repo {
            ws: self,
            name: name.to_string(),
        }
    }

    /// [`fixture_with_valid_root`] of fixture `zip`, written into this workspace.
    pub fn fixture_zip(&self, zip: &str) -> PathBuf {
        fixture_with_valid_root(zip, self.path())
    }

    /// `ota-sign` run inside this workspace, as an assert_cmd command.
    pub fn cmd(&self) -> assert_cmd::Command {
        let mut c = super::ota_sign();
        c.current_dir(self.path());
        for (k, v) in &self.envs {
            c.env(k, v);
        }
        c
    }

    /// `ota-sign <args>` run inside this workspace (see [`Cmd`] for the checks).
    pub fn ota<S: AsRef<std::ffi::OsStr>>(&self, args: &[S]) -> Cmd {
        let mut c = Cmd::ota_sign().current_dir(self.path()).args(args);
        for (k, v) in &self.envs {
            c = c.env(k, v);
        }
        c
    }

    /// `ota-sign <args>` that must succeed; returns stdout.
    pub fn ok<S: AsRef<std::ffi::OsStr>>(&self, args: &[S]) -> String {
        self.ota(args).ok()
    }

    /// `ota-sign <args>` that must fail with `code`; returns stderr.
    pub fn fails<S: AsRef<std::ffi::OsStr>>(&self, code: i32, args: &[S]) -> String {
        self.ota(args).fails(code)
    }

    /// Rewrites `config.json` of repository `name` (e.g. to break the auth settings).
    pub fn edit_config(&self, name: &str, edit: impl FnOnce(&mut serde_json::Value)) {
        edit_json(&self.repo(name).join("config.json"), edit);
    }

    /// `user-keys gen --key-name <name> --type <key_type>`; returns the user-keys directory.
    pub fn user_keys_gen(&self, name: &str, key_type: &str) -> PathBuf {
        self.ok(&["user-keys", "gen", "--key-name", name, "--type", key_type]);
        self.home().join("user-keys")
    }

    /// `init --repo name --credentials zip`.
    pub fn init_from(&self, name: &str, zip: impl AsRef<Path>) -> Repo<'_> {
        let zip = zip.as_ref().to_str().unwrap();
        self.ok(&["init", "--repo", name, "--credentials", zip]);
        self.open(name)
    }

    /// `init --repo name` from an upstream credentials fixture (its root.json re-signed
    /// by [`Workspace::fixture_zip`], since init refuses the upstream roots).
    pub fn init_from_fixture(&self, name: &str, zip: &str) -> Repo<'_> {
        self.init_from(name, self.fixture_zip(zip))
    }
}

/// Repository `name` of a [`Workspace`]. Its commands get `--repo <name>` right after
/// the sub-command words (`["targets", "sign", "--key-name", "k"]` runs
/// `targets sign --repo r --key-name k`), so they read as garage-sign's do.
pub struct Repo<'w> {
    ws: &'w Workspace,
    name: String,
}

impl<'w> Repo<'w> {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn workspace(&self) -> &'w Workspace {
        self.ws
    }

    pub fn path(&self) -> PathBuf {
        self.ws.repo(&self.name)
    }

    /// A file of the repository, e.g. `roles/targets.json`.
    pub fn file(&self, rel: &str) -> PathBuf {
        self.path().join(rel)
    }

    /// A JSON file of the repository, parsed.
    pub fn json(&self, rel: &str) -> serde_json::Value {
        read_json(&self.file(rel))
    }

    /// Every file of the repository with its content (compare to prove nothing changed).
    pub fn snapshot(&self) -> BTreeMap<PathBuf, Vec<u8>> {
        tree_snapshot(&self.path())
    }

    /// The key id of `keys/<key>.pub`.
    pub fn key_id(&self, key: &str) -> String {
        let v = self.json(&format!("keys/{key}.pub"));
        ota_sign::keys::PublicKey::from_json(&v, false)
            .unwrap()
            .key_id()
            .to_string()
    }

    /// `ota-sign <sub-command words> --repo <name> <rest of args>`.
    pub fn ota(&self, args: &[&str]) -> Cmd {
        let words = args.iter().take_while(|a| !a.starts_with('-')).count();
        let mut all: Vec<&str> = args[..words].to_vec();
        all.extend(["--repo", self.name.as_str()]);
        all.extend(&args[words..]);
        self.ws.ota(&all)
    }

    /// [`Repo::ota`] that must succeed; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        self.ota(args).ok()
    }

    /// [`Repo::ota`] that must fail with `code`; returns stderr.
    pub fn fails(&self, code: i32, args: &[&str]) -> String {
        self.ota(args).fails(code)
    }

    /// `key generate --repo <name> --name <key> --type <key_type>`.
    pub fn key_generate(&self, key: &str, key_type: &str) -> &Self {
        self.ok(&["key", "generate", "--name", key, "--type", key_type]);
        self
    }

    /// `targets pull --repo <name>`.
    pub fn pull(&self) -> &Self {
        self.ok(&["targets", "pull"]);
        self
    }

    /// `targets sign --repo <name> --key-name <key>`.
    pub fn sign_targets(&self, key: &str) -> &Self {
        self.ok(&["targets", "sign", "--key-name", key]);
        self
    }

    /// `targets push --repo <name>`.
    pub fn push(&self) -> &Self {
        self.ok(&["targets", "push"]);
        self
    }

    /// The procedure's move-offline step: old root key kept as `origroot`, new keys
    /// `myroot` and `mytargets`.
    pub fn move_offline_cmd(&self) -> Cmd {
        self.ota(&[
            "move-offline",
            "--old-root-alias",
            "origroot",
            "--new-root",
            "myroot",
            "--new-targets",
            "mytargets",
        ])
    }

    /// [`Repo::move_offline_cmd`] that must succeed.
    pub fn move_offline(&self) -> &Self {
        self.move_offline_cmd().ok();
        self
    }

    /// `export-credentials --repo <name> --target-key-name <key> --to <to>` (relative
    /// to the workspace); returns the zip's path.
    pub fn export_credentials(&self, key: &str, to: &str) -> PathBuf {
        self.ok(&["export-credentials", "--target-key-name", key, "--to", to]);
        self.ws.path().join(to)
    }
}

#[test]
fn repo_commands_get_the_repo_right_after_the_sub_command_words() {
    let ws = Workspace::new();
    let shown = ws
        .open("r")
        .ota(&["targets", "sign", "--key-name", "k"])
        .shown();
    assert!(
        shown.ends_with("ota-sign targets sign --repo r --key-name k"),
        "{shown}"
    );
    let shown = ws.open("x").ota(&["targets", "pull"]).shown();
    assert!(shown.ends_with("ota-sign targets pull --repo x"), "{shown}");
}
