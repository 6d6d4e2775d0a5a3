//! The `executor:` block (`docs/executors.md`): which executor runs `shell` calls and how a
//! Slurm job is asked for. A workflow may have one at its top level and an organisation policy
//! may have one; `kairos run --executor` chooses the kind over both.

use crate::syntax::diag::{WorkflowError, ss};
use crate::syntax::duration;
use crate::syntax::read::{self, Errors, Fields};
use crate::syntax::yaml::{Node, Value};
use std::time::Duration;

/// Where `shell` calls run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ExecutorKind {
    /// This machine's worker pool.
    #[default]
    Local,
    /// One batch job per call attempt on a Slurm cluster.
    Slurm,
}

impl ExecutorKind {
    pub fn name(self) -> &'static str {
        match self {
            ExecutorKind::Local => "local",
            ExecutorKind::Slurm => "slurm",
        }
    }
}

/// An `executor:` block as written; absent fields are `None` (or empty), so that layers combine
/// field by field ([`ExecutorSpec::over`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExecutorSpec {
    pub kind: Option<ExecutorKind>,
    /// `sbatch --partition`.
    pub partition: Option<String>,
    /// `sbatch --account`.
    pub account: Option<String>,
    /// `sbatch --time` for a call without a `timeout` (one with a timeout asks for it).
    pub time: Option<Duration>,
    /// `sbatch --cpus-per-task`.
    pub cpus: Option<u64>,
    /// `sbatch --mem`, as Slurm writes it (`512M`, `4G`).
    pub mem: Option<String>,
    /// More `sbatch` options, each one word starting with `--` (`--qos=short`).
    pub sbatch: Vec<String>,
    /// The directory, shared with the compute nodes, that holds each attempt's files.
    pub work_dir: Option<String>,
    /// At most this many jobs submitted and not yet finished.
    pub max_in_flight: Option<u64>,
    /// At most this many submissions a second.
    pub submit_rate: Option<u64>,
    /// The shortest interval between two status queries of the run's jobs.
    pub poll: Option<Duration>,
    /// Variables of kairos's own environment passed to every job, besides the base ones.
    pub env: Vec<String>,
}

/// The `sbatch` options kairos sets itself, and why `sbatch:` may not change them.
const FIXED: &[(&str, &str)] = &[
    (
        "--export",
        "a job gets only the environment kairos approved",
    ),
    (
        "--export-file",
        "a job gets only the environment kairos approved",
    ),
    (
        "--get-user-env",
        "a job gets only the environment kairos approved",
    ),
    (
        "--job-name",
        "one name per run lets one query see all its jobs",
    ),
    ("--requeue", "retries are kairos's, each one recorded"),
    ("--no-requeue", "retries are kairos's, each one recorded"),
    ("--parsable", "kairos reads the job id"),
    ("--chdir", "the job starts in its attempt's directory"),
    (
        "--output",
        "Slurm's own output goes to the attempt's directory",
    ),
    (
        "--error",
        "Slurm's own output goes to the attempt's directory",
    ),
    ("--wrap", "the job runs kairos's wrapper"),
    ("--array", "one job is one call attempt"),
    ("--time", "set with `time:` or the node's `timeout`"),
];

pub const EXECUTOR_KEYS: &[&str] = &[
    "kind",
    "partition",
    "account",
    "time",
    "cpus",
    "mem",
    "sbatch",
    "work_dir",
    "max_in_flight",
    "submit_rate",
    "poll",
    "env",
];

impl ExecutorSpec {
    /// This block with the fields `over` sets replaced by its own; lists are joined.
    pub fn over(&self, over: &ExecutorSpec) -> ExecutorSpec {
        let pick = |a: &Option<String>, b: &Option<String>| b.clone().or_else(|| a.clone());
        ExecutorSpec {
            kind: over.kind.or(self.kind),
            partition: pick(&self.partition, &over.partition),
            account: pick(&self.account, &over.account),
            time: over.time.or(self.time),
            cpus: over.cpus.or(self.cpus),
            mem: pick(&self.mem, &over.mem),
            sbatch: self.sbatch.iter().chain(&over.sbatch).cloned().collect(),
            work_dir: pick(&self.work_dir, &over.work_dir),
            max_in_flight: over.max_in_flight.or(self.max_in_flight),
            submit_rate: over.submit_rate.or(self.submit_rate),
            poll: over.poll.or(self.poll),
            env: self.env.iter().chain(&over.env).cloned().collect(),
        }
    }

