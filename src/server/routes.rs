//! Request routing: fault injection, authentication, the `user_repo` API
//! (reference/reposerver.md §2.1), the storage URLs that stand in for S3 presigned
//! URLs, `/token` and the admin routes. One log line per request.

use super::account::{Account, AuthMode};
use super::auth::{same_secret, Tokens, TOKEN_LIFETIME_SECS};
use super::errors::ApiError;
use super::faults::{FaultAction, FaultRule, Faults};
use super::rules::TARGET_FORMATS;
use super::state::{Store, Stored};
use super::uploads::{
    file_body, unknown_upload, PartNumber, Received, SizeLimit, Storage, UploadId,
};
use crate::crypto::sha256_hex;
use crate::http::ROLE_CHECKSUM;
use crate::metadata::Expires;
use crate::schema::{HardwareId, KeyId, RoleName, TargetName};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Instant;

/// A response body.
pub type Body = BoxBody<Bytes, std::io::Error>;
/// A response.
pub type Resp = Response<Body>;

/// Metadata bodies (targets, root, delegations) are capped at this size, before and
/// after undoing a `Content-Encoding`: the size clients accept from a server, so
/// whatever we accept they can download again.
pub const MAX_METADATA_BODY: SizeLimit = SizeLimit(crate::http::METADATA_CAP);
/// The small JSON bodies: fault rules (`/_admin/faults`) and `multipart/complete`.
const MAX_JSON_BODY: SizeLimit = SizeLimit(1 << 20);
/// The `/token` form.
const MAX_FORM_BODY: SizeLimit = SizeLimit(64 << 10);
const PREFIX: &str = "/api/v1/user_repo";
const ADMIN_HEADER: &str = "x-ota-admin-token";

/// Returned by the service to make hyper drop the connection without an answer.
#[derive(Debug)]
pub struct ConnectionReset;

impl std::fmt::Display for ConnectionReset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection reset (fault injection)")
    }
}

impl std::error::Error for ConnectionReset {}

/// Everything a request handler needs.
pub struct App {
    /// Shared with the blocking pool (see [`blocking`]).
    pub store: Arc<Store>,
    /// Uploaded target files and uploads in progress.
    pub storage: Arc<Storage>,
    /// The account: repo id, auth mode, admin token.
    pub account: Account,
    /// OAuth2 bearer tokens issued.
    pub tokens: Tokens,
    /// Fault-injection rules.
    pub faults: Faults,
    /// `http(s)://127.0.0.1:PORT`, for the storage URLs we hand out.
    pub base_url: String,
    /// `false`: the multipart routes answer `501 not_implemented`.
    pub multipart: bool,
    /// Multipart part size handed to clients.
    pub part_size: u64,
    /// Largest upload accepted.
    pub upload_limit: SizeLimit,
}

/// Runs blocking work (the store's lock, file writes, fsync, signing, concatenating
/// parts) on tokio's blocking pool, so a slow request never stalls the runtime that
/// answers `/health` and other clients.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(format!("a worker task failed: {e}")))?
}

/// [`blocking`] with the store.
async fn with_store<T: Send + 'static>(
    app: &App,
    f: impl FnOnce(&Store) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let store = app.store.clone();
    blocking(move || f(&store)).await
}

/// [`blocking`] with the upload storage.
async fn with_storage<T: Send + 'static>(
    app: &App,
    f: impl FnOnce(&Storage) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let storage = app.storage.clone();
    blocking(move || f(&storage)).await
}

fn full(status: StatusCode, content_type: Option<&str>, bytes: impl Into<Bytes>) -> Resp {
    let mut r = Response::new(
        Full::new(bytes.into())
            .map_err(|never| match never {})
            .boxed(),
    );
    *r.status_mut() = status;
    if let Some(ct) = content_type {
        if let Ok(v) = HeaderValue::from_str(ct) {
            r.headers_mut().insert(CONTENT_TYPE, v);
        }
    }
    r
}

fn json_resp(status: StatusCode, v: &Value) -> Resp {
    full(status, Some("application/json"), v.to_string())
}

fn empty(status: StatusCode) -> Resp {
    full(status, None, Bytes::new())
}

fn err_resp(e: &ApiError) -> Resp {
    json_resp(e.status, &e.body())
}

fn set_header(r: &mut Resp, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        r.headers_mut().insert(name, v);
    }
}

fn role_resp(s: &Stored) -> Resp {
    let mut r = full(StatusCode::OK, Some("application/json"), s.bytes.clone());
    set_header(&mut r, ROLE_CHECKSUM, &s.checksum);
    r
}

/// The service function: one log line per request (never with the query string,
/// which may carry storage tokens).
pub async fn handle(app: Arc<App>, req: Request<Incoming>) -> Result<Resp, ConnectionReset> {
    let start = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let result = route(&app, req).await;
    let ms = start.elapsed().as_millis();
    match &result {
        Ok(r) => log::info!("{method} {path} {} {ms}ms", r.status().as_u16()),
        Err(_) => log::info!("{method} {path} reset {ms}ms"),
    }
    result
}

/// The admin routes first (never faulted), then an injected fault if a rule matches,
/// then the routes themselves; errors become their JSON answers here.
async fn route(app: &App, req: Request<Incoming>) -> Result<Resp, ConnectionReset> {
    let path = req.uri().path().to_string();
    if path == "/_admin/faults" {
        return Ok(admin(app, req).await.unwrap_or_else(|e| err_resp(&e)));
    }
    if let Some(fault) = injected_fault(app, req.method(), &path).await {
        return fault;
    }
    let result = if path == "/health" {
        Ok(json_resp(StatusCode::OK, &json!({"status": "OK"})))
    } else if path == "/token" && app.account.auth == AuthMode::Oauth2 {
        token(app, req).await
    } else if let Some(rest) = path.strip_prefix("/_storage/") {
        let rest = rest.to_string();
        storage(app, req, &rest).await
    } else if path.starts_with("/api/") {
        if let Some(refused) = bearer_refusal(app, &req) {
            return Ok(refused);
        }
        api(app, req, &path).await
    } else {
        Err(not_found())
    };
    Ok(result.unwrap_or_else(|e| err_resp(&e)))
}

