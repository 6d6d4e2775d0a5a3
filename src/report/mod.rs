//! Output for people and machines: graph renderings (`graph`), the JUnit report of a run
//! (`junit`), its Chrome trace (`trace`), the progress line on a terminal (`progress`), and
//! text made safe to print on a terminal (`text`).

pub mod graph;
pub mod junit;
pub mod progress;
pub mod template;
pub mod trace;
