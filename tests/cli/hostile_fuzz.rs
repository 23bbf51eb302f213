//! The fuzz bodies (fuzz/src/bodies.rs) on stable: every committed seed of
//! fuzz/corpus/<target>/ and every finding kept in fuzz/regressions/<target>/ is
//! replayed. This is how CI runs the fuzz targets (nightly cannot be installed there);
//! `scripts/fuzz.sh` runs the real libFuzzer targets where nightly exists.

#[path = "../../fuzz/src/bodies.rs"]
mod bodies;

use std::path::Path;

fn inputs(target: &str) -> Vec<(String, Vec<u8>)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut out = Vec::new();
    for dir in ["corpus", "regressions"] {
        let d = root.join(dir).join(target);
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.filter_map(Result::ok) {
            if e.path().is_file() {
                out.push((
                    e.path().display().to_string(),
                    std::fs::read(e.path()).unwrap(),
                ));
            }
        }
    }
    out.sort();
    out
}

fn replay(target: &str, body: impl Fn(&[u8])) {
    let inputs = inputs(target);
    assert!(!inputs.is_empty(), "no seeds for fuzz target {target}");
    for (name, data) in &inputs {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| body(data)));
        assert!(r.is_ok(), "fuzz target {target} panics on {name}");
    }
}

#[test]
fn fuzz_seeds_canonical() {
    replay("canonical", bodies::canonical);
}

#[test]
fn fuzz_seeds_metadata() {
    replay("metadata", bodies::metadata);
}

#[test]
fn fuzz_seeds_key_files() {
    replay("key_files", bodies::key_files);
}

#[test]
fn fuzz_seeds_credentials_zip() {
    replay("credentials_zip", bodies::credentials_zip);
}

#[test]
fn fuzz_seeds_server_request() {
    let store = bodies::ServerStore::new();
    replay("server_request", |d| bodies::server_request(&store, d));
}