/// What the first fault rule matching the request does instead of answering it: an
/// error status or a reset. A delay is waited out here and the request goes on.
async fn injected_fault(
    app: &App,
    method: &Method,
    path: &str,
) -> Option<Result<Resp, ConnectionReset>> {
    match app.faults.take(method.as_str(), path)? {
        FaultAction::Reset => Some(Err(ConnectionReset)),
        FaultAction::Status { status } => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            Some(Ok(err_resp(&ApiError::new(
                status,
                "fault_injected",
                "fault injected by the test harness",
            ))))
        }
        FaultAction::Delay { delay_ms } => {
            tokio::time::sleep(std::time::Duration::from_millis(delay_ms)).await;
            None
        }
    }
}

/// In OAuth2 mode, every `/api/` route needs a bearer token issued by `/token`: 401
/// with `WWW-Authenticate: Bearer` otherwise.
fn bearer_refusal(app: &App, req: &Request<Incoming>) -> Option<Resp> {
    if app.account.auth != AuthMode::Oauth2 || app.tokens.check(header(req, "authorization")) {
        return None;
    }
    let mut r = err_resp(&ApiError::new(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "a valid bearer token is required (POST /token first)",
    ));
    set_header(&mut r, "www-authenticate", "Bearer");
    Some(r)
}

/// A request header as text (`None` when absent or not visible ASCII).
fn header<'a>(req: &'a Request<Incoming>, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// Reads a whole (small) body into memory, 413 `payload_too_large` beyond `limit`.
async fn read_body(body: Incoming, limit: SizeLimit) -> Result<Bytes, ApiError> {
    match Limited::new(body, limit.as_usize()).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => Err(limit.too_large()),
        Err(e) => Err(ApiError::invalid_entity(format!(
            "reading the body failed: {e}"
        ))),
    }
}

/// Reads a metadata body, undoing `Content-Encoding: gzip`/`deflate` (as upstream's
/// `decodeRequest`); the decoded size is capped too, so a small bomb cannot expand.
async fn read_metadata_body(req: Request<Incoming>) -> Result<Bytes, ApiError> {
    let encoding = header(&req, "content-encoding").map(str::to_ascii_lowercase);
    let raw = read_body(req.into_body(), MAX_METADATA_BODY).await?;
    decode_metadata_body(encoding.as_deref(), raw)
}

/// Undoes a `Content-Encoding` (lower-case) of a metadata body, capped at
/// [`MAX_METADATA_BODY`] decoded bytes (fuzzed: fuzz/fuzz_targets/server_request.rs).
pub fn decode_metadata_body(encoding: Option<&str>, raw: Bytes) -> Result<Bytes, ApiError> {
    use std::io::Read;
    let mut out = Vec::new();
    let limit = MAX_METADATA_BODY.0 + 1;
    let result = match encoding {
        None | Some("identity") => return Ok(raw),
        Some("gzip") | Some("x-gzip") => flate2::read::GzDecoder::new(&raw[..])
            .take(limit)
            .read_to_end(&mut out),
        Some("deflate") => flate2::read::ZlibDecoder::new(&raw[..])
            .take(limit)
            .read_to_end(&mut out),
        Some(other) => {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_encoding",
                format!("Content-Encoding {other} is not supported"),
            ))
        }
    };
    result.map_err(|e| ApiError::invalid_entity(format!("cannot decode the request body: {e}")))?;
    MAX_METADATA_BODY.check(out.len() as u64)?;
    Ok(Bytes::from(out))
}

/// Percent-decoding (`+` is kept unless `form`).
pub fn percent_decode(s: &str, form: bool) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                match u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16)
                {
                    Ok(v) => {
                        out.push(v);
                        i += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b'+' if form => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `a=b&c=d` into decoded pairs, in order.
pub fn parse_query(q: Option<&str>) -> Vec<(String, String)> {
    q.unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k, true), percent_decode(v, true))
        })
        .collect()
}

fn param<'a>(q: &'a [(String, String)], name: &str) -> Option<&'a str> {
    q.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// `targets.json`, `snapshot.json` or `timestamp.json`: the roles served as signed
/// (root has its own versioned routes).
fn online_role(segment: &str) -> Option<RoleName> {
    let role: RoleName = segment.strip_suffix(".json")?.parse().ok()?;
    (role != RoleName::Root).then_some(role)
}

/// A target filename from a route, 400 `invalid_entity` naming the rule it breaks.
fn valid_filename(f: &str) -> Result<TargetName, ApiError> {
    TargetName::parse(f).map_err(|e| ApiError::invalid_entity(format!("invalid {e}")))
}

/// The token that authorises a storage URL (our stand-in for an S3 signature): it
/// covers the decoded path after `/_storage/`.
fn storage_token(app: &App, what: &str) -> String {
    sha256_hex(format!("{}\n{what}", app.account.admin_token).as_bytes())
}

/// 403 `access_denied` unless the query's `token` is the one [`storage_url`] put in
/// the URL of `what`.
fn check_storage_token(app: &App, what: &str, query: Option<&str>) -> Result<(), ApiError> {
    let q = parse_query(query);
    if !same_secret(param(&q, "token").unwrap_or(""), &storage_token(app, what)) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "access_denied",
            "invalid or missing storage token",
        ));
    }
    Ok(())
}

/// Our "presigned" URL of `route`: the path percent-encoded (`/` kept), the token of
/// its decoded form in the query.
fn storage_url(app: &App, route: &StorageRoute) -> String {
    let what = route.to_string();
    format!(
        "{}/_storage/{}?token={}",
        app.base_url,
        percent_encode_path(&what),
        storage_token(app, &what)
    )
}

