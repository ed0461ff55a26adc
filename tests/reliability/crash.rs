//! Crash (being written).
