//! Process exit codes (`docs/exit-codes.md`), in one place.

/// Success: the run succeeded, verification passed, no difference, replay matched.
pub const SUCCESS: i32 = 0;
/// A negative result: a node failed, verification failed, ledgers differ, replay diverged.
pub const NEGATIVE: i32 = 1;
/// Bad invocation or bad input: unreadable file, invalid YAML or workflow, invalid ledger.
pub const BAD_INPUT: i32 = 2;
/// Refused or stopped by an enforced policy.
pub const POLICY: i32 = 3;
/// Paused, waiting for an approval.
pub const PAUSED: i32 = 4;
/// Interrupted by Ctrl-C.
pub const INTERRUPTED: i32 = 130;
