//! intake rows and insertables.