/// Percent-encodes a URL path: everything but unreserved characters and `/`, so
/// [`percent_decode`] gives `path` back.
fn percent_encode_path(path: &str) -> String {
    path.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn token(app: &App, req: Request<Incoming>) -> Result<Resp, ApiError> {
    if req.method() != Method::POST {
        return Err(method_not_allowed());
    }
    let Some(client) = &app.account.oauth2 else {
        return Err(ApiError::not_found(
            "not_found",
            "no OAuth2 client configured",
        ));
    };
    let authorization = header(&req, "authorization").map(str::to_string);
    let body = read_body(req.into_body(), MAX_FORM_BODY).await?;
    let form = parse_query(std::str::from_utf8(&body).ok());
    match app.tokens.issue(authorization.as_deref(), &form, client) {
        Ok(t) => Ok(json_resp(
            StatusCode::OK,
            &json!({"access_token": t, "token_type": "Bearer", "expires_in": TOKEN_LIFETIME_SECS, "scope": client.scope}),
        )),
        Err(code) => {
            let status = if code == "invalid_client" {
                StatusCode::UNAUTHORIZED
            } else {
                StatusCode::BAD_REQUEST
            };
            Ok(json_resp(status, &json!({"error": code})))
        }
    }
}

async fn admin(app: &App, req: Request<Incoming>) -> Result<Resp, ApiError> {
    let given = header(&req, ADMIN_HEADER).unwrap_or("");
    if !same_secret(given, &app.account.admin_token) {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            format!("the {ADMIN_HEADER} header is missing or wrong"),
        ));
    }
    match *req.method() {
        Method::GET => Ok(json_resp(StatusCode::OK, &json!(app.faults.list()))),
        Method::DELETE => {
            app.faults.clear();
            Ok(empty(StatusCode::NO_CONTENT))
        }
        Method::POST => {
            let body = read_body(req.into_body(), MAX_JSON_BODY).await?;
            let v: Value = serde_json::from_slice(&body)
                .map_err(|e| ApiError::invalid_entity(e.to_string()))?;
            let rules: Vec<FaultRule> = match v {
                Value::Array(_) => serde_json::from_value(v),
                other => serde_json::from_value(other).map(|r| vec![r]),
            }
            .map_err(|e| ApiError::invalid_entity(e.to_string()))?;
            app.faults.add(rules);
            Ok(json_resp(StatusCode::OK, &json!(app.faults.list())))
        }
        _ => Err(method_not_allowed()),
    }
}

/// `405 method_not_allowed`: a known route, another method.
fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "HTTP method not allowed",
    )
}

/// A storage URL (`/_storage/<path>?token=…`), our stand-in for an S3 presigned URL,
/// parsed from its percent-decoded path. [`storage_url`] writes them, so
/// `parse(route.to_string()) == route`.
#[derive(Debug, PartialEq, Eq)]
enum StorageRoute {
    /// `uploads/<file>`: where `PUT uploads/<file>` sends the body, and what
    /// `GET uploads/<file>` redirects to.
    Upload(TargetName),
    /// `multipart/<uploadId>/<part>`: one part of a multipart upload.
    Part(UploadId, PartNumber),
}

impl StorageRoute {
    /// The route of a decoded storage path; `None` for anything we never hand out
    /// (an empty, `.` or `..` segment, a bad upload id or part number, extra parts).
    fn parse(decoded: &str) -> Option<StorageRoute> {
        let segments: Vec<&str> = decoded.split('/').collect();
        match segments.as_slice() {
            ["uploads", name @ ..] => TargetName::parse(&name.join("/"))
                .ok()
                .map(StorageRoute::Upload),
            ["multipart", id, part] => Some(StorageRoute::Part(
                UploadId::parse(id)?,
                PartNumber::parse(part)?,
            )),
            _ => None,
        }
    }
}

impl std::fmt::Display for StorageRoute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StorageRoute::Upload(name) => write!(f, "uploads/{name}"),
            StorageRoute::Part(id, part) => write!(f, "multipart/{id}/{part}"),
        }
    }
}

/// `/_storage/…`: the token is checked against the decoded path first (a URL we did
/// not hand out is refused before its shape is looked at), then the typed route is
/// dispatched.
async fn storage(app: &App, req: Request<Incoming>, raw: &str) -> Result<Resp, ApiError> {
    let what = percent_decode(raw, false);
    check_storage_token(app, &what, req.uri().query())?;
    let route = StorageRoute::parse(&what)
        .ok_or_else(|| ApiError::not_found("not_found", "bad storage URL"))?;
    match (req.method().clone(), route) {
        (Method::GET, StorageRoute::Upload(name)) => {
            require_upload(app, &name)?;
            Ok(file_resp(app, &name))
        }
        (Method::PUT, route) => storage_put(app, req, route).await,
        _ => Err(method_not_allowed()),
    }
}

/// `PUT` on a storage URL: the body becomes target file `name` (the target itself is
/// added by the client's later `PUT targets`) or one part of a multipart upload.
/// Answers the ETag, which multipart clients send back in `multipart/complete`.
async fn storage_put(
    app: &App,
    req: Request<Incoming>,
    route: StorageRoute,
) -> Result<Resp, ApiError> {
    let received = receive_body(app, req).await?;
    let etag = with_storage(app, move |s| match route {
        StorageRoute::Upload(name) => {
            let etag = received.etag();
            s.commit(received, &name)?;
            Ok(etag)
        }
        StorageRoute::Part(id, part) => s.store_part(&id, part, received),
    })
    .await?;
    let mut r = empty(StatusCode::OK);
    set_header(&mut r, "etag", &etag);
    Ok(r)
}

/// Streams a request body to a temporary file, capped at the upload limit.
async fn receive_body(app: &App, req: Request<Incoming>) -> Result<Received, ApiError> {
    app.storage.receive(req.into_body(), app.upload_limit).await
}

/// 404 `target_not_found` unless target file `name` has been uploaded.
fn require_upload(app: &App, name: &TargetName) -> Result<(), ApiError> {
    if !app.storage.exists(name) {
        return Err(ApiError::not_found(
            "target_not_found",
            format!("no upload {name}"),
        ));
    }
    Ok(())
}

