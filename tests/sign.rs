//! Signing and verification (being written).
