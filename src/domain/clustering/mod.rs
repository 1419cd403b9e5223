//! Identity and campaign clustering (pure logic; spec `clustering.md`).
//!
//! * [`observation`] — the identity projection of an `attackers` row (no time field).
//! * [`edge`] — the identity edge function; [`kernel`] — connected components (indexed).
//! * [`chain`] — soft-merge chains with the 8-hop cap; [`reconcile`] — the tick's plan.
//! * [`rollup`] — fingerprint roll-up and keystroke centroid onto an identity.
//! * [`campaign`] — identity features, campaign edges and kernel.
//! * [`metrics`], [`fixture`], [`eval`] — the scoring harness behind `decnetd cluster-eval`.
//! * [`dsl`] — the campaign DSL and its expansion into fixture rows.
//! * [`tick`] — the pure part of each layer's tick (what the actors call).
//! * [`synth`] — seeded synthetic workloads for benches.
//! * [`scale`] — scale sets: fixture campaigns copied onto a small shared fleet, with truth.
//!
//! No I/O, no clock (except the elapsed-time figure of [`eval::evaluate`]), no actix, no diesel.

pub mod campaign;
pub mod chain;
pub mod dsl;
pub mod edge;
pub mod eval;
pub mod fixture;
pub mod kernel;
pub mod metrics;
pub mod observation;
pub mod reconcile;
pub mod rollup;
pub mod scale;
pub mod synth;
pub mod tick;
pub mod union_find;

pub use chain::{walk_chain, ChainWalk, MergeChain, MAX_MERGE_HOPS};
pub use edge::{IdentitySignal, EDGE_THRESHOLD};
pub use kernel::{cluster, cluster_observations, IdentityClustering, IdentityEvidence};
pub use observation::Observation;
pub use reconcile::{plan, EntityState, MemberState, Plan};
