//! Output for people and machines: graph renderings, summaries, tables.

pub mod graph;
pub mod template;
