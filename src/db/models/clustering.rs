//! clustering rows and insertables.
