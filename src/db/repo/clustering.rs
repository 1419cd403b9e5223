//! clustering repository.
