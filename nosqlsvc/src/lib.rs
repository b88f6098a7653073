//! nosqlsvc (being built).
