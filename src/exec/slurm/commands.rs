//! The Slurm programs kairos starts (`sbatch`, `squeue`, `sacct`, `scancel`), by name on
//! kairos's own `PATH`, each with a timeout, and what their output means. They run through the
//! local runner (`tools/shell.rs`) with an interrupt of their own: Ctrl-C must not kill the
//! `scancel` it is waiting for.

use crate::cancel::Cancel;
use crate::tools::shell::{self, Command, Request};
use std::collections::HashMap;
use std::time::Duration;

/// No Slurm command is waited for longer than this: a controller that does not answer is
/// asked again later.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// At most this many job ids in one `scancel` (and `sacct`) command line.
pub const BATCH: usize = 200;

/// A Slurm command that did not do what was asked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub message: String,
    /// Whether asking again later may work ("Socket timed out", a controller restarting).
    pub transient: bool,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// What a controller says when it is busy or briefly away; anything else is final.
const TRANSIENT: &[&str] = &[
    "socket timed out",
    "timed out",
    "unable to contact slurm controller",
    "connection refused",
    "connection reset",
    "temporarily unavailable",
    "temporarily unable",
    "try again",
];

/// Where the Slurm programs are: a directory, or `None` for kairos's own `PATH`.
pub type Bin<'a> = Option<&'a std::path::Path>;

/// Runs `program args` and returns its standard output.
fn run(bin: Bin<'_>, program: &str, args: Vec<String>) -> Result<String, Failure> {
    let mut argv = vec![match bin {
        Some(dir) => dir.join(program).to_string_lossy().into_owned(),
        None => program.to_string(),
    }];
    argv.extend(args);
    let outcome = shell::run(
        &Request {
            command: Command::Args(argv),
            env: Vec::new(),
            cwd: None,
            stdin: None,
            timeout: Some(COMMAND_TIMEOUT),
            own_path: false,
        },
        &Cancel::default(),
    );
    let stdout = outcome.stdout.map(|c| c.text).unwrap_or_default();
    match outcome.error {
        None => Ok(stdout),
        Some(error) => {
            let stderr = outcome.stderr.map(|c| c.text).unwrap_or_default();
            let said = stderr.trim();
            let message = if said.is_empty() {
                format!("`{program}`: {error}")
            } else {
                format!("`{program}`: {said}")
            };
            let lower = message.to_lowercase();
            Err(Failure {
                transient: outcome.exit_code.is_none() && error.starts_with("timed out")
                    || TRANSIENT.iter().any(|t| lower.contains(t)),
                message,
            })
        }
    }
}

/// Submits a batch script; returns the job id (`sbatch --parsable` prints `ID` or
/// `ID;CLUSTER`).
pub fn sbatch(bin: Bin<'_>, args: Vec<String>) -> Result<String, Failure> {
    let out = run(bin, "sbatch", args)?;
    let id = out.trim().split(';').next().unwrap_or_default();
    if !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()) {
        Ok(id.to_string())
    } else {
        Err(Failure {
            message: format!("`sbatch` printed no job id: {:?}", out.trim()),
            transient: false,
        })
    }
}

/// One job as a status query lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    pub state: String,
    /// The node(s) it runs on, when it runs.
    pub nodes: String,
    /// The script it runs.
    pub command: String,
}

/// The `squeue` format: id, state, nodes, command (last, as it may hold anything).
pub const SQUEUE_FORMAT: &str = "%i|%T|%N|%o";

/// The one status query of a run: every job of this user with the run's job name, in any
/// state the controller still remembers.
pub fn squeue(bin: Bin<'_>, name: &str, uid: u32) -> Result<HashMap<String, Listed>, Failure> {
    let out = run(
        bin,
        "squeue",
        vec![
            "--noheader".into(),
            format!("--name={name}"),
            format!("--user={uid}"),
            "--states=all".into(),
            format!("--format={SQUEUE_FORMAT}"),
        ],
    )?;
    Ok(parse_squeue(&out))
}

pub fn parse_squeue(out: &str) -> HashMap<String, Listed> {
    out.lines()
        .filter_map(|line| {
            let mut fields = line.trim().splitn(4, '|');
            let id = fields.next()?.trim();
            let state = fields.next()?.trim();
            if id.is_empty() || state.is_empty() {
                return None;
            }
            Some((
                id.to_string(),
                Listed {
                    state: state.to_string(),
                    nodes: fields.next().unwrap_or_default().trim().to_string(),
                    command: fields.next().unwrap_or_default().trim().to_string(),
                },
            ))
        })
        .collect()
}

