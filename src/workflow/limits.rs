//! How much work one workflow may ask for: limits generous for real use that stop a small file
//! from amplifying into gigabytes or hours (see `docs/workflow.md#limits`). Each is checked
//! where the value is first known: literals at validation, with their location; rendered values
//! at run time, as a failure of the node that rendered them.

/// The most items one `for_each` may fan out to (a literal list at validation, a rendered one
/// at run time). Each instance is a call with its own events: a million took over a gigabyte.
pub const FOR_EACH_ITEMS: usize = 100_000;

/// The longest literal string in a workflow file, in bytes. A value written once may be
/// copied into every call that reads it, and into the ledger each time.
pub const LITERAL_BYTES: usize = 1 << 20;
