//! Stage 2 (to come).
