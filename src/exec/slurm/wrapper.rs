//! One call attempt's files in the shared work directory, and the POSIX `sh` wrapper a job
//! runs (`docs/executors.md`). The wrapper needs nothing of kairos on the compute node: it
//! changes to the call's directory, runs the command with exactly the environment kairos
//! approved (`env -i`), sends its output to files and writes the exit status last, to a
//! temporary name renamed into place, so that a status file that exists is complete.
//!
//! ```text
//! ATTEMPT/wrapper.sh  the job's script (written before submitting)
//! ATTEMPT/stdin       the call's standard input, when it has one
//! ATTEMPT/job         the job id (written once `sbatch` has answered)
//! ATTEMPT/stdout      the command's output streams
//! ATTEMPT/stderr
//! ATTEMPT/status      its exit status, or why it could not start (`nocwd`, `notdir`, `missing`)
//! ATTEMPT/slurm.out   what Slurm itself and the wrapper printed
//! ```

use crate::sh::quote;
use crate::sh::resolve::Resolved;
use crate::syntax::duration;
use crate::tools::Outcome;
use crate::tools::shell::{self, Prepared, Request};
use std::io;
use std::path::{Path, PathBuf};

pub const SCRIPT: &str = "wrapper.sh";
pub const STATUS: &str = "status";
pub const JOB: &str = "job";
const STDIN: &str = "stdin";

/// The directory of one attempt: the instance id encoded into one file name, each byte but
/// letters, digits, `_` and `-` as `.XX` (`a[2]` is `a.5B2.5D`), then the attempt number. Not
/// `%XX`: `sbatch --output` reads `%` as the start of a pattern.
pub fn attempt_dir(run_dir: &Path, instance: &str, attempt: u32) -> PathBuf {
    let mut name = String::with_capacity(instance.len());
    for b in instance.bytes() {
        if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' {
            name.push(b as char);
        } else {
            name.push_str(&format!(".{b:02X}"));
        }
    }
    run_dir.join(name).join(attempt.to_string())
}

/// The environment a job's command gets: the base variables of kairos's own environment
/// (`base`), then the call's `env`, a later value replacing an earlier one of the same name.
pub fn environment(base: &[(String, String)], request: &Request) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = Vec::with_capacity(base.len() + request.env.len());
    for (name, value) in base.iter().chain(&request.env) {
        match env.iter_mut().find(|(n, _)| n == name) {
            Some(slot) => slot.1 = value.clone(),
            None => env.push((name.clone(), value.clone())),
        }
    }
    env
}

/// The wrapper script for `request`, as `prepare` decided it runs, from `cwd`.
pub fn script(
    dir: &Path,
    cwd: &Path,
    env: &[(String, String)],
    request: &Request,
    prepared: &Prepared,
) -> String {
    let q = |p: &Path| quote(&p.to_string_lossy());
    let cwd = match &request.cwd {
        Some(rel) => cwd.join(rel),
        None => cwd.to_path_buf(),
    };
    let path = env
        .iter()
        .find(|(n, _)| n == "PATH")
        .map_or("", |(_, v)| v.as_str());
    // Under `commands`, argv[0] means the file kairos's own `PATH` found. The job's `PATH`
    // finds the same file when it is kairos's (then argv[0] stays the name, as locally);
    // otherwise the file is named by its path.
    let program = match &prepared.lookup {
        Resolved::Found(file) if std::env::var("PATH").ok().as_deref() != Some(path) => {
            file.to_string_lossy().into_owned()
        }
        _ => prepared.argv[0].clone(),
    };
    let mut s = String::new();
    s.push_str("#!/bin/sh\n");
    s.push_str("# One call attempt of kairos (docs/executors.md); runs without kairos.\n");
    s.push_str("PATH=/usr/bin:/bin; export PATH\n");
    s.push_str(&format!("a={}\n", q(dir)));
    s.push_str(
        "finish() { printf '%s\\n' \"$1\" >\"$a/status.tmp\" && mv -f \"$a/status.tmp\" \"$a/status\"; exit 0; }\n",
    );
    let cwd = q(&cwd);
    s.push_str(&format!(
        "cd {cwd} 2>/dev/null || {{ if [ -e {cwd} ] && [ ! -d {cwd} ]; then finish notdir; fi; finish nocwd; }}\n"
    ));
    if !prepared.through_shell {
        s.push_str(&format!(
            "(PATH={}; command -v {}) >/dev/null 2>&1 || finish missing\n",
            quote(path),
            quote(&program)
        ));
    }
    s.push_str("env -i");
    for (name, value) in env {
        s.push(' ');
        s.push_str(&quote(&format!("{name}={value}")));
    }
    // `exec "$@"` keeps argv[0] as written and looks it up on the approved `PATH`; a name
    // with `=` in it stays a program, which `env` alone would take for a variable.
    s.push_str(" /bin/sh -c 'exec \"$@\"' sh ");
    s.push_str(&quote(&program));
    for arg in &prepared.argv[1..] {
        s.push(' ');
        s.push_str(&quote(arg));
    }
    let input = if request.stdin.is_some() {
        format!("\"$a/{STDIN}\"")
    } else {
        "/dev/null".into()
    };
    s.push_str(&format!(" <{input} >\"$a/stdout\" 2>\"$a/stderr\"\n"));
    s.push_str("finish \"$?\"\n");
    s
}

