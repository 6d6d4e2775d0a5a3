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

/// The fuel of one template or expression evaluation (minijinja's `fuel`): about one unit per
/// instruction and one per 64 bytes of data it creates or writes. A million is far beyond what
/// a workflow's templates need, and ends a runaway template (doubling a string, nested loops,
/// recursive macros) within about a second. Running out is a run-time template error.
pub const TEMPLATE_FUEL: u64 = 1_000_000;

/// The largest value one template or expression may give, in bytes (its text, or a value's
/// JSON). Four times the output a command's capture keeps, so a template can join a few of
/// them.
pub const RENDERED_BYTES: usize = 4 << 20;

/// The largest `max_iterations` a loop may declare. Each iteration runs its whole body, whose
/// calls are recorded; ten thousand turns is far beyond an agent's or a review cycle's need.
pub const LOOP_ITERATIONS: u64 = 10_000;

/// How deep `workflow:` calls may nest (a calls b calls c ...). Cycles are refused anyway;
/// this bounds what one file can pull in.
pub const CALL_DEPTH: usize = 16;

/// Workflow calls read in all, from the top file down (each call site reads its file again):
/// a few files calling each other several times would otherwise grow exponentially.
pub const CALLS: usize = 1_000;
