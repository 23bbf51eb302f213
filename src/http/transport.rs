//! The HTTP exchange underneath [`super::ReposerverClient`]: TLS set-up, OAuth2
//! bearer tokens, retries with backoff, size-capped bodies and error messages that
//! name the request but never a secret.
//!
//! ## Retry rule
//! A request is sent again only when doing so cannot change the outcome on the server:
//! - [`Replay::Idempotent`] requests (GETs, `DELETE root/private_keys/…`, the multipart
//!   `url`/part/`complete` steps, the OAuth2 token request) are retried on connection
//!   errors, on errors while reading the answer, and on 429, 500, 502, 503 and 504.
//! - [`Replay::Once`] requests (`PUT targets`, `POST root`, `PUT delegations/…`,
//!   `POST multipart/initiate`, `PUT uploads/…`) are retried **only** when the
//!   connection could not be established (reqwest `is_connect`), i.e. before a single
//!   byte of the request left this machine. A 5xx or a dropped connection after sending
//!   is reported, never retried: the server may have applied the first request, and a
//!   second `PUT targets` would answer 412/409 for a push that in fact succeeded.

use super::tls;
use super::{ClientAuth, ClientOptions, ServerError};
use crate::credentials::OAuth2Config;
use crate::error::{Error, Result};
use reqwest::blocking::{Client, RequestBuilder, Response};
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION};
use reqwest::{Method, StatusCode, Url};
use std::io::Read;
use std::sync::Mutex;
use std::time::Duration;
use zeroize::Zeroizing;

/// The one retry policy of ota-sign: HTTP requests (see the module docs for which
/// may be repeated) and `publish`'s pull-again after a concurrent push both wait
/// [`RetryPolicy::delay`] between attempts.
///
/// Exponential backoff with "equal jitter": attempt `n` (0-based) waits a random delay
/// in [d/2, d], d = `base_delay` · 2^n capped at `max_delay`. A `Retry-After` answer
/// header is honoured: never sooner than the server asks; a server asking for more
/// than [`RETRY_AFTER_MAX`] is not retried (the error says so). So a server that stays
/// down is given up on after at most `retries` × max(`max_delay`, its Retry-After)
/// of waiting plus the attempts themselves (defaults: 4 retries, ≤ 7.5 s of backoff).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Extra attempts after the first.
    pub retries: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
}

/// The longest `Retry-After` that is waited for.
pub const RETRY_AFTER_MAX: Duration = Duration::from_secs(60);

impl RetryPolicy {
    /// The wait before retry `attempt` (0 = the first retry); `retry_after` is the
    /// server's `Retry-After`, if any (already checked against [`RETRY_AFTER_MAX`]).
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let d = self
            .base_delay
            .saturating_mul(1u32 << attempt.min(16))
            .min(self.max_delay);
        let mut r = [0u8; 4];
        let frac = match crate::crypto::fill_random(&mut r) {
            Ok(()) => u32::from_le_bytes(r) as f64 / u32::MAX as f64,
            Err(_) => 1.0,
        };
        let backoff = d / 2 + (d / 2).mul_f64(frac);
        retry_after.map_or(backoff, |ra| ra.max(backoff))
    }
}

/// A `Retry-After` header value: delay-seconds or an HTTP date (RFC 9110 §10.2.3).
/// `None` when it is neither.
pub fn parse_retry_after(value: &str, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    Some(
        (at.with_timezone(&chrono::Utc) - now)
            .to_std()
            .unwrap_or(Duration::ZERO),
    )
}

/// Error bodies are read up to this size; the rest is dropped.
const ERROR_BODY_CAP: u64 = 64 << 10;
/// Cap for small JSON answers (token, multipart steps).
pub(crate) const SMALL_BODY_CAP: u64 = 1 << 20;

/// Whether a request may be sent again after a failure (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Replay {
    Idempotent,
    Once,
}

/// A complete answer: status, headers and the (capped) body.
pub(crate) struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn server_error(&self) -> ServerError {
        ServerError::parse(self.status, &self.body)
    }
}