/// The stored file of target `name`, streamed.
fn file_resp(app: &App, name: &TargetName) -> Resp {
    let mut r = Response::new(file_body(app.storage.path_for(name)).boxed());
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    r
}

/// `/api/v1/user_repo/…` and `/api/v1/repo/<our id>/…`: the same routes, answered
/// with `x-ats-tuf-repo-id`.
async fn api(app: &App, req: Request<Incoming>, path: &str) -> Result<Resp, ApiError> {
    let rest = if let Some(r) = path.strip_prefix(PREFIX) {
        r.to_string()
    } else if let Some(r) = path.strip_prefix("/api/v1/repo/") {
        // `/api/v1/repo/{repoId}/…`: the same routes, for our repo only.
        let (id, rest) = r.split_once('/').unwrap_or((r, ""));
        if id != app.account.repo_id {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "authorization_failed",
                "The supplied authentication is not authorized to access this resource",
            ));
        }
        format!("/{rest}")
    } else {
        return Err(not_found());
    };
    if !(rest.is_empty() || rest.starts_with('/')) {
        return Err(not_found());
    }
    let rest = percent_decode(&rest, false);
    let mut resp = repo_route(app, req, &rest)
        .await
        .unwrap_or_else(|e| err_resp(&e));
    set_header(&mut resp, "x-ats-tuf-repo-id", &app.account.repo_id);
    Ok(resp)
}

/// The three steps of an S3-style multipart upload (`multipart/<action>/<file>`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MultipartAction {
    /// `POST multipart/initiate/<file>?fileSize=…`: a new upload id and the part size.
    Initiate,
    /// `GET multipart/url/<file>?uploadId=…&part=…`: the storage URL of one part.
    Url,
    /// `PUT multipart/complete/<file>`: the parts joined into the target file.
    Complete,
}

impl MultipartAction {
    fn parse(segment: &str) -> Option<MultipartAction> {
        match segment {
            "initiate" => Some(MultipartAction::Initiate),
            "url" => Some(MultipartAction::Url),
            "complete" => Some(MultipartAction::Complete),
            _ => None,
        }
    }
}

/// A `user_repo` route (§2.1), parsed from the path's segments; the method is matched
/// by [`repo_route`]. Names that may hold `/` (targets, uploads, delegations) are the
/// remaining segments joined again, exactly the text of the path.
#[derive(Debug, PartialEq)]
enum RepoRoute {
    /// The empty path: the repository itself.
    Repository,
    /// `root.json`: the latest root.
    Root,
    /// `targets.json`, `snapshot.json`, `timestamp.json`.
    Role(RoleName),
    /// `<N>.root.json`.
    RootVersion(u64),
    /// `root`: the unsigned next root, or a new signed root.
    UnsignedRoot,
    /// `root/private_keys/<keyid>`.
    PrivateKey(KeyId),
    /// `targets`: the whole targets role.
    Targets,
    /// `targets/<file>`.
    Target(String),
    /// `delegations/<name>.json`.
    Delegation(String),
    /// `uploads/<file>`.
    Upload(String),
    /// `multipart/<action>/<file>`.
    Multipart(MultipartAction, String),
    /// Anything else: 404.
    NotFound,
}

/// `<N>.root.json` (digits only; a number past `u64` names no root).
fn root_version_segment(segment: &str) -> Option<u64> {
    let n = segment.strip_suffix(".root.json")?;
    (!n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())).then(|| n.parse().unwrap_or(u64::MAX))
}

/// The route of a decoded `user_repo` path's segments ([`path_segments`]).
fn parse_route(segments: &[&str]) -> RepoRoute {
    use RepoRoute::*;
    match segments {
        [""] => Repository,
        ["root.json"] => Root,
        ["root"] => UnsignedRoot,
        ["root", "private_keys", id] => KeyId::parse(id).map_or(NotFound, PrivateKey),
        ["targets"] => Targets,
        ["targets", name @ ..] => Target(name.join("/")),
        ["delegations", name @ ..] => match name.join("/").strip_suffix(".json") {
            Some(n) => Delegation(n.to_string()),
            None => NotFound,
        },
        ["uploads", name @ ..] if !name.is_empty() => Upload(name.join("/")),
        ["multipart", action, name @ ..] => MultipartAction::parse(action)
            .map_or(NotFound, |action| Multipart(action, name.join("/"))),
        [one] => online_role(one)
            .map(Role)
            .or_else(|| root_version_segment(one).map(RootVersion))
            .unwrap_or(NotFound),
        _ => NotFound,
    }
}

/// The generic 404 of an unknown route.
fn not_found() -> ApiError {
    ApiError::not_found("not_found", "The requested resource could not be found.")
}

/// The segments of a `user_repo` path (leading slashes ignored, as upstream).
fn path_segments(rest: &str) -> Vec<&str> {
    rest.trim_start_matches('/').split('/').collect()
}

