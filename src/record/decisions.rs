//! The decisions a ledger recorded, checked again against the policy before a resumed run or a
//! replay takes them (`docs/policy.md`, Approvals).
//!
//! A decision in a ledger is only as good as the file: the chain has no key, so whoever can
//! edit a paused ledger can write an `ApprovalResolved` and chain the lines again. A resumed run
//! (`kairos run --resume`) and a replay (`kairos replay --check`, `--against`) therefore take a
//! recorded decision only if the policy lets its approver decide, as `--approver` on the command
//! line is checked, and refuse the ledger otherwise, before anything runs or is written.

use super::Recording;
use crate::policy::effective::Effective;

/// A recorded decision the policy does not allow.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("{path}:{line}: the recorded decision on `{node}` is not one the policy allows: {why}")]
#[diagnostic(
    code(kairos::recorded_approval),
    help(
        "the ledger was edited after the run, or was written under another policy; nothing was run"
    )
)]
pub struct RefusedDecision {
    pub path: String,
    /// 1-based line of the `ApprovalResolved`.
    pub line: u64,
    pub node: String,
    pub why: String,
}

/// Checks every decision `recording` holds against the `approvers` of `policy` (and, for an
/// approval inside a called workflow, of that file's policy), in line order.
pub fn check(
    recording: &Recording,
    workflow: &crate::workflow::Workflow,
    policy: &Effective,
    path: &str,
) -> Result<(), RefusedDecision> {
    let mut decided: Vec<(u64, &str)> = recording
        .approval_lines
        .iter()
        .map(|(node, line)| (*line, node.as_str()))
        .collect();
    decided.sort_unstable();
    for (line, node) in decided {
        let Some(decision) = recording.approvals.get(node) else {
            continue;
        };
        let approver = decision.approver.as_deref();
        let allowed = match crate::plan::approval_site(workflow, node, policy) {
            Some(site) => site.check_approver(policy, approver),
            None => policy.check_approver(approver),
        };
        if let Err(why) = allowed {
            return Err(RefusedDecision {
                path: path.to_string(),
                line,
                node: node.to_string(),
                // The approver comes from the file: escaped, so that it cannot drive the
                // terminal.
                why: crate::printable::printable(&why).into_owned(),
            });
        }
    }
    Ok(())
}
