//! sqlsvc (being built).