/// Dispatches a `user_repo` route and method to its handler.
async fn repo_route(app: &App, req: Request<Incoming>, rest: &str) -> Result<Resp, ApiError> {
    let segments = path_segments(rest);
    let method = req.method().clone();
    match (parse_route(&segments), method) {
        (RepoRoute::Repository, Method::POST) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflicting_entity",
            "the namespace already has a repository",
        )),
        (RepoRoute::Root, Method::GET) => Ok(role_resp(&with_store(app, |s| s.root()).await?)),
        (RepoRoute::Role(role), Method::GET) => {
            Ok(role_resp(&with_store(app, move |s| s.role(role)).await?))
        }
        (RepoRoute::RootVersion(n), Method::GET) => Ok(role_resp(
            &with_store(app, move |s| s.root_version(n)).await?,
        )),
        (RepoRoute::UnsignedRoot, Method::GET) => Ok(json_resp(
            StatusCode::OK,
            &with_store(app, |s| s.unsigned_root()).await?,
        )),
        (RepoRoute::UnsignedRoot, Method::POST) => {
            let body = read_metadata_body(req).await?;
            with_store(app, move |s| s.post_root(&body)).await?;
            Ok(json_resp(StatusCode::OK, &json!({})))
        }
        (RepoRoute::PrivateKey(id), method) => private_key(app, &method, &id),
        (RepoRoute::Targets, Method::PUT) => put_targets(app, req).await,
        (RepoRoute::Target(name), method) => {
            let target = valid_filename(&name)?;
            match method {
                Method::GET | Method::HEAD => get_target(app, &method, &target),
                Method::PUT => put_target(app, req, target).await,
                _ => Err(method_not_allowed()),
            }
        }
        (RepoRoute::Delegation(name), Method::GET) => Ok(role_resp(
            &with_store(app, move |s| s.delegation(&name)).await?,
        )),
        (RepoRoute::Delegation(name), Method::PUT) => {
            let body = read_metadata_body(req).await?;
            with_store(app, move |s| s.put_delegation(&name, &body)).await?;
            Ok(empty(StatusCode::NO_CONTENT))
        }
        (RepoRoute::Delegation(_), _) => Err(method_not_allowed()),
        (RepoRoute::Upload(name), Method::GET) => get_upload(app, valid_filename(&name)?),
        (RepoRoute::Upload(name), Method::PUT) => {
            let target = valid_filename(&name)?;
            put_upload(app, req, target).await
        }
        (RepoRoute::Multipart(action, name), _) => multipart(app, req, action, &name).await,
        _ => Err(not_found()),
    }
}

/// `GET`/`DELETE root/private_keys/<keyid>`.
fn private_key(app: &App, method: &Method, id: &KeyId) -> Result<Resp, ApiError> {
    match *method {
        Method::GET => {
            let pair = app.store.private_key(id)?;
            Ok(full(
                StatusCode::OK,
                Some("application/json"),
                pair.as_bytes().to_vec(),
            ))
        }
        Method::DELETE => {
            app.store.delete_private_key(id)?;
            Ok(empty(StatusCode::NO_CONTENT))
        }
        _ => Err(method_not_allowed()),
    }
}

/// `PUT targets`: the checksum header in, the new checksum out.
async fn put_targets(app: &App, req: Request<Incoming>) -> Result<Resp, ApiError> {
    let checksum = header(&req, ROLE_CHECKSUM).map(str::to_string);
    let body = read_metadata_body(req).await?;
    let new_checksum = with_store(app, move |s| s.put_targets(checksum.as_deref(), &body)).await?;
    let mut r = empty(StatusCode::NO_CONTENT);
    set_header(&mut r, ROLE_CHECKSUM, &new_checksum);
    Ok(r)
}

/// 302 to our "presigned" URL of `uploads/<file>`: where `PUT uploads/<file>` sends
/// the body, and what `GET uploads/<file>` downloads.
fn upload_redirect(app: &App, filename: TargetName) -> Resp {
    let mut r = empty(StatusCode::FOUND);
    set_header(
        &mut r,
        LOCATION.as_str(),
        &storage_url(app, &StorageRoute::Upload(filename)),
    );
    r
}

/// `GET uploads/<file>` ([AT] `verify-uploaded`): a redirect to the storage URL of the
/// stored file.
fn get_upload(app: &App, filename: TargetName) -> Result<Resp, ApiError> {
    require_upload(app, &filename)?;
    Ok(upload_redirect(app, filename))
}

/// `PUT uploads/<file>`: checks the size and that the target is new, drains whatever
/// was sent, then redirects to our "presigned" URL.
async fn put_upload(
    app: &App,
    req: Request<Incoming>,
    filename: TargetName,
) -> Result<Resp, ApiError> {
    let q = parse_query(req.uri().query());
    app.upload_limit.check(declared_length(&req))?;
    let is_new = check_new_target(app, &filename, &q);
    // Drained even for a 409: a client still sending its body would otherwise see the
    // connection reset instead of the answer (and could not tell a conflict from a fault).
    drain(req.into_body(), app.upload_limit).await;
    is_new?;
    Ok(upload_redirect(app, filename))
}

/// Reads and drops a body, up to `limit` bytes (hyper closes the connection on what
/// is left). Nothing is kept: the body of `PUT uploads/…` goes to the storage URL.
async fn drain(mut body: Incoming, limit: SizeLimit) {
    let mut seen = 0u64;
    while let Some(Ok(frame)) = body.frame().await {
        seen += frame.data_ref().map_or(0, |d| d.len() as u64);
        if limit.check(seen).is_err() {
            return;
        }
    }
}

/// The `Content-Length` a client declared (0 when absent or unreadable: the bytes
/// received are capped anyway).
fn declared_length(req: &Request<Incoming>) -> u64 {
    header(req, CONTENT_LENGTH.as_str())
        .and_then(|l| l.parse::<u64>().ok())
        .unwrap_or(0)
}

/// 409 when the target already exists, unless `force=true`.
fn check_new_target(
    app: &App,
    filename: &TargetName,
    q: &[(String, String)],
) -> Result<(), ApiError> {
    let force = param(q, "force") == Some("true");
    if !force && (app.storage.exists(filename) || app.store.target_item(filename).is_some()) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "entity_already_exists",
            format!("target {filename} already exists"),
        ));
    }
    Ok(())
}

/// `GET`/`HEAD targets/<file>`: the stored file, or a redirect to its `custom.uri`.
fn get_target(app: &App, method: &Method, filename: &TargetName) -> Result<Resp, ApiError> {
    let item = app.store.target_item(filename).ok_or_else(|| {
        ApiError::not_found("target_not_found", format!("target {filename} not found"))
    })?;
    if app.storage.exists(filename) {
        if *method == Method::HEAD {
            return Ok(empty(StatusCode::OK));
        }
        return Ok(file_resp(app, filename));
    }
    match item.pointer("/custom/uri").and_then(Value::as_str) {
        Some(uri) => {
            let mut r = empty(StatusCode::FOUND);
            set_header(&mut r, LOCATION.as_str(), uri);
            Ok(r)
        }
        None => Err(ApiError::new(
            StatusCode::EXPECTATION_FAILED,
            "no_uri_for_unmanaged_target",
            "Cannot redirect to unmanaged resource, no known URI for this resource",
        )),
    }
}

