//! The fuzz targets' bodies live in `bodies.rs`, shared with the seed-corpus replay
//! test (`tests/cli/hostile_fuzz.rs`), which runs them on stable in CI.
#![forbid(unsafe_code)]

#[path = "bodies.rs"]
mod bodies;
pub use bodies::*;
