//! intel rows and insertables.