/// What `PUT targets/<file>` is told about the file in its query (`name`, `version`,
/// `hardwareIds`, `targetFormat`): the `custom` fields the client decides.
#[derive(Debug, PartialEq)]
struct TargetQuery {
    name: String,
    version: String,
    hardware_ids: Vec<HardwareId>,
    format: String,
}

impl TargetQuery {
    /// Checks the query: `name` and `version` are required, `hardwareIds` is a comma
    /// list (empty items skipped) of valid hardware ids, `targetFormat` one of
    /// [`TARGET_FORMATS`] in any case (default `BINARY`).
    fn parse(q: &[(String, String)]) -> Result<TargetQuery, ApiError> {
        let required = |key: &str| {
            param(q, key)
                .map(str::to_string)
                .ok_or_else(|| ApiError::invalid_entity(format!("missing query parameter {key}")))
        };
        let name = required("name")?;
        let version = required("version")?;
        let hardware_ids = param(q, "hardwareIds")
            .unwrap_or("")
            .split(',')
            .filter(|h| !h.is_empty())
            .map(|h| HardwareId::parse(h).map_err(|e| ApiError::invalid_entity(e.to_string())))
            .collect::<Result<_, _>>()?;
        let format = match param(q, "targetFormat") {
            None | Some("") => TARGET_FORMATS[0].to_string(),
            Some(f) => TARGET_FORMATS
                .iter()
                .find(|known| known.eq_ignore_ascii_case(f))
                .map(|known| known.to_string())
                .ok_or_else(|| ApiError::invalid_entity(format!("unknown targetFormat {f:?}")))?,
        };
        Ok(TargetQuery {
            name,
            version,
            hardware_ids,
            format,
        })
    }

    /// The target's `custom` object: a re-upload keeps the first `createdAt`.
    fn custom(self, created: Option<Value>, now: &str) -> Value {
        json!({
            "name": self.name, "version": self.version, "hardwareIds": self.hardware_ids,
            "targetFormat": self.format, "uri": null, "cliUploaded": false,
            "createdAt": created.unwrap_or_else(|| Value::from(now)), "updatedAt": now,
        })
    }
}

/// `PUT targets/<file>?name=…&version=…`: stores the raw body and adds the target,
/// signed online. The request is checked before any byte is stored.
async fn put_target(
    app: &App,
    req: Request<Incoming>,
    target: TargetName,
) -> Result<Resp, ApiError> {
    if header(&req, CONTENT_TYPE.as_str()).is_some_and(|ct| ct.starts_with("multipart/")) {
        return Err(ApiError::invalid_entity(
            "multipart form uploads are not supported; send the raw file as the body",
        ));
    }
    let query = TargetQuery::parse(&parse_query(req.uri().query()))?;
    app.upload_limit.check(declared_length(&req))?;
    let received = receive_body(app, req).await?;
    if received.length == 0 {
        return Err(ApiError::invalid_entity(
            "the request has no body: send the file as the raw body",
        ));
    }
    let (sha256, length) = (received.sha256.clone(), received.length);
    let created = app
        .store
        .target_item(&target)
        .and_then(|i| i.pointer("/custom/createdAt").cloned());
    let custom = query.custom(created, &Expires::now().to_string());
    let (store, storage) = (app.store.clone(), app.storage.clone());
    blocking(move || {
        storage.commit(received, &target)?;
        store.add_target_online(&target, &sha256, length, custom)
    })
    .await?;
    Ok(empty(StatusCode::NO_CONTENT))
}

/// `multipart/<action>/<file>`; `501 not_implemented` when started with
/// `--no-multipart`, so clients fall back to `PUT uploads/<file>`.
async fn multipart(
    app: &App,
    req: Request<Incoming>,
    action: MultipartAction,
    filename: &str,
) -> Result<Resp, ApiError> {
    if !app.multipart {
        return Err(ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            "not_implemented",
            "multipart uploads are not implemented by this storage backend",
        ));
    }
    let target = valid_filename(filename)?;
    let q = parse_query(req.uri().query());
    match (req.method().clone(), action) {
        (Method::POST, MultipartAction::Initiate) => multipart_initiate(app, target, &q),
        (Method::GET, MultipartAction::Url) => multipart_url(app, &target, &q),
        (Method::PUT, MultipartAction::Complete) => multipart_complete(app, req, target).await,
        _ => Err(not_found()),
    }
}

/// `POST multipart/initiate/<file>?fileSize=…`: the size is checked against the
/// upload limit up front, as S3 would refuse the parts later.
fn multipart_initiate(
    app: &App,
    target: TargetName,
    q: &[(String, String)],
) -> Result<Resp, ApiError> {
    let size: u64 = param(q, "fileSize")
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| ApiError::invalid_entity("missing or invalid query parameter fileSize"))?;
    app.upload_limit.check(size)?;
    check_new_target(app, &target, q)?;
    let id = app.storage.initiate(&target, size)?;
    Ok(json_resp(
        StatusCode::OK,
        &json!({"uploadId": id.as_str(), "partSize": app.part_size}),
    ))
}

/// `GET multipart/url/<file>?uploadId=…&part=…`: the storage URL of one part of an
/// upload of this very file.
fn multipart_url(app: &App, target: &TargetName, q: &[(String, String)]) -> Result<Resp, ApiError> {
    let raw_id = param(q, "uploadId")
        .ok_or_else(|| ApiError::invalid_entity("missing query parameter uploadId"))?;
    let part = param(q, "part")
        .and_then(PartNumber::parse)
        .ok_or_else(|| {
            ApiError::invalid_entity(format!(
                "missing or invalid query parameter part (1..{})",
                PartNumber::MAX
            ))
        })?;
    let id = upload_id(raw_id, target)?;
    app.storage.check_upload(&id, target)?;
    Ok(json_resp(
        StatusCode::OK,
        &json!({"uri": storage_url(app, &StorageRoute::Part(id, part))}),
    ))
}

