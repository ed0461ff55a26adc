//! Chaos (being written).
