//! intel tables (filled by the intel owner).
