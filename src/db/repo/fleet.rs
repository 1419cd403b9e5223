//! fleet repository.