/// `PUT multipart/complete/<file>`: the parts, in part order, become the target file.
async fn multipart_complete(
    app: &App,
    req: Request<Incoming>,
    target: TargetName,
) -> Result<Resp, ApiError> {
    let body = read_body(req.into_body(), MAX_JSON_BODY).await?;
    let (raw_id, mut parts) = parse_complete(&body)?;
    parts.sort_by_key(|(n, _)| *n);
    let id = upload_id(&raw_id, &target)?;
    with_storage(app, move |s| s.complete(&id, &target, &parts)).await?;
    Ok(json_resp(StatusCode::OK, &json!({})))
}

/// An upload id from a client: one we could have made, else 404 `upload_not_found`.
fn upload_id(raw: &str, target: &TargetName) -> Result<UploadId, ApiError> {
    UploadId::parse(raw).ok_or_else(|| unknown_upload(raw, target))
}

/// The body of `PUT multipart/complete/<file>`: `{"uploadId", "partETags": [{"part",
/// "eTag"}…]}`, the parts in the order sent.
fn parse_complete(body: &[u8]) -> Result<(String, Vec<(PartNumber, String)>), ApiError> {
    let v: Value =
        serde_json::from_slice(body).map_err(|e| ApiError::invalid_entity(e.to_string()))?;
    let id = v
        .get("uploadId")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::invalid_entity("uploadId missing"))?;
    let mut parts = Vec::new();
    for p in v
        .get("partETags")
        .and_then(Value::as_array)
        .ok_or_else(|| ApiError::invalid_entity("partETags missing"))?
    {
        let n = p
            .get("part")
            .and_then(Value::as_u64)
            .and_then(PartNumber::new);
        let tag = p.get("eTag").and_then(Value::as_str);
        match (n, tag) {
            (Some(n), Some(t)) => parts.push((n, t.to_string())),
            _ => {
                return Err(ApiError::invalid_entity(format!(
                    "each partETags entry needs part (1..{}) and eTag",
                    PartNumber::MAX
                )))
            }
        }
    }
    Ok((id.to_string(), parts))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoding() {
        assert_eq!(percent_decode("a%2Fb%20c+d", false), "a/b c+d");
        assert_eq!(percent_decode("a+b%", true), "a b%");
        assert_eq!(percent_decode("%zz%4", false), "%zz%4");
        let q = parse_query(Some("name=my+app&hardwareIds=a,b&x"));
        assert_eq!(param(&q, "name"), Some("my app"));
        assert_eq!(param(&q, "x"), Some(""));
    }

    fn route(path: &str) -> RepoRoute {
        parse_route(&path_segments(path))
    }

    #[test]
    fn routes_match_typed_segments() {
        use RepoRoute::*;
        let id = "a".repeat(64);
        assert_eq!(route(""), Repository);
        assert_eq!(route("/"), Repository);
        assert_eq!(route("//root.json"), Root);
        assert_eq!(route("/targets.json"), Role(RoleName::Targets));
        assert_eq!(route("/timestamp.json"), Role(RoleName::Timestamp));
        assert_eq!(route("/12.root.json"), RootVersion(12));
        assert_eq!(
            route("/99999999999999999999.root.json"),
            RootVersion(u64::MAX)
        );
        assert_eq!(route("/.root.json"), NotFound);
        assert_eq!(route("/x1.root.json"), NotFound);
        assert_eq!(route("/root"), UnsignedRoot);
        assert_eq!(route("/root/"), NotFound);
        assert_eq!(
            route(&format!("/root/private_keys/{id}")),
            PrivateKey(KeyId::parse(&id).unwrap())
        );
        assert_eq!(route("/root/private_keys/zz"), NotFound);
        assert_eq!(route(&format!("/root/private_keys/{id}/x")), NotFound);
        assert_eq!(route("/targets"), Targets);
        assert_eq!(route("/targets/"), Target(String::new()));
        assert_eq!(
            route("/targets/dir/app-1.bin"),
            Target("dir/app-1.bin".into())
        );
        assert_eq!(route("/delegations/team.json"), Delegation("team".into()));
        assert_eq!(route("/delegations/a/b.json"), Delegation("a/b".into()));
        assert_eq!(route("/delegations/team"), NotFound);
        assert_eq!(route("/uploads"), NotFound);
        assert_eq!(route("/uploads/a/b"), Upload("a/b".into()));
        assert_eq!(
            route("/multipart/initiate/a/b"),
            Multipart(MultipartAction::Initiate, "a/b".into())
        );
        assert_eq!(
            route("/multipart/url"),
            Multipart(MultipartAction::Url, String::new())
        );
        assert_eq!(
            route("/multipart/complete/x"),
            Multipart(MultipartAction::Complete, "x".into())
        );
        assert_eq!(route("/multipart/abort/x"), NotFound);
        assert_eq!(route("/multipart"), NotFound);
        assert_eq!(route("/snapshot.json/"), NotFound);
        assert_eq!(route("/other"), NotFound);
    }

    /// A storage path as it arrives: percent-decoded, then parsed.
    fn storage(raw: &str) -> Option<StorageRoute> {
        StorageRoute::parse(&percent_decode(raw, false))
    }

    #[test]
    fn storage_routes_are_typed() {
        let id = "0123456789abcdef0123456789abcdef";
        let upload = |n: &str| Some(StorageRoute::Upload(TargetName::parse(n).unwrap()));
        let part = |n: u64| {
            Some(StorageRoute::Part(
                UploadId::parse(id).unwrap(),
                PartNumber::new(n).unwrap(),
            ))
        };
        assert_eq!(storage("uploads/app-1.0"), upload("app-1.0"));
        assert_eq!(storage("uploads/dir/app-1.0"), upload("dir/app-1.0"));
        assert_eq!(storage("uploads/dir%2Fapp%201"), upload("dir/app 1"));
        assert_eq!(storage(&format!("multipart/{id}/1")), part(1));
        assert_eq!(storage(&format!("multipart/{id}/10000")), part(10_000));
        // Missing parts, empty segments and traversal name nothing.
        for hostile in [
            "",
            "uploads",
            "uploads/",
            "uploads//x",
            "uploads/a//b",
            "uploads/./x",
            "uploads/../x",
            "uploads/a/../../x",
            "uploads/%2e%2e/x",
            "uploads/..%2Fx",
            "uploads/a%00b",
            "/uploads/x",
            "other/x",
            "multipart",
            "multipart/",
            &format!("multipart/{id}"),
            &format!("multipart/{id}/"),
            &format!("multipart/{id}/1/x"),
            &format!("multipart//{id}/1"),
        ] {
            assert_eq!(storage(hostile), None, "{hostile:?}");
        }
    }

    #[test]
    fn storage_part_routes_take_our_ids_and_part_numbers_only() {
        let id = "0123456789abcdef0123456789abcdef";
        // Upload ids are ours only: 32 lower-case hex; parts are 1..=10000 in digits.
        for bad in [
            "multipart/0123456789ABCDEF0123456789ABCDEF/1",
            "multipart/0123456789abcdef/1",
            "multipart/..%2F..%2Fkeys/1",
        ] {
            assert_eq!(storage(bad), None, "{bad:?}");
        }
        for bad_part in [
            "0",
            "10001",
            "+1",
            "-1",
            " 1",
            "1e3",
            "00000000001",
            "x",
            "%31%00",
        ] {
            assert_eq!(
                storage(&format!("multipart/{id}/{bad_part}")),
                None,
                "{bad_part:?}"
            );
        }
    }

    #[test]
    fn storage_routes_round_trip_through_their_urls() {
        let routes = [
            StorageRoute::Upload(TargetName::parse("dir/my app+1.0~rc%").unwrap()),
            StorageRoute::Part(
                UploadId::parse("ffffffffffffffffffffffffffffffff").unwrap(),
                PartNumber::new(42).unwrap(),
            ),
        ];
        for route in routes {
            let text = route.to_string();
            assert_eq!(StorageRoute::parse(&text).as_ref(), Some(&route));
            let encoded = percent_encode_path(&text);
            assert!(
                !encoded.contains(' ') && !encoded.contains('+'),
                "{encoded}"
            );
            assert_eq!(storage(&encoded), Some(route));
        }
    }

    fn query(q: &str) -> Result<TargetQuery, ApiError> {
        TargetQuery::parse(&parse_query(Some(q)))
    }

    #[test]
    fn target_query_is_checked() {
        let q = query("name=app&version=1.0&hardwareIds=hw1,,hw2&targetFormat=ostree").unwrap();
        assert_eq!(q.name, "app");
        assert_eq!(q.version, "1.0");
        assert_eq!(
            q.hardware_ids,
            ["hw1", "hw2"].map(|h| HardwareId::parse(h).unwrap())
        );
        assert_eq!(q.format, "OSTREE");
        let q = query("name=app&version=1.0&targetFormat=").unwrap();
        assert_eq!((q.format.as_str(), q.hardware_ids.len()), ("BINARY", 0));
        let long_id = format!("name=a&version=1&hardwareIds={}", "h".repeat(201));
        for (bad, says) in [
            ("version=1", "name"),
            ("name=a", "version"),
            ("name=a&version=1&targetFormat=docker", "docker"),
            (long_id.as_str(), "hardware id"),
        ] {
            let e = query(bad).unwrap_err();
            assert_eq!(
                (e.status, e.code.as_str()),
                (StatusCode::BAD_REQUEST, "invalid_entity")
            );
            assert!(e.description.contains(says), "{bad}: {}", e.description);
        }
    }

    #[test]
    fn target_custom_keeps_the_first_creation_time() {
        let q = query("name=app&version=1.0&hardwareIds=hw").unwrap();
        let c = q.custom(Some(json!("2020-01-01T00:00:00Z")), "2026-01-01T00:00:00Z");
        assert_eq!(
            c,
            json!({"name": "app", "version": "1.0", "hardwareIds": ["hw"], "targetFormat": "BINARY",
                   "uri": null, "cliUploaded": false, "createdAt": "2020-01-01T00:00:00Z",
                   "updatedAt": "2026-01-01T00:00:00Z"})
        );
        let q = query("name=app&version=1.0").unwrap();
        let c = q.custom(None, "2026-01-01T00:00:00Z");
        assert_eq!(c["createdAt"], c["updatedAt"]);
        assert!(super::super::rules::check_custom(&c).is_ok());
    }

    #[test]
    fn complete_bodies_are_typed() {
        let (id, parts) = parse_complete(
            br#"{"uploadId":"u","partETags":[{"part":2,"eTag":"\"b\""},{"part":1,"eTag":"a"}]}"#,
        )
        .unwrap();
        assert_eq!(id, "u");
        assert_eq!(
            parts,
            vec![
                (PartNumber::new(2).unwrap(), "\"b\"".to_string()),
                (PartNumber::new(1).unwrap(), "a".to_string())
            ]
        );
        for bad in [
            &br#"{"partETags":[]}"#[..],
            br#"{"uploadId":"u"}"#,
            br#"{"uploadId":"u","partETags":[{"part":0,"eTag":"a"}]}"#,
            br#"{"uploadId":"u","partETags":[{"part":10001,"eTag":"a"}]}"#,
            br#"{"uploadId":"u","partETags":[{"part":1}]}"#,
            b"not json",
        ] {
            assert_eq!(parse_complete(bad).unwrap_err().code, "invalid_entity");
        }
    }
}
