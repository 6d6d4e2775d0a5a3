//! What a program name means: the executable kairos's own `PATH` finds for it.
//!
//! The `commands` policy allows names, and a name must mean the same program whatever the call
//! says: an `env: { PATH: ./evil }`, a `PATH=.` in the line or a `cwd:` next to a relative
//! `PATH` entry must not turn an allowed `echo` into any file called `echo`. So the runner looks
//! the name up itself, in the `PATH` kairos was started with (relative entries taken from the
//! directory kairos was started in), and starts that file by its absolute path; the child's
//! environment stays as the call asked (see docs/tools.md, "How a command is started").

use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// What a program name was resolved to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resolved {
    /// A name without `/`, found in kairos's `PATH`.
    Found(PathBuf),
    /// A name with a `/`: a path, run as written (relative to the call's `cwd`), never looked
    /// up.
    Path,
    /// A name kairos's `PATH` does not have.
    Missing,
}

/// The search path used when kairos's environment has no `PATH` (what `execvp` uses).
const DEFAULT_PATH: &str = "/bin:/usr/bin";

/// kairos's `PATH` as absolute directories, read once: the environment kairos was started with.
fn directories() -> &'static [PathBuf] {
    static DIRS: OnceLock<Vec<PathBuf>> = OnceLock::new();
    DIRS.get_or_init(|| {
        let path = std::env::var_os("PATH").unwrap_or_else(|| OsString::from(DEFAULT_PATH));
        let cwd = std::env::current_dir().ok();
        std::env::split_paths(&path)
            .filter_map(|dir| {
                // An empty entry means the current directory, as for the shell.
                let dir = if dir.as_os_str().is_empty() {
                    PathBuf::from(".")
                } else {
                    dir
                };
                if dir.is_absolute() {
                    Some(dir)
                } else {
                    cwd.as_ref().map(|cwd| cwd.join(dir))
                }
            })
            .collect()
    })
}

/// Resolves `name` against kairos's own `PATH`.
pub fn program(name: &str) -> Resolved {
    if name.contains('/') {
        return Resolved::Path;
    }
    if name.is_empty() {
        return Resolved::Missing;
    }
    search(name, directories())
}

/// The first file called `name` in `dirs` that is executable.
fn search(name: &str, dirs: &[PathBuf]) -> Resolved {
    dirs.iter()
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
        .map_or(Resolved::Missing, Resolved::Found)
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_searched_paths_are_not() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("tool");
        std::fs::write(&bin, "#!/bin/sh\n").unwrap();
        let plain = dir.path().join("plain");
        std::fs::write(&plain, "").unwrap();
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        let dirs = [dir.path().join("none"), dir.path().to_path_buf()];
        assert_eq!(search("tool", &dirs), Resolved::Found(bin));
        // Not executable, a directory, absent: not a program.
        assert_eq!(search("plain", &dirs), Resolved::Missing);
        assert_eq!(search("none", &dirs), Resolved::Missing);
        assert_eq!(search("absent", &dirs), Resolved::Missing);
        assert_eq!(program("./tool"), Resolved::Path);
        assert_eq!(program("/bin/sh"), Resolved::Path);
        assert_eq!(program(""), Resolved::Missing);
    }

    #[test]
    fn directories_are_absolute() {
        assert!(directories().iter().all(|d| d.is_absolute()));
    }
}