/// Hosts that get no `Authorization: Bearer`: S3 presigned URLs (`*.amazonaws.com`,
/// garage-sign's `AuthenticatedHttpBackend`), and the Azure blob hosts uptane-sign
/// uploads to with a SAS URL (Azure refuses a request that carries both).
pub fn sends_bearer(url: &Url) -> bool {
    let host = url
        .host_str()
        .unwrap_or("")
        .trim_end_matches('.')
        .to_ascii_lowercase();
    ![
        ".amazonaws.com",
        ".core.windows.net",
        ".core.chinacloudapi.cn",
    ]
    .iter()
    .any(|suffix| host.ends_with(suffix))
}

/// The OAuth2 token URL and form, exactly as garage-sign's `OAuth2Client`: a server
/// ending in `/token` (Cognito) is posted to as is, with the scope; any other server
/// (legacy Auth+) gets `/token` appended and no scope.
pub fn token_request(oauth: &OAuth2Config) -> (String, Vec<(&'static str, String)>) {
    if oauth.server.ends_with("/token") {
        (
            oauth.server.clone(),
            vec![
                ("grant_type", "client_credentials".into()),
                ("scope", oauth.scope.clone()),
            ],
        )
    } else {
        (
            format!("{}/token", oauth.server.trim_end_matches('/')),
            vec![("grant_type", "client_credentials".into())],
        )
    }
}

pub(crate) struct Transport {
    /// The one retry policy (also used by callers that reconcile and resend).
    pub retry: RetryPolicy,
    client: Client,
    oauth: Option<OAuth2Config>,
    token: Mutex<Option<Zeroizing<String>>>,
    /// Scheme, host and port of the reposerver; URLs elsewhere (presigned upload URLs)
    /// are shown without their query, which is where their signature lives.
    home: reqwest::Url,
    pub upload_timeout: Duration,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("home", &self.home.as_str())
            .field("oauth", &self.oauth)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

/// Trusts `roots` in addition to what `builder` already trusts.
fn add_roots(
    builder: reqwest::blocking::ClientBuilder,
    roots: Vec<reqwest::Certificate>,
) -> reqwest::blocking::ClientBuilder {
    roots
        .into_iter()
        .fold(builder, |b, c| b.add_root_certificate(c))
}

impl Transport {
    pub fn new(home: &Url, auth: ClientAuth, opts: &ClientOptions) -> Result<Self> {
        crate::crypto::install_tls_provider();
        let mut builder = Client::builder()
            .user_agent(opts.user_agent.clone())
            .connect_timeout(opts.connect_timeout)
            .timeout(opts.timeout)
            // Redirects are handled where the protocol has them (uploads): reqwest would
            // turn a redirected PUT into a GET without body.
            .redirect(reqwest::redirect::Policy::none());
        let extra = match &opts.cacert {
            Some(p) => tls::ca_bundle(p)?,
            None => Vec::new(),
        };
        let mut oauth = None;
        match auth {
            ClientAuth::None => {
                builder = add_roots(builder, extra);
            }
            ClientAuth::OAuth2(o) => {
                oauth = Some(o);
                builder = add_roots(builder, extra);
            }
            ClientAuth::MutualTls {
                client_p12,
                server_p12,
                client_name,
                server_name,
            } => {
                builder = builder.identity(tls::identity(&client_p12, &client_name)?);
                match server_p12 {
                    // Like a JVM trust store: only these roots (and --cacert) are trusted.
                    Some(server) => {
                        let mut roots = tls::trusted_roots(&server, &server_name)?;
                        roots.extend(extra);
                        builder = add_roots(builder.tls_built_in_root_certs(false), roots);
                    }
                    None => builder = add_roots(builder, extra),
                }
            }
        }
        let client = builder
            .build()
            .map_err(|e| Error::Other(format!("cannot set up the HTTP client: {}", chain(&e))))?;
        Ok(Transport {
            client,
            oauth,
            token: Mutex::new(None),
            home: home.clone(),
            retry: opts.retry_policy(),
            upload_timeout: opts.upload_timeout,
        })
    }

    /// Whether a request to `url` carries the bearer token: only on the reposerver's
    /// own origin (scheme, host, port), and never to S3/Azure hosts ([`sends_bearer`]).
    pub fn authorizes(&self, url: &Url) -> bool {
        url.origin() == self.home.origin() && sends_bearer(url)
    }

    /// The URL as it may appear in messages and logs: no user info, and no query for
    /// hosts other than the reposerver's.
    pub fn shown(&self, url: &Url) -> String {
        let mut u = url.clone();
        let _ = u.set_username("");
        let _ = u.set_password(None);
        if u.origin() != self.home.origin() {
            u.set_query(None);
        }
        u.set_fragment(None);
        u.to_string()
    }

    pub fn http_error(&self, method: &Method, url: &Url, message: impl Into<String>) -> Error {
        Error::Http {
            method: method.to_string(),
            url: self.shown(url),
            message: message.into(),
        }
    }

    /// The bearer token, obtained on first use and kept for the client's life.
    fn token(&self, oauth: &OAuth2Config) -> Result<Zeroizing<String>> {
        let mut slot = self.token.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(t) = slot.as_ref() {
            return Ok(t.clone());
        }
        let (token_url, form) = token_request(oauth);
        let url = Url::parse(&token_url).map_err(|e| {
            Error::invalid(
                "auth server",
                format!("{token_url:?} is not a valid URL: {e}"),
            )
        })?;
        let answer = self.exchange_inner(
            Method::POST,
            &url,
            Replay::Idempotent,
            SMALL_BODY_CAP,
            false,
            &|rb| {
                Ok(rb
                    .basic_auth(&oauth.client_id, Some(&oauth.client_secret))
                    .form(&form))
            },
        )?;
        if !answer.status.is_success() {
            // OAuth2 error bodies are {"error": "invalid_client", ...}; show the code only.
            let code = serde_json::from_slice::<serde_json::Value>(&answer.body)
                .ok()
                .and_then(|v| {
                    v.get("error")
                        .and_then(|e| e.as_str())
                        .map(|s| format!(" ({s})"))
                })
                .unwrap_or_default();
            return Err(self.http_error(
                &Method::POST,
                &url,
                format!(
                    "{}{code}: the authorization server refused the client credentials of client_id {:?}; \
                     check the oauth2 section of treehub.json in credentials.zip",
                    answer.status, oauth.client_id
                ),
            ));
        }
        let body = Zeroizing::new(answer.body);
        let token = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|mut v| {
                let token = match v.get_mut("access_token").map(serde_json::Value::take) {
                    Some(serde_json::Value::String(s)) => Some(Zeroizing::new(s)),
                    _ => None,
                };
                // refresh_token, id_token, …: wiped with the rest of the answer.
                crate::credentials::wipe(v);
                token
            })
            .ok_or_else(|| {
                self.http_error(
                    &Method::POST,
                    &url,
                    "the token answer is not JSON with a string access_token",
                )
            })?;
        *slot = Some(token.clone());
        Ok(token)
    }

    /// One request (with retries as [`Replay`] allows) and its answer. `build` adds
    /// headers and body; it is called again for each attempt. The bearer token goes
    /// only to the reposerver's own origin ([`Transport::authorizes`]): never to a
    /// multipart part URL, a redirect `Location` or any other host a server names.
    pub fn exchange(
        &self,
        method: Method,
        url: &Url,
        replay: Replay,
        cap: u64,
        build: &dyn Fn(RequestBuilder) -> Result<RequestBuilder>,
    ) -> Result<Answer> {
        self.exchange_inner(method, url, replay, cap, true, build)
    }

    /// The `Location` of a redirect answer, resolved against the request URL; an
    /// https → http downgrade is refused.
    pub fn redirect_target(&self, method: &Method, from: &Url, answer: &Answer) -> Result<Url> {
        let to = answer
            .header("location")
            .and_then(|l| from.join(l).ok())
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .ok_or_else(|| {
                self.http_error(
                    method,
                    from,
                    format!("{} without a usable Location header", answer.status),
                )
            })?;
        if from.scheme() == "https" && to.scheme() != "https" {
            return Err(self.http_error(
                method,
                from,
                format!(
                    "{} to plain http refused: {}",
                    answer.status,
                    self.shown(&to)
                ),
            ));
        }
        log::debug!(
            "{method} {} redirected to {}",
            self.shown(from),
            self.shown(&to)
        );
        Ok(to)
    }

    fn exchange_inner(
        &self,
        method: Method,
        url: &Url,
        replay: Replay,
        cap: u64,
        authorize: bool,
        build: &dyn Fn(RequestBuilder) -> Result<RequestBuilder>,
    ) -> Result<Answer> {
        let bearer = match &self.oauth {
            Some(o) if authorize && self.authorizes(url) => {
                let token = self.token(o)?;
                let header = Zeroizing::new(format!("Bearer {}", token.as_str()));
                let mut v = HeaderValue::from_str(&header).map_err(|_| {
                    self.http_error(&method, url, "the access token is not a valid header value")
                })?;
                v.set_sensitive(true);
                Some(v)
            }
            _ => None,
        };
        let shown = self.shown(url);
        let mut attempt = 0u32;
        loop {
            let mut rb = self.client.request(method.clone(), url.clone());
            if let Some(b) = &bearer {
                rb = rb.header(AUTHORIZATION, b.clone());
            }
            let rb = build(rb)?;
            let outcome = rb
                .send()
                .map_err(Failure::Transport)
                .and_then(|resp| read_answer(resp, cap));
            let retry_because = match &outcome {
                Ok(a) if retryable_status(a.status, replay) => Some(a.status.to_string()),
                Ok(_) => None,
                Err(Failure::Transport(e))
                    if e.is_connect() || (replay == Replay::Idempotent && !e.is_builder()) =>
                {
                    Some(chain(e))
                }
                Err(Failure::Read(e)) if replay == Replay::Idempotent => Some(chain(e)),
                Err(_) => None,
            };
            let retry_after = match &outcome {
                Ok(a) if retry_because.is_some() => a
                    .header("retry-after")
                    .and_then(|v| parse_retry_after(v, chrono::Utc::now())),
                _ => None,
            };
            if let Some(ra) = retry_after.filter(|ra| *ra > RETRY_AFTER_MAX) {
                // Honouring it would exceed the documented bound: say so instead.
                return Err(self.http_error(
                    &method,
                    url,
                    format!(
                        "{}: the server asks to retry after {} s, longer than ota-sign waits ({} s); try again later",
                        retry_because.unwrap_or_default(),
                        ra.as_secs(),
                        RETRY_AFTER_MAX.as_secs()
                    ),
                ));
            }
            match (retry_because, outcome) {
                (Some(why), _) if attempt < self.retry.retries => {
                    let delay = self.retry.delay(attempt, retry_after);
                    log::warn!(
                        "{method} {shown}: {why}; retry {}/{} in {delay:?}",
                        attempt + 1,
                        self.retry.retries
                    );
                    std::thread::sleep(delay);
                    attempt += 1;
                }
                (_, Ok(a)) => {
                    log::debug!("{method} {shown} -> {}", a.status);
                    return Ok(a);
                }
                (_, Err(Failure::Transport(e))) => {
                    let what = if e.is_connect() {
                        "cannot connect to the server"
                    } else if e.is_timeout() {
                        "the request timed out"
                    } else {
                        "the request failed"
                    };
                    let tries = if attempt > 0 {
                        format!(" (after {} attempts)", attempt + 1)
                    } else {
                        String::new()
                    };
                    return Err(self.http_error(
                        &method,
                        url,
                        format!("{what}{tries}: {}", chain(&e)),
                    ));
                }
                (_, Err(Failure::Read(e))) => {
                    return Err(self.http_error(
                        &method,
                        url,
                        format!("reading the answer failed: {}", chain(&e)),
                    ))
                }
                (_, Err(Failure::TooLarge(n))) => {
                    return Err(self.http_error(
                        &method,
                        url,
                        format!(
                            "the server's answer is larger than {n} bytes; refusing to read it"
                        ),
                    ))
                }
            }
        }
    }
}

enum Failure {
    /// Sending, or receiving the status and headers.
    Transport(reqwest::Error),
    /// Reading the body.
    Read(std::io::Error),
    TooLarge(u64),
}

/// Statuses worth another attempt of an idempotent request.
pub(crate) fn retryable_status(s: StatusCode, replay: Replay) -> bool {
    replay == Replay::Idempotent && matches!(s.as_u16(), 429 | 500 | 502 | 503 | 504)
}

/// Reads the body: up to `cap` bytes for a success (more is an error), up to
/// [`ERROR_BODY_CAP`] for anything else (the rest is dropped).
fn read_answer(mut resp: Response, cap: u64) -> std::result::Result<Answer, Failure> {
    let status = resp.status();
    let headers = std::mem::take(resp.headers_mut());
    let limit = if status.is_success() {
        cap
    } else {
        cap.min(ERROR_BODY_CAP)
    };
    if status.is_success() && resp.content_length().is_some_and(|n| n > cap) {
        return Err(Failure::TooLarge(cap));
    }
    let mut body = Vec::new();
    let mut reader = (&mut resp).take(limit + 1);
    if let Err(e) = reader.read_to_end(&mut body) {
        // reqwest's blocking reader wraps its own error in io::Error.
        return Err(Failure::Read(e));
    }
    if body.len() as u64 > limit {
        if status.is_success() {
            return Err(Failure::TooLarge(cap));
        }
        body.truncate(limit as usize);
    }
    Ok(Answer {
        status,
        headers,
        body,
    })
}

/// An error and its sources, deduplicated: `error sending request: client error
/// (Connect): tcp connect error: Connection refused (os error 111)`.
pub(crate) fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        let s = match err.downcast_ref::<reqwest::Error>() {
            // reqwest's Display repeats the URL, which may hold a presigned signature.
            Some(re) if re.url().is_some() => {
                let mut s = re.to_string();
                if let Some(u) = re.url() {
                    s = s.replace(&format!(" for url ({u})"), "");
                }
                s
            }
            _ => err.to_string(),
        };
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
        cur = err.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_rule() {
        let no = [
            "https://bucket.s3.amazonaws.com/x?X-Amz-Signature=1",
            "https://s3.eu-west-1.AMAZONAWS.com./k",
            "https://acct.blob.core.windows.net/c/b",
        ];
        for u in no {
            assert!(!sends_bearer(&Url::parse(u).unwrap()), "{u}");
        }
        let yes = [
            "https://ota.example.com/api",
            "http://127.0.0.1:8085/",
            "https://amazonaws.com.evil.example/",
            "https://notamazonaws.com/",
        ];
        for u in yes {
            assert!(sends_bearer(&Url::parse(u).unwrap()), "{u}");
        }
    }

    fn oauth(server: &str) -> OAuth2Config {
        OAuth2Config {
            server: server.into(),
            client_id: "id".into(),
            client_secret: "secret".into(),
            scope: "ota-treehub/namespace.default".into(),
        }
    }

    #[test]
    fn token_request_styles() {
        let (url, form) = token_request(&oauth(
            "https://x.auth.eu-west-1.amazoncognito.com/oauth2/token",
        ));
        assert_eq!(
            url,
            "https://x.auth.eu-west-1.amazoncognito.com/oauth2/token"
        );
        assert_eq!(
            form,
            vec![
                ("grant_type", "client_credentials".to_string()),
                ("scope", "ota-treehub/namespace.default".to_string())
            ]
        );
        let (url, form) = token_request(&oauth("https://auth-plus.atsgarage.com"));
        assert_eq!(url, "https://auth-plus.atsgarage.com/token");
        assert_eq!(form, vec![("grant_type", "client_credentials".to_string())]);
    }
}
