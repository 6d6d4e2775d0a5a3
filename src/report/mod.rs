//! Output for people and machines: graph renderings (`graph`), the JUnit report of a run
//! (`junit`) and its Chrome trace (`trace`).

pub mod graph;
pub mod junit;
pub mod trace;
