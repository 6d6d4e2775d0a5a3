//! The `shell` tool. (Being written.)