    /// Reads and checks an `executor:` mapping, reporting every problem into `errors`.
    pub fn read(node: &Node, errors: &mut Errors) -> ExecutorSpec {
        let mut spec = ExecutorSpec::default();
        let Some(f) = Fields::new(node, "executor", EXECUTOR_KEYS, errors) else {
            return spec;
        };
        if let Some(n) = f.get("kind")
            && let Some(s) = read::string(n, errors)
        {
            spec.kind = match s.value.as_str() {
                "local" => Some(ExecutorKind::Local),
                "slurm" => Some(ExecutorKind::Slurm),
                _ => {
                    errors.push(invalid(n, "unknown executor", "`local` or `slurm`"));
                    None
                }
            };
        }
        spec.partition = f.get("partition").and_then(|n| word(n, errors));
        spec.account = f.get("account").and_then(|n| word(n, errors));
        spec.time = f.get("time").and_then(|n| duration_of(n, errors));
        spec.poll = f.get("poll").and_then(|n| duration_of(n, errors));
        spec.cpus = f.get("cpus").and_then(|n| positive(n, errors));
        spec.max_in_flight = f.get("max_in_flight").and_then(|n| positive(n, errors));
        spec.submit_rate = f.get("submit_rate").and_then(|n| positive(n, errors));
        if let Some(n) = f.get("mem")
            && let Some(s) = read::scalar_text(n, errors)
        {
            let digits = s.value.trim_end_matches(['K', 'M', 'G', 'T']);
            if s.value.len() - digits.len() <= 1
                && !digits.is_empty()
                && digits.bytes().all(|b| b.is_ascii_digit())
            {
                spec.mem = Some(s.value);
            } else {
                errors.push(invalid(
                    n,
                    "invalid memory size",
                    "a number with K, M, G or T",
                ));
            }
        }
        if let Some(n) = f.get("sbatch") {
            for option in read::string_list(n, errors) {
                let name = option.split('=').next().unwrap_or_default();
                if let Some(why) = FIXED.iter().find(|(o, _)| *o == name).map(|(_, why)| why) {
                    errors.push(WorkflowError::InvalidValue {
                        message: format!("`{name}` is kairos's to set: {why}"),
                        span: ss(option.span),
                        label: "fixed".into(),
                        help: Some("see docs/executors.md, \"Submitting\"".into()),
                    });
                } else if option.starts_with("--") && clean(&option) {
                    spec.sbatch.push(option.value);
                } else {
                    errors.push(WorkflowError::InvalidValue {
                        message: format!("`{}` is not one `sbatch` option", option.value),
                        span: ss(option.span),
                        label: "not an option".into(),
                        help: Some("write each option as one word: `--qos=short`".into()),
                    });
                }
            }
        }
        if let Some(n) = f.get("work_dir") {
            spec.work_dir = read::string(n, errors).map(|s| s.value);
        }
        if let Some(n) = f.get("env") {
            for name in read::string_list(n, errors) {
                if crate::policy::is_variable_name(&name) {
                    spec.env.push(name.value);
                } else {
                    errors.push(WorkflowError::InvalidValue {
                        message: format!("`{}` is not an environment variable name", name.value),
                        span: ss(name.span),
                        label: "not a name".into(),
                        help: None,
                    });
                }
            }
        }
        spec
    }
}

/// No white space or control characters: a value Slurm reads as one word.
fn clean(text: &str) -> bool {
    !text.is_empty() && !text.chars().any(|c| c.is_whitespace() || c.is_control())
}

fn word(n: &Node, errors: &mut Errors) -> Option<String> {
    let s = read::scalar_text(n, errors)?;
    if clean(&s.value) {
        Some(s.value)
    } else {
        errors.push(invalid(n, "not one word", "a name without spaces"));
        None
    }
}

fn positive(n: &Node, errors: &mut Errors) -> Option<u64> {
    match read::non_negative(n, errors)?.value {
        0 => {
            errors.push(invalid(n, "must be at least 1", "a positive number"));
            None
        }
        v => Some(v),
    }
}

fn duration_of(n: &Node, errors: &mut Errors) -> Option<Duration> {
    let Value::Str(s) = &n.value else {
        errors.push(read::wrong_type(n, "a duration such as `10m`"));
        return None;
    };
    match duration::check(s) {
        Ok(d) if !d.is_zero() => Some(d),
        _ => {
            errors.push(invalid(n, "invalid duration", "a duration such as `10m`"));
            None
        }
    }
}

fn invalid(n: &Node, label: &str, expected: &str) -> WorkflowError {
    WorkflowError::InvalidValue {
        message: format!("{label}: expected {expected}"),
        span: ss(n.span),
        label: label.into(),
        help: Some("see docs/executors.md".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_text(text: &str) -> (ExecutorSpec, Errors) {
        let node = crate::syntax::yaml::parse(text).unwrap();
        let mut errors = Vec::new();
        (ExecutorSpec::read(&node, &mut errors), errors)
    }

    #[test]
    fn every_key_is_read() {
        let (spec, errors) = read_text(
            "kind: slurm\npartition: debug\naccount: lab\ntime: 10m\ncpus: 2\nmem: 4G\n\
             sbatch: [--qos=short]\nwork_dir: /shared/k\nmax_in_flight: 50\nsubmit_rate: 5\n\
             poll: 2s\nenv: [HOME_DIR]\n",
        );
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(spec.kind, Some(ExecutorKind::Slurm));
        assert_eq!(spec.partition.as_deref(), Some("debug"));
        assert_eq!(spec.time, Some(Duration::from_secs(600)));
        assert_eq!(spec.cpus, Some(2));
        assert_eq!(spec.mem.as_deref(), Some("4G"));
        assert_eq!(spec.sbatch, ["--qos=short"]);
        assert_eq!(spec.max_in_flight, Some(50));
        assert_eq!(spec.poll, Some(Duration::from_secs(2)));
        assert_eq!(spec.env, ["HOME_DIR"]);
    }

    #[test]
    fn bad_values_are_each_reported() {
        let (_, errors) = read_text(
            "kind: kubernetes\npartition: a b\ncpus: 0\nmem: lots\nsbatch: [\"-p x\", --export=ALL]\n\
             time: soon\nenv: [\"1X\"]\nnope: 1\n",
        );
        assert_eq!(errors.len(), 9, "{errors:?}");
        assert!(
            errors
                .iter()
                .any(|e| e.to_string().contains("`--export` is kairos's"))
        );
    }

    #[test]
    fn the_upper_layer_wins_field_by_field() {
        let (low, _) = read_text("kind: slurm\npartition: a\ncpus: 2\nsbatch: [--x=1]\n");
        let (high, _) = read_text("partition: b\nsbatch: [--y=2]\n");
        let both = low.over(&high);
        assert_eq!(both.kind, Some(ExecutorKind::Slurm));
        assert_eq!(both.partition.as_deref(), Some("b"));
        assert_eq!(both.cpus, Some(2));
        assert_eq!(both.sbatch, ["--x=1", "--y=2"]);
    }
}
