//! fleet rows and insertables.
