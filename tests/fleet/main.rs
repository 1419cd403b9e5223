//! Fleet area integration tests (one binary): repositories on both backends and the
//! reconciler against the real Docker engine.
//!
//! Run: `cargo test --test fleet` (PostgreSQL cases: `eval "$(scripts/pg start)"` first;
//! Docker cases skip loudly without an engine unless `DECNETD_REQUIRE_DOCKER=1`).

#[path = "../common/mod.rs"]
mod common;

mod reconciler;
mod repo;
