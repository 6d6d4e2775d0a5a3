//! Output for people and machines: graph renderings (`graph`), the JUnit report of a run
//! (`junit`), its Chrome trace (`trace`) and the progress line on a terminal (`progress`).

pub mod graph;
pub mod junit;
pub mod progress;
pub mod template;
pub mod trace;
