//! The reposerver's error body (libats `ErrorRepresentation`, reference/reposerver.md §2.2):
//! `{"code":"…","description":"…","cause":<json>?,"errorId":"…"?}`.
//!
//! Anything else (an HTML page from a proxy, an empty body) still yields a usable
//! summary: the status and a short, single-line excerpt of the text.

use reqwest::StatusCode;
use serde_json::Value;

/// Longest excerpt of a non-JSON error body put into a message.
const EXCERPT: usize = 200;

/// A non-2xx answer, decoded as far as possible.
#[derive(Clone, Debug, PartialEq)]
pub struct ServerError {
    pub status: u16,
    pub code: Option<String>,
    pub description: Option<String>,
    pub cause: Option<Value>,
    pub error_id: Option<String>,
}

impl ServerError {
    pub fn parse(status: StatusCode, body: &[u8]) -> Self {
        let mut e = ServerError {
            status: status.as_u16(),
            code: None,
            description: None,
            cause: None,
            error_id: None,
        };
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(m)) => {
                let s = |k: &str| m.get(k).and_then(Value::as_str).map(str::to_string);
                e.code = s("code");
                e.description = s("description");
                e.error_id = s("errorId");
                e.cause = m.get("cause").filter(|c| !c.is_null()).cloned();
            }
            _ => {
                let text = String::from_utf8_lossy(body);
                let line: String = text
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
                    .chars()
                    .filter(|c| !c.is_control())
                    .take(EXCERPT)
                    .collect();
                if !line.is_empty() {
                    e.description = Some(line);
                }
            }
        }
        e
    }

    /// The libats error code, if the body carried one.
    pub fn code(&self) -> Option<&str> {
        self.code.as_deref()
    }

    /// `409 invalid_version_bump: Cannot bump version from 3 to 5`, or
    /// `404 Not Found` without an error body.
    pub fn summary(&self) -> String {
        let mut s = self.status.to_string();
        match &self.code {
            Some(code) => {
                s.push(' ');
                s.push_str(code);
            }
            None => {
                if let Some(reason) = StatusCode::from_u16(self.status)
                    .ok()
                    .and_then(|c| c.canonical_reason())
                {
                    s.push(' ');
                    s.push_str(reason);
                }
            }
        }
        if let Some(d) = &self.description {
            s.push_str(": ");
            s.push_str(d);
        }
        s
    }

    /// [`Self::summary`] followed by one `  - reason` line per cause.
    pub fn summary_with_causes(&self) -> String {
        let mut msg = self.summary();
        for c in self.cause_strings() {
            msg.push_str("\n  - ");
            msg.push_str(&c);
        }
        msg
    }

    /// The reasons a validation failure lists: `cause` as a list of strings, or
    /// (keyserver errors relayed as 502) the nested `cause.cause` list.
    pub fn cause_strings(&self) -> Vec<String> {
        fn strings(v: &Value) -> Option<Vec<String>> {
            let a = v.as_array()?;
            Some(
                a.iter()
                    .map(|x| {
                        x.as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| x.to_string())
                    })
                    .collect(),
            )
        }
        let Some(cause) = &self.cause else {
            return Vec::new();
        };
        if let Some(list) = strings(cause) {
            return list;
        }
        if let Some(inner) = cause.get("cause") {
            if let Some(list) = strings(inner) {
                return list;
            }
            if let Some(s) = inner.as_str() {
                return vec![s.to_string()];
            }
        }
        if let Some(s) = cause.as_str() {
            return vec![s.to_string()];
        }
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_with_code() {
        let e = ServerError::parse(
            StatusCode::CONFLICT,
            br#"{"code":"invalid_version_bump","description":"Cannot bump version from 3 to 5","cause":null,"errorId":"x"}"#,
        );
        assert_eq!(
            e.summary(),
            "409 invalid_version_bump: Cannot bump version from 3 to 5"
        );
        assert_eq!(e.error_id.as_deref(), Some("x"));
        assert!(e.cause.is_none());
    }

    #[test]
    fn summary_without_body() {
        assert_eq!(
            ServerError::parse(StatusCode::NOT_FOUND, b"").summary(),
            "404 Not Found"
        );
        let e = ServerError::parse(
            StatusCode::BAD_GATEWAY,
            b"<html>\n<body>bad\tgateway</body></html>",
        );
        assert_eq!(
            e.summary(),
            "502 Bad Gateway: <html> <body>bad gateway</body></html>"
        );
    }

    #[test]
    fn causes_flat_and_nested() {
        let flat = ServerError::parse(
            StatusCode::BAD_REQUEST,
            br#"{"code":"invalid_offline_targets","description":"d","cause":["a","b"]}"#,
        );
        assert_eq!(flat.cause_strings(), vec!["a", "b"]);
        let nested = ServerError::parse(
            StatusCode::BAD_GATEWAY,
            br#"{"code":"invalid_root_role","description":"d","cause":{"code":"invalid_root_role","description":"d","cause":["x","y"]}}"#,
        );
        assert_eq!(nested.cause_strings(), vec!["x", "y"]);
        assert!(
            ServerError::parse(StatusCode::BAD_REQUEST, br#"{"code":"c"}"#)
                .cause_strings()
                .is_empty()
        );
    }
}
