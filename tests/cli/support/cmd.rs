//! `Cmd`: one command line under test, built fluently and run once. Every check on
//! its result ([`Ran`]) reports the command line, the exit code, stdout and stderr
//! when it fails, so no test has to format them itself.
//!
//! ```ignore
//! let stdout = ws.ota(&["targets", "pull", "--repo", "r"]).fast_retries().ok();
//! let stderr = ws.ota(&["targets", "push", "--repo", "r"]).fails(2);
//! let report = ws.ota(&["verify", "--json"]).run().json_or_null();
//! ```

use std::ffi::OsStr;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

/// A command line under test (a std `Command` that remembers how to show itself).
pub struct Cmd {
    inner: Command,
    /// Said when the program cannot be started (e.g. how to install it).
    hint: Option<String>,
}

impl Cmd {
    /// `ota-sign` with a clean logging environment, run in the current directory.
    pub fn ota_sign() -> Self {
        let mut inner = Command::new(env!("CARGO_BIN_EXE_ota-sign"));
        inner.env_remove("RUST_LOG").env_remove("OTA_SIGN_LOG");
        Cmd { inner, hint: None }
    }

    /// Any other program (openssl, pkcs11-tool, cargo, ...).
    pub fn program(program: impl AsRef<OsStr>) -> Self {
        Cmd {
            inner: Command::new(program),
            hint: None,
        }
    }

    /// What to say if the program cannot be started, e.g. `apt-get install opensc`.
    pub fn hint(mut self, hint: &str) -> Self {
        self.hint = Some(hint.to_string());
        self
    }

    fn cannot_start(&self, e: std::io::Error) -> ! {
        let hint = self.hint.as_deref().unwrap_or("");
        panic!("cannot run `{}`: {e} {hint}", self.shown())
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.inner.arg(arg);
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.inner.args(args);
        self
    }

    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.inner.env(key, value);
        self
    }

    pub fn env_remove(mut self, key: impl AsRef<OsStr>) -> Self {
        self.inner.env_remove(key);
        self
    }

    pub fn current_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.inner.current_dir(dir);
        self
    }

    /// HTTP retries 20 ms apart: the retry policy is unchanged, only its delay.
    pub fn fast_retries(self) -> Self {
        self.env("OTA_SIGN_HTTP_RETRY_DELAY_MS", "20")
    }

    /// The command line as a test report shows it.
    pub fn shown(&self) -> String {
        let mut s = self.inner.get_program().to_string_lossy().into_owned();
        for a in self.inner.get_args() {
            s.push(' ');
            s.push_str(&a.to_string_lossy());
        }
        s
    }

    /// Runs to completion, capturing stdout and stderr.
    pub fn run(mut self) -> Ran {
        let shown = self.shown();
        match self.inner.output() {
            Ok(out) => Ran { out, shown },
            Err(e) => self.cannot_start(e),
        }
    }

    /// Starts it with stdout and stderr piped; [`Ran::of_child`] collects it.
    pub fn spawn(mut self) -> (Child, String) {
        let shown = self.shown();
        match self
            .inner
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
        {
            Ok(child) => (child, shown),
            Err(e) => self.cannot_start(e),
        }
    }

    /// Must exit 0; returns stdout.
    pub fn ok(self) -> String {
        self.run().success().stdout()
    }

    /// Must exit with `code`; returns stderr.
    pub fn fails(self, code: i32) -> String {
        self.run().code(code).stderr()
    }
}

/// A finished command: its output and how it was called.
pub struct Ran {
    pub out: Output,
    shown: String,
}

impl Ran {
    /// Waits for a child started by [`Cmd::spawn`].
    pub fn of_child((child, shown): (Child, String)) -> Self {
        let out = child.wait_with_output().unwrap();
        Ran { out, shown }
    }

    /// Panics with `what`, the command line, its exit code, stdout and stderr.
    pub fn fail_with(&self, what: &str) -> ! {
        panic!(
            "`{}`: {what} (exit {:?})\nstdout: {}\nstderr: {}",
            self.shown,
            self.out.status.code(),
            String::from_utf8_lossy(&self.out.stdout),
            String::from_utf8_lossy(&self.out.stderr)
        )
    }

    pub fn exit_code(&self) -> Option<i32> {
        self.out.status.code()
    }

    /// Asserts exit 0.
    pub fn success(self) -> Self {
        if !self.out.status.success() {
            self.fail_with("expected success");
        }
        self
    }

    /// Asserts exit `code`.
    pub fn code(self, code: i32) -> Self {
        if self.out.status.code() != Some(code) {
            self.fail_with(&format!("expected exit {code}"));
        }
        self
    }

    /// Asserts any exit but 0 (a signal included).
    pub fn failure(self) -> Self {
        if self.out.status.success() {
            self.fail_with("expected a failure");
        }
        self
    }

    /// stdout, which must be UTF-8.
    pub fn stdout(&self) -> String {
        String::from_utf8(self.out.stdout.clone())
            .unwrap_or_else(|_| self.fail_with("stdout is not UTF-8"))
    }

    /// stderr, which must be UTF-8.
    pub fn stderr(&self) -> String {
        String::from_utf8(self.out.stderr.clone())
            .unwrap_or_else(|_| self.fail_with("stderr is not UTF-8"))
    }

    /// stdout parsed as JSON (a report that must be there).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.out.stdout)
            .unwrap_or_else(|e| self.fail_with(&format!("stdout is not JSON: {e}")))
    }

    /// stdout parsed as JSON, or `Null` when it is not (a report a failure may omit).
    pub fn json_or_null(&self) -> serde_json::Value {
        serde_json::from_slice(&self.out.stdout).unwrap_or(serde_json::Value::Null)
    }
}

#[test]
fn a_failed_check_shows_the_command_line_exit_code_and_both_streams() {
    let ws = super::Workspace::new();
    let failed = std::panic::catch_unwind(|| ws.ota(&["no-such-command"]).ok()).unwrap_err();
    let message = failed.downcast_ref::<String>().unwrap();
    assert!(message.contains("ota-sign no-such-command`"), "{message}");
    assert!(
        message.contains("expected success (exit Some(255))"),
        "{message}"
    );
    assert!(
        message.contains("stdout: \nstderr: ") && message.contains("no-such-command'"),
        "{message}"
    );
    // The exit code is checked exactly, and a success is not a failure.
    assert!(std::panic::catch_unwind(|| ws.ota(&["no-such-command"]).fails(3)).is_err());
    assert!(std::panic::catch_unwind(|| ws.ota(&["--help"]).run().failure()).is_err());
}
