//! Integration tests: one binary that drives the real `kairos` executable.

mod approval;
mod common;
mod determinism;
mod diff;
mod formats;
mod generated;
mod golden;
mod graph;
mod policy;
mod properties;
mod replay;
mod reports;
mod resume;
mod run;
mod schema;
mod sign;
mod syntax_attacks;
mod unknown_event;
mod validate;
mod workflows;
