//! Integration tests: one binary that drives the real `kairos` executable.

mod approval;
mod chunked_reading;
mod commands;
mod common;
mod determinism;
mod diff;
mod formats;
mod generated;
mod golden;
mod graph;
mod limits;
mod paths_and_records;
mod policy;
mod properties;
mod replay;
mod reports;
mod resume;
mod run;
mod schema;
mod secrets;
mod sign;
mod syntax_attacks;
mod terminal;
mod unknown_event;
mod validate;
mod workflows;
