//! loadtest (being built).
