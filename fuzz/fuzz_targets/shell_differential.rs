//! The shell-line analysis against the shell itself: for a line `kairos::sh::programs`
//! accepts, `sh -c LINE` runs in a sandbox where every program it could start is a stub that
//! logs its name, and every program `sh` started (or tried to: "not found") must be one the
//! analysis named. That is the promise of the `commands` policy (docs/policy.md).
//!
//! The sandbox (bubblewrap, run as root: CI and this machine are) makes running arbitrary
//! lines harmless: a new mount namespace holding only `/sh` (dash), the system libraries and
//! the stubs as `/usr/bin` (so `/bin/rm` is a stub or nothing); no network, no /proc, a fresh
//! empty working directory; the line runs as `nobody` with at most 64 processes, 256 MiB of
//! address space, 1 MiB files and 2 seconds. A line that times out is not checked.
//!
//! Stubs exist for every word of the line (a name the line spells out) and the shell's own
//! "not found" message catches the others. Names compare by their last path component.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const NOBODY: u32 = 65534;
const MAX_STUBS: usize = 256;

fuzz_target!(|data: &[u8]| {
    let Ok(line) = std::str::from_utf8(data) else {
        return;
    };
    // A NUL cannot reach `sh -c`; the analysis itself is fuzzed by `shell_programs`.
    if line.contains('\0') {
        return;
    }
    let Ok(programs) = kairos::sh::programs(Some(line), None) else {
        return;
    };
    let allowed: BTreeSet<&str> = programs.iter().map(|p| last_component(p)).collect();
    let Some(ran) = Sandbox::get().run(line) else {
        return;
    };
    let escaped: Vec<&String> = ran
        .iter()
        .filter(|p| !candidates(p).any(|c| allowed.contains(last_component(c))))
        .collect();
    assert!(
        escaped.is_empty(),
        "sh ran {escaped:?}, which the analysis did not name (it named {programs:?}) for {line:?}"
    );
});

/// What a logged name can be the program of. dash names the builtin that looked a program up
/// before it (`/sh: 1: exec: touch: not found`), so such a name is also read without that
/// prefix; it is read as written too, as a program can itself be called `exec: touch`.
fn candidates(logged: &str) -> impl Iterator<Item = &str> {
    let bare = ["exec: ", "eval: ", "command: "]
        .iter()
        .find_map(|prefix| logged.strip_prefix(prefix));
    std::iter::once(logged).chain(bare)
}

fn last_component(program: &str) -> &str {
    program.rsplit('/').next().unwrap_or(program)
}

/// What stays the same from one input to the next: the log's secret name and the directories.
struct Sandbox {
    base: PathBuf,
    /// The log's name, under a directory the line cannot list.
    secret: String,
}

