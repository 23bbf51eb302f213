//! Request authentication for the OAuth2 mode: the `/token` endpoint (HTTP Basic +
//! `grant_type=client_credentials`) and the bearer check. Tokens live in memory only
//! (clients fetch one per command, as garage-sign does); a restart invalidates them.
//! Mutual TLS is enforced by the TLS layer ([`super::tls`]).

use super::account::OAuth2Account;
use super::errors::random_hex;
use crate::crypto::sha256_hex;
use base64::Engine;
use std::collections::HashSet;
use std::sync::Mutex;

/// Lifetime announced in `expires_in` (tokens are not actually expired).
pub const TOKEN_LIFETIME_SECS: u64 = 3600;

/// The bearer tokens issued, kept as their sha256 only.
#[derive(Default)]
pub struct Tokens(Mutex<HashSet<String>>);

/// Compares secrets through their hashes, so the comparison time says nothing about
/// the secret.
pub(super) fn same_secret(a: &str, b: &str) -> bool {
    sha256_hex(a.as_bytes()) == sha256_hex(b.as_bytes())
}

/// The credentials of an `Authorization` header of `scheme` (`Basic`, `Bearer`),
/// the scheme written as given or in lower case.
fn credentials<'a>(header: &'a str, scheme: &str) -> Option<&'a str> {
    let (given, rest) = header.split_once(' ')?;
    (given == scheme || given == scheme.to_ascii_lowercase()).then_some(rest)
}

impl Tokens {
    fn set(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Checks `Authorization: Basic …` against the client credentials and issues a
    /// token. `Err` carries the OAuth2 error code.
    pub fn issue(
        &self,
        authorization: Option<&str>,
        form: &[(String, String)],
        client: &OAuth2Account,
    ) -> Result<String, &'static str> {
        let Some(basic) = authorization.and_then(|h| credentials(h, "Basic")) else {
            return Err("invalid_client");
        };
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(basic.trim())
            .map_err(|_| "invalid_client")?;
        let decoded = String::from_utf8(decoded).map_err(|_| "invalid_client")?;
        let (id, secret) = decoded.split_once(':').ok_or("invalid_client")?;
        if !(same_secret(id, &client.client_id) && same_secret(secret, &client.client_secret)) {
            return Err("invalid_client");
        }
        let grant = form
            .iter()
            .find(|(k, _)| k == "grant_type")
            .map(|(_, v)| v.as_str());
        if grant != Some("client_credentials") {
            return Err("unsupported_grant_type");
        }
        let token = random_hex(32).map_err(|_| "server_error")?;
        self.set().insert(sha256_hex(token.as_bytes()));
        Ok(token)
    }

    /// Whether `Authorization: Bearer <token>` carries an issued token.
    pub fn check(&self, authorization: Option<&str>) -> bool {
        authorization
            .and_then(|h| credentials(h, "Bearer"))
            .is_some_and(|t| self.set().contains(&sha256_hex(t.trim().as_bytes())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorization_schemes() {
        assert_eq!(credentials("Basic YTpi", "Basic"), Some("YTpi"));
        assert_eq!(credentials("basic YTpi", "Basic"), Some("YTpi"));
        assert_eq!(credentials("Bearer t ", "Bearer"), Some("t "));
        assert_eq!(credentials("BEARER t", "Bearer"), None);
        assert_eq!(credentials("Bearer", "Bearer"), None);
        assert_eq!(credentials("Basic t", "Bearer"), None);
    }
}