/// Writes a fresh attempt directory: what an earlier process left there goes first.
pub fn write(dir: &Path, script: &str, request: &Request) -> io::Result<()> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    // Only the user's: the script holds the call's environment, which may hold a secret the
    // policy passed, and the work directory is shared.
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let private = |name: &str, mode: u32, text: &str| {
        use std::io::Write;
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(dir.join(name))?
            .write_all(text.as_bytes())
    };
    if let Some(stdin) = &request.stdin {
        private(STDIN, 0o600, stdin)?;
    }
    private(SCRIPT, 0o700, script)
}

/// Whether the attempt's exit status is there.
pub fn finished(dir: &Path) -> bool {
    dir.join(STATUS).is_file()
}

/// What the command printed, as the local runner captures it.
fn outputs(dir: &Path) -> (crate::tools::Captured, crate::tools::Captured) {
    let read = |name: &str| shell::capture_file(&dir.join(name)).unwrap_or_default();
    (read("stdout"), read("stderr"))
}

/// The outcome of a finished attempt, as the local runner reports the same command; `None`
/// when there is no exit status (yet).
pub fn result(dir: &Path, request: &Request, prepared: &Prepared) -> Option<Outcome> {
    let status = std::fs::read_to_string(dir.join(STATUS)).ok()?;
    let program = &prepared.argv[0];
    let enoent = || io::Error::from_raw_os_error(rustix::io::Errno::NOENT.raw_os_error());
    let cwd_shown = || request.cwd.clone().unwrap_or_default();
    Some(match status.trim() {
        "missing" => shell::cannot_run(program, enoent()),
        "nocwd" => shell::cannot_run(
            program,
            format!(
                "working directory `{}`: {}",
                cwd_shown().display(),
                enoent()
            ),
        ),
        "notdir" => shell::cannot_run(
            program,
            format!(
                "working directory `{}` is not a directory",
                cwd_shown().display()
            ),
        ),
        code => {
            let code: i32 = code.parse().ok()?;
            let (stdout, stderr) = outputs(dir);
            Outcome {
                output: serde_json::Value::String(stdout.text.trim().to_owned()),
                stdout: Some(stdout),
                stderr: Some(stderr),
                exit_code: Some(code),
                error: (code != 0).then(|| format!("exit code {code}")),
                ..Outcome::default()
            }
        }
    })
}

/// The outcome of an attempt that ended without an exit status: `error`, and what it printed
/// until then.
pub fn failed(dir: &Path, error: String) -> Outcome {
    let (stdout, stderr) = outputs(dir);
    Outcome {
        output: serde_json::Value::String(stdout.text.trim().to_owned()),
        stdout: Some(stdout),
        stderr: Some(stderr),
        exit_code: None,
        error: Some(error),
        ..Outcome::default()
    }
}

/// The outcome of an attempt kairos stopped at the call's timeout, as the local runner words
/// it.
pub fn timed_out(dir: &Path, request: &Request) -> Outcome {
    failed(
        dir,
        format!(
            "timed out after {}",
            duration::format(request.timeout.unwrap_or_default())
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tools::shell::{Command, prepare};

    fn request(command: Command) -> Request {
        Request {
            command,
            env: vec![("GREETING".into(), "it's \"here\" $HOME".into())],
            cwd: None,
            stdin: Some("from stdin\n".into()),
            timeout: None,
            own_path: false,
        }
    }

    /// Runs the wrapper with `sh`, as a job would, and reads the attempt back.
    fn run_wrapper(request: &Request) -> (Outcome, String) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = attempt_dir(tmp.path(), "say[0]", 1);
        let prepared = prepare(request).unwrap();
        let base = vec![("PATH".to_string(), std::env::var("PATH").unwrap())];
        let env = environment(&base, request);
        let text = script(&dir, tmp.path(), &env, request, &prepared);
        write(&dir, &text, request).unwrap();
        let status = std::process::Command::new("/bin/sh")
            .arg(dir.join(SCRIPT))
            .env("SECRET_OF_THE_COORDINATOR", "leaked")
            .status()
            .unwrap();
        assert!(status.success());
        assert!(finished(&dir));
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join(SCRIPT)), 0o700);
        assert!(!dir.join("status.tmp").exists());
        (result(&dir, request, &prepared).unwrap(), text)
    }

    #[test]
    fn the_wrapper_runs_the_command_with_exactly_the_approved_environment() {
        let (outcome, _) = run_wrapper(&request(Command::Line(
            "cat; printf '%s|%s' \"$GREETING\" \"${SECRET_OF_THE_COORDINATOR-unset}\"; exit 3"
                .into(),
        )));
        assert_eq!(
            outcome.stdout.unwrap().text,
            "from stdin\nit's \"here\" $HOME|unset"
        );
        assert_eq!(outcome.exit_code, Some(3));
        assert_eq!(outcome.error.as_deref(), Some("exit code 3"));
    }

    #[test]
    fn a_program_that_is_not_there_fails_as_it_does_locally() {
        let request = request(Command::Args(vec!["no-such-program-here".into()]));
        let (outcome, _) = run_wrapper(&request);
        let local = shell::run(&request, &crate::cancel::Cancel::default());
        assert_eq!(outcome.exit_code, local.exit_code);
        assert_eq!(outcome.error, local.error);
    }

    #[test]
    fn instance_ids_become_one_file_name_each() {
        let dir = attempt_dir(Path::new("/w"), "fetch[12]", 2);
        assert_eq!(dir, Path::new("/w/fetch.5B12.5D/2"));
        assert_ne!(
            attempt_dir(Path::new("/w"), "a_1", 1),
            attempt_dir(Path::new("/w"), "a[1]", 1)
        );
    }
}
