//! Fault injection for tests: answer the next N matching requests with a status,
//! reset the connection, or delay them (then answer normally).
//!
//! Rules are JSON, managed through the admin routes (see the module docs of
//! [`crate::server`]):
//! `{"method":"PUT","path":"/api/v1/user_repo/targets","count":2,"kind":"status","status":503}`,
//! `{"path":"/api/v1/user_repo/*","kind":"reset"}`, `{"path":"…","kind":"delay","delay_ms":500}`.
//! `path` matches exactly, or as a prefix when it ends with `*`; `method` is optional;
//! `count` defaults to 1. Rules live in memory only and are consumed first to last.

use serde::{Deserialize, Serialize};
use std::sync::Mutex;

/// What a matching rule does to the request (`"kind"` in JSON).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FaultAction {
    /// Answer with this status and an error body `{"code":"fault_injected",…}`.
    Status {
        /// The HTTP status (an invalid one answers 503).
        status: u16,
    },
    /// Close the connection without an answer.
    Reset,
    /// Wait, then handle the request normally.
    Delay {
        /// How long, in milliseconds.
        delay_ms: u64,
    },
}

/// One fault-injection rule (see the module docs for its JSON).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct FaultRule {
    /// The HTTP method matched (any case); any method when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// The path matched exactly, or as a prefix when it ends with `*`.
    pub path: String,
    /// How many more requests it applies to (default 1).
    #[serde(default = "one")]
    pub count: u32,
    /// What it does to them.
    #[serde(flatten)]
    pub action: FaultAction,
}

fn one() -> u32 {
    1
}

impl FaultRule {
    fn matches(&self, method: &str, path: &str) -> bool {
        let method_ok = self
            .method
            .as_deref()
            .map_or(true, |m| m.eq_ignore_ascii_case(method));
        let path_ok = match self.path.strip_suffix('*') {
            Some(prefix) => path.starts_with(prefix),
            None => path == self.path,
        };
        method_ok && path_ok && self.count > 0
    }
}

/// The rules in force, first to last.
#[derive(Default)]
pub struct Faults(Mutex<Vec<FaultRule>>);

impl Faults {
    fn rules(&self) -> std::sync::MutexGuard<'_, Vec<FaultRule>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends `rules` after those in force.
    pub fn add(&self, rules: Vec<FaultRule>) {
        self.rules().extend(rules);
    }

    /// Removes every rule.
    pub fn clear(&self) {
        self.rules().clear();
    }

    /// The rules in force, with their remaining counts.
    pub fn list(&self) -> Vec<FaultRule> {
        self.rules().clone()
    }

    /// The action of the first rule matching the request, consuming one use.
    pub fn take(&self, method: &str, path: &str) -> Option<FaultAction> {
        let mut rules = self.rules();
        let i = rules.iter().position(|r| r.matches(method, path))?;
        rules[i].count -= 1;
        let action = rules[i].action.clone();
        if rules[i].count == 0 {
            rules.remove(i);
        }
        Some(action)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_are_consumed() {
        let f = Faults::default();
        let rules: Vec<FaultRule> = serde_json::from_str(
            r#"[{"method":"PUT","path":"/a/*","count":2,"kind":"status","status":503},{"path":"/b","kind":"reset"}]"#,
        )
        .unwrap();
        f.add(rules);
        assert_eq!(f.take("GET", "/a/x"), None);
        assert_eq!(
            f.take("PUT", "/a/x"),
            Some(FaultAction::Status { status: 503 })
        );
        assert_eq!(
            f.take("put", "/a/y"),
            Some(FaultAction::Status { status: 503 })
        );
        assert_eq!(f.take("PUT", "/a/x"), None);
        assert_eq!(f.take("GET", "/b/c"), None);
        assert_eq!(f.take("GET", "/b"), Some(FaultAction::Reset));
        assert!(f.list().is_empty());
    }
}
