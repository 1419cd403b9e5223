//! intake repository.
