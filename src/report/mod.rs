//! Output for people and machines: graph renderings (`graph`) and the JUnit report of a run
//! (`junit`).

pub mod graph;
pub mod junit;
