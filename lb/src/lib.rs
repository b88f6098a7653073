//! lb (being built).
