//! Actors and the in-process event registry.
pub mod registry;
pub mod topics;
