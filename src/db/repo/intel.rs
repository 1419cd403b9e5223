//! intel repository.
