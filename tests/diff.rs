//! `kairos diff` (being written).
