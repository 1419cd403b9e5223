//! intake tables (filled by the intake owner).
