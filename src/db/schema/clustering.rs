//! clustering tables (filled by the clustering owner).
