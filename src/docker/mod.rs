//! Docker access behind the `DeckyRuntime` trait.