/// The final states of jobs the controller has forgotten, from accounting, when it exists.
pub fn sacct(bin: Bin<'_>, ids: &[String]) -> Result<HashMap<String, String>, Failure> {
    let mut states = HashMap::new();
    for batch in ids.chunks(BATCH) {
        let out = run(
            bin,
            "sacct",
            vec![
                "--noheader".into(),
                "--parsable2".into(),
                "--allocations".into(),
                "--format=JobID,State".into(),
                format!("--jobs={}", batch.join(",")),
            ],
        )?;
        for line in out.lines() {
            if let Some((id, state)) = line.trim().split_once('|') {
                // `CANCELLED by 1000`: the state is the first word.
                let state = state.split_whitespace().next().unwrap_or_default();
                states.insert(id.to_string(), state.to_string());
            }
        }
    }
    Ok(states)
}

/// Cancels jobs, [`BATCH`] ids a command. Failures are left: a job that cannot be cancelled
/// has ended already or the controller is away, and its `--time` ends it anyway.
pub fn scancel(bin: Bin<'_>, ids: &[String]) {
    for batch in ids.chunks(BATCH) {
        let _ = run(bin, "scancel", batch.to_vec());
    }
}

/// What a scheduler state means for a job kairos waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Waiting for resources.
    Queued,
    /// Started (or suspended, or finishing): its command may be running.
    Running,
    /// Over: it will not run (again).
    Over,
}

/// Reads a state as `squeue --format=%T` or `sacct` write it.
pub fn phase(state: &str) -> Phase {
    match state {
        "PENDING" | "REQUEUED" | "REQUEUE_HOLD" | "REQUEUE_FED" | "RESV_DEL_HOLD" => Phase::Queued,
        "COMPLETED" | "COMPLETING" | "FAILED" | "CANCELLED" | "TIMEOUT" | "OUT_OF_MEMORY"
        | "NODE_FAIL" | "PREEMPTED" | "BOOT_FAIL" | "DEADLINE" | "SPECIAL_EXIT" | "REVOKED" => {
            Phase::Over
        }
        // RUNNING, CONFIGURING, SUSPENDED, STOPPED, SIGNALING, STAGE_OUT, RESIZING, and any
        // state a later Slurm adds: the command may be running.
        _ => Phase::Running,
    }
}

/// Why a job that ended without an exit status did: the error its call reports.
pub fn lost(state: Option<&str>) -> String {
    let why = match state {
        Some("CANCELLED") => "the Slurm job was cancelled before its command finished",
        Some("TIMEOUT") => "the Slurm job reached its time limit (`--time`)",
        Some("OUT_OF_MEMORY") => "the Slurm job ran out of memory",
        Some("NODE_FAIL") => "the Slurm job's node failed",
        Some("PREEMPTED") => "the Slurm job was preempted",
        Some("BOOT_FAIL") => "the Slurm job's node failed to boot",
        Some("DEADLINE") => "the Slurm job reached its deadline",
        Some(state) => {
            return format!(
                "the Slurm job ended ({state}) without an exit status: is the work directory \
                 shared with the compute nodes? (see `slurm.out` in the attempt's directory)"
            );
        }
        None => {
            "the Slurm job ended without an exit status and its state is unknown (see \
             `slurm.out` in the attempt's directory)"
        }
    };
    why.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn squeue_lines_are_read_with_the_command_last() {
        let listed = parse_squeue(
            "  17|RUNNING|vm|/w/a|b/wrapper.sh\n18|PENDING||/w/c/wrapper.sh\n\ngarbage\n",
        );
        assert_eq!(listed.len(), 2);
        assert_eq!(listed["17"].command, "/w/a|b/wrapper.sh");
        assert_eq!(listed["17"].nodes, "vm");
        assert_eq!(listed["18"].state, "PENDING");
    }

    #[test]
    fn states_have_phases_and_lost_jobs_say_why() {
        assert_eq!(phase("PENDING"), Phase::Queued);
        assert_eq!(phase("RUNNING"), Phase::Running);
        assert_eq!(phase("SOMETHING_NEW"), Phase::Running);
        for over in [
            "COMPLETED",
            "TIMEOUT",
            "NODE_FAIL",
            "OUT_OF_MEMORY",
            "CANCELLED",
        ] {
            assert_eq!(phase(over), Phase::Over, "{over}");
        }
        assert!(lost(Some("TIMEOUT")).contains("time limit"));
        assert!(lost(Some("NODE_FAIL")).contains("node failed"));
        assert!(lost(Some("OUT_OF_MEMORY")).contains("memory"));
        assert!(lost(Some("FAILED")).contains("shared"));
        assert!(lost(None).contains("unknown"));
    }
}