impl Sandbox {
    fn get() -> &'static Sandbox {
        static SANDBOX: std::sync::OnceLock<Sandbox> = std::sync::OnceLock::new();
        SANDBOX.get_or_init(|| {
            assert!(
                Path::new("/usr/bin/bwrap").exists() && Path::new("/usr/bin/dash").exists(),
                "shell_differential needs bubblewrap and dash (apt-get install bubblewrap dash)"
            );
            let tmp = std::env::var_os("KAIROS_FUZZ_TMP")
                .map(PathBuf::from)
                .unwrap_or_else(std::env::temp_dir);
            let base = tmp.join(format!("kairos-fuzz-sh-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&base);
            std::fs::create_dir_all(&base).expect("sandbox directory");
            let mut seed = [0u8; 8];
            let _ = std::fs::File::open("/dev/urandom")
                .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut seed));
            Sandbox {
                base,
                secret: format!("{:016x}", u64::from_le_bytes(seed)),
            }
        })
    }

    /// Runs `line` and gives the names of the programs `sh` started or looked for; `None`
    /// when it did not finish in time.
    fn run(&self, line: &str) -> Option<BTreeSet<String>> {
        let stubs = self.base.join("stubs");
        let logs = self.base.join("logs");
        let work = self.base.join("work");
        for d in [&stubs, &logs, &work] {
            let _ = std::fs::remove_dir_all(d);
            std::fs::create_dir(d).expect("sandbox directory");
        }
        // The line may write in its working directory, nowhere else.
        chown(&work);
        // Others may pass through `logs` but not list it; the log itself is `nobody`'s.
        std::fs::set_permissions(&logs, std::fs::Permissions::from_mode(0o711)).expect("chmod");
        let log = logs.join(&self.secret);
        std::fs::write(&log, "").expect("log");
        chown(&log);
        std::fs::set_permissions(&log, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let stub = format!("#!/sh\necho \"${{0##*/}}\" >>/log/{}\n", self.secret);
        for w in stub_names(line) {
            let path = stubs.join(&w);
            std::fs::write(&path, &stub).expect("stub");
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        }

        let mut child = Command::new("/usr/bin/prlimit")
            .args([
                "--nproc=64",
                "--as=268435456",
                "--fsize=1048576",
                "--core=0",
                "--",
            ])
            .arg("/usr/bin/bwrap")
            // Parents bwrap makes are root's alone unless told otherwise; `nobody` must pass.
            .args(["--perms", "0755", "--dir", "/usr"])
            .args(["--ro-bind", "/usr/lib", "/usr/lib"])
            .args(["--ro-bind-try", "/usr/lib64", "/usr/lib64"])
            .args([
                "--symlink",
                "usr/lib",
                "/lib",
                "--symlink",
                "usr/lib64",
                "/lib64",
            ])
            .args(["--ro-bind", "/usr/bin/dash", "/sh"])
            .args(["--ro-bind", "/usr/bin/setpriv", "/setpriv"])
            .arg("--ro-bind")
            .arg(&stubs)
            .arg("/usr/bin")
            .args(["--symlink", "usr/bin", "/bin"])
            .arg("--bind")
            .arg(&logs)
            .arg("/log")
            .arg("--bind")
            .arg(&work)
            .arg("/work")
            .args(["--chdir", "/work", "--dev", "/dev"])
            .args([
                "--unshare-pid",
                "--unshare-net",
                "--unshare-ipc",
                "--unshare-uts",
            ])
            .args(["--die-with-parent", "--new-session", "--clearenv"])
            .args([
                "--setenv",
                "PATH",
                "/usr/bin:/bin",
                "--setenv",
                "HOME",
                "/work",
                "--",
            ])
            .args([
                "/setpriv",
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
            ])
            .args(["--inh-caps=-all", "--bounding-set=-all", "--"])
            .args(["/sh", "-c", line])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start bwrap");
        let mut stderr = child.stderr.take().expect("stderr");
        let reader = std::thread::spawn(move || {
            let mut out = Vec::new();
            let _ = std::io::Read::read_to_end(
                &mut std::io::Read::take(&mut stderr, 1 << 20),
                &mut out,
            );
            out
        });
        let start = Instant::now();
        let finished = loop {
            match child.try_wait().expect("wait") {
                Some(_) => break true,
                None if start.elapsed() > Duration::from_secs(2) => break false,
                None => std::thread::sleep(Duration::from_millis(2)),
            }
        };
        if !finished {
            // bwrap's sandbox dies with it (--die-with-parent, and its pid namespace).
            let _ = child.kill();
            let _ = child.wait();
            let _ = reader.join();
            return None;
        }
        let stderr = reader.join().unwrap_or_default();
        let mut ran: BTreeSet<String> = std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect();
        // dash: `/sh: 1: NAME: not found`. Messages of commands running at the same time (a
        // pipeline, `&`) can interleave, so only a line of exactly that shape counts.
        for l in String::from_utf8_lossy(&stderr).lines() {
            if let Some(name) = not_found(l) {
                ran.insert(last_component(name).to_string());
            }
        }
        Some(ran)
    }
}

/// The names the line spells out, as `sh` could read them: words split at blanks, and at shell
/// operators too, each also with quotes and backslashes taken out (`t''ouch`, `\touch`), and
/// the plain tokens inside them.
fn stub_names(line: &str) -> BTreeSet<String> {
    let operators = |c: char| c.is_whitespace() || ";|&()<>{}$`".contains(c);
    let unquoted = |w: &str| {
        w.chars()
            .filter(|c| !"'\"\\".contains(*c))
            .collect::<String>()
    };
    let mut names = BTreeSet::new();
    let words = line.split(char::is_whitespace).chain(line.split(operators));
    for word in words {
        for name in [word.to_string(), unquoted(word)] {
            let name = last_component(&name).to_string();
            if !name.is_empty() && name.len() <= 64 && name != "." && name != ".." {
                names.insert(name);
            }
        }
        for token in word.split(|c: char| !(c.is_ascii_alphanumeric() || "_.+-".contains(c))) {
            if !token.is_empty() && token.len() <= 64 && token != "." && token != ".." {
                names.insert(token.to_string());
            }
        }
    }
    names.into_iter().take(MAX_STUBS).collect()
}

/// The program of one `/sh: N: NAME: not found` line.
fn not_found(line: &str) -> Option<&str> {
    let rest = line.strip_prefix("/sh: ")?;
    let (number, rest) = rest.split_once(": ")?;
    let name = rest.strip_suffix(": not found")?;
    let clean = number.bytes().all(|b| b.is_ascii_digit())
        && !name.contains(": not found")
        && !name.contains("/sh: ");
    clean.then_some(name)
}

fn chown(path: &Path) {
    std::os::unix::fs::chown(path, Some(NOBODY), Some(NOBODY)).expect("chown to nobody");
}
