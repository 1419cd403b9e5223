//! fleet tables (filled by the fleet owner).
