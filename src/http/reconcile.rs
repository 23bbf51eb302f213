//! Pushes whose answer was lost are reconciled, never blindly resent.
//!
//! `PUT targets` and `POST root` change server state, so the transport sends them once
//! ([`Replay::Once`]). When the answer is lost (dropped connection, timeout) or is a
//! transient error (429, 500, 502, 503, 504), the server's state is read back:
//! - it holds exactly the document just sent: the push **was** applied (done);
//! - it still holds the previous state (same targets checksum / no such root version):
//!   nothing was applied, and the push is sent again after the one
//!   [`super::RetryPolicy`]'s delay, honouring `Retry-After`;
//! - anything else (another builder pushed meanwhile, the read-back fails): the
//!   original error is reported.
//!
//! A resend that is refused (412, 409) is read back once more: a slow first attempt
//! may have been applied after the client gave up on it.
//!
//! So transient faults are survived without ever turning a successful push into a
//! 412/409 on a blind resend, and without pushing twice.

use super::transport::{parse_retry_after, Answer, RETRY_AFTER_MAX};
use super::ReposerverClient;
use crate::error::{Error, Result};
use crate::metadata::SignedPayload;
use crate::schema::Sha256;
use reqwest::{Method, Url};

/// The state of the server after a push whose outcome was unclear.
pub(crate) enum Observed {
    /// The document that was pushed is there; the checksum if the server sent one.
    Applied(Option<Sha256>),
    /// Nothing changed: sending again is safe.
    Unchanged,
    /// Something else happened; report the original failure.
    Other,
}

/// The outcome of [`ReposerverClient::send_reconciled`].
pub(crate) enum Sent {
    /// An answer to interpret (success or a definite error).
    Answer(Answer),
    /// The answer was lost but the server shows the push applied.
    Applied(Option<Sha256>),
}

fn transient(a: &Answer) -> bool {
    matches!(a.status.as_u16(), 429 | 500 | 502 | 503 | 504)
}

impl ReposerverClient {
    /// Sends `doc` once per attempt; after an unclear outcome, `observe` reads the
    /// server's state back (see the module docs).
    pub(crate) fn send_reconciled(
        &self,
        method: Method,
        url: &Url,
        body: &[u8],
        checksum: Option<&str>,
        observe: &dyn Fn() -> Result<Observed>,
    ) -> Result<Sent> {
        let policy = self.http.retry;
        let mut attempt = 0u32;
        loop {
            let sent = self.send_body(method.clone(), url, body.to_vec(), checksum);
            let (why, retry_after) = match &sent {
                Ok(a) if transient(a) => (
                    a.status.to_string(),
                    a.header("retry-after")
                        .and_then(|v| parse_retry_after(v, chrono::Utc::now())),
                ),
                Err(e @ Error::Http { .. }) => (e.to_string(), None),
                // A definite refusal of a resend (412, 409) may be our own earlier,
                // delayed attempt having been applied after all: look once more.
                Ok(a) if attempt > 0 && !a.status.is_success() => {
                    if let Ok(Observed::Applied(c)) = observe() {
                        log::info!(
                            "{method} {}: an earlier attempt was applied",
                            self.http.shown(url)
                        );
                        return Ok(Sent::Applied(c));
                    }
                    return sent.map(Sent::Answer);
                }
                _ => return sent.map(Sent::Answer),
            };
            if attempt >= policy.retries || retry_after.is_some_and(|r| r > RETRY_AFTER_MAX) {
                return sent.map(Sent::Answer);
            }
            match observe() {
                Ok(Observed::Applied(c)) => {
                    log::info!(
                        "{method} {}: the answer was lost ({why}), but the server holds the pushed document",
                        self.http.shown(url)
                    );
                    return Ok(Sent::Applied(c));
                }
                Ok(Observed::Unchanged) => {}
                Ok(Observed::Other) | Err(_) => return sent.map(Sent::Answer),
            }
            let delay = policy.delay(attempt, retry_after);
            log::warn!(
                "{method} {}: {why}; the server did not apply it; sending again ({}/{}) in {delay:?}",
                self.http.shown(url),
                attempt + 1,
                policy.retries
            );
            std::thread::sleep(delay);
            attempt += 1;
        }
    }

    /// After an unclear `PUT targets` sent with `checksum`.
    pub(crate) fn observe_targets(&self, body: &[u8], checksum: &str) -> Result<Observed> {
        let pushed = SignedPayload::parse(body, "the pushed targets.json")?;
        let now = self.get_targets()?;
        Ok(if now.payload.canonical() == pushed.canonical() {
            Observed::Applied(Some(now.checksum))
        } else if now.checksum.as_str().eq_ignore_ascii_case(checksum) {
            Observed::Unchanged
        } else {
            Observed::Other
        })
    }

    /// After an unclear `POST root` of `pushed`.
    pub(crate) fn observe_root(&self, pushed: &SignedPayload) -> Result<Observed> {
        let Some(version) = pushed.version() else {
            return Ok(Observed::Other);
        };
        Ok(match self.get_root_version(version)? {
            None => Observed::Unchanged,
            Some(f) if f.payload.canonical() == pushed.canonical() => Observed::Applied(None),
            Some(_) => Observed::Other,
        })
    }
}
