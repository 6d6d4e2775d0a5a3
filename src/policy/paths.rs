//! `paths.read` and `paths.write`: which files a call may open, and what "a path" means for
//! them (see `docs/policy.md`, Paths).
//!
//! Globs match the *real* location of a file: the path made absolute against the directory
//! kairos runs in, every symbolic link on it followed (also a last component that is a link to
//! nothing yet, as creating a file through it would follow it), `.` and `..` removed. The result
//! ([`resolve`]) contains no symbolic link, and that is what lets a tool open exactly what was
//! checked: it opens the resolved path with no link followed anywhere (`tools/open.rs`), so a
//! link swapped in after the check makes the open fail instead of leading elsewhere.

use crate::syntax::read::Sp;
use globset::GlobMatcher;
use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

/// Symbolic links followed while resolving one path before giving up, as Linux does
/// (`MAXSYMLINKS`): a loop of links cannot be resolved.
pub const MAX_LINKS: u32 = 40;

/// Whether a file is read or written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
}

impl Access {
    fn verb(self) -> &'static str {
        match self {
            Access::Read => "reading",
            Access::Write => "writing",
        }
    }
}

/// The globs of `paths.read` and `paths.write`, one list per layer that sets them: a path must
/// match a glob of every list. Cheap to clone (a worker thread gets its own copy).
#[derive(Clone, Debug, Default)]
pub struct PathRules {
    read: Arc<[Vec<GlobMatcher>]>,
    write: Arc<[Vec<GlobMatcher>]>,
}

/// Why a path may not be opened: the words of a `PATH_NOT_PERMITTED` denial. They name the
/// path as it was written, never the resolved one: the ledger records them, and nothing in
/// the ledger may depend on where the run happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathDenied(pub String);

impl PathRules {
    /// No constraint: every path passes (it is still resolved and opened without following
    /// links).
    pub fn none() -> Self {
        Self::default()
    }

    /// The rules of the layers' `paths.read` and `paths.write` lists (`None` for a layer
    /// that does not set one), globs relative to `cwd`.
    pub fn new<'a>(
        layers: impl Iterator<Item = (&'a [Sp<String>], &'a [Sp<String>])>,
        cwd: &Path,
    ) -> Self {
        let (mut read, mut write) = (Vec::new(), Vec::new());
        for (r, w) in layers {
            if !r.is_empty() {
                read.push(globs(r.iter().map(|g| g.value.as_str()), cwd));
            }
            if !w.is_empty() {
                write.push(globs(w.iter().map(|g| g.value.as_str()), cwd));
            }
        }
        Self {
            read: read.into(),
            write: write.into(),
        }
    }

    /// One layer, from glob texts (tests).
    #[cfg(test)]
    pub fn of(read: &[&str], write: &[&str], cwd: &Path) -> Self {
        let list = |l: &[&str]| {
            if l.is_empty() {
                Vec::new()
            } else {
                vec![globs(l.iter().copied(), cwd)]
            }
        };
        Self {
            read: list(read).into(),
            write: list(write).into(),
        }
    }

    /// Whether any layer constrains `access`.
    pub fn constrains(&self, access: Access) -> bool {
        !self.layers(access).is_empty()
    }

    fn layers(&self, access: Access) -> &[Vec<GlobMatcher>] {
        match access {
            Access::Read => &self.read,
            Access::Write => &self.write,
        }
    }

    /// Resolves `path` (as a tool was given it) and checks the result against every layer.
    /// Gives the resolved path, the one to open.
    pub fn check(&self, path: &str, access: Access) -> Result<PathBuf, PathDenied> {
        let Some(resolved) = resolve(Path::new(path)) else {
            return Err(PathDenied(format!("`{path}` cannot be resolved")));
        };
        let layers = self.layers(access);
        if layers
            .iter()
            .all(|globs| globs.iter().any(|g| g.is_match(&resolved)))
        {
            Ok(resolved)
        } else {
            Err(PathDenied(format!(
                "{} `{path}` resolves outside the permitted paths",
                access.verb()
            )))
        }
    }
}

/// Globs are written relative to the working directory (`./data/**`); they are matched against
/// resolved absolute paths. `policy::path_matcher` is the one place globs are compiled (and
/// validation has refused the ones beyond its limits, `invalid_glob`).
fn globs<'a>(list: impl Iterator<Item = &'a str>, cwd: &Path) -> Vec<GlobMatcher> {
    list.filter_map(|g| super::path_matcher(g, cwd)).collect()
}

/// The real absolute location of `path`: made absolute against the working directory, then
/// walked one component at a time from `/`, following every symbolic link met (its target
/// read and walked in turn, relative to the link's directory), `..` going back to the real
/// parent. A component that does not exist (a file or directories to create) is taken as
/// it is, and so is everything after it. A link to nothing yet is followed like any other,
/// so a dangling link is judged by where it points, as creating a file through it would go.
///
/// `None` when it cannot be resolved: a loop of links (more than [`MAX_LINKS`]), or a
/// directory on the way that cannot be searched.
///
/// The result contains no symbolic link (at the time of the walk), no `.` and no `..`.
pub fn resolve(path: &Path) -> Option<PathBuf> {
    let abs = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().ok()?.join(path)
    };
    // Components still to walk, the next one last.
    let mut todo: Vec<OsString> = Vec::new();
    push_components(&abs, &mut todo);
    let mut out = PathBuf::from("/");
    let mut links = 0u32;
    // Once a component is missing, nothing under it exists: no need to look.
    let mut missing_depth: Option<usize> = None;
    while let Some(part) = todo.pop() {
        if part == ".." {
            out.pop();
            if missing_depth.is_some_and(|d| out.components().count() < d) {
                missing_depth = None;
            }
            continue;
        }
        out.push(&part);
        if missing_depth.is_some() {
            continue;
        }
        match std::fs::symlink_metadata(&out) {
            Ok(meta) if meta.file_type().is_symlink() => {
                links += 1;
                if links > MAX_LINKS {
                    return None;
                }
                let target = std::fs::read_link(&out).ok()?;
                out.pop();
                if target.is_absolute() {
                    out = PathBuf::from("/");
                }
                push_components(&target, &mut todo);
            }
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
                ) =>
            {
                missing_depth = Some(out.components().count());
            }
            Err(_) => return None,
        }
    }
    Some(out)
}

/// Pushes the components of `path` onto `todo` so that the first is popped first; `.` and the
/// root are dropped, `..` kept for the walk.
fn push_components(path: &Path, todo: &mut Vec<OsString>) {
    let start = todo.len();
    for c in path.components() {
        match c {
            Component::Normal(name) => todo.push(name.to_os_string()),
            Component::ParentDir => todo.push("..".into()),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    todo[start..].reverse();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn real(dir: &tempfile::TempDir) -> PathBuf {
        dir.path().canonicalize().unwrap()
    }

    #[test]
    fn existing_paths_resolve_as_canonicalize_does() {
        let dir = tempfile::tempdir().unwrap();
        let root = real(&dir);
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::fs::write(root.join("a/b/f"), "x").unwrap();
        symlink(root.join("a"), root.join("la")).unwrap();
        symlink("b/f", root.join("a/lf")).unwrap();
        for p in [
            "a/b/f",
            "la/b/f",
            "a/lf",
            "la/lf",
            "a/./b/../b/f",
            "la/b/../lf",
        ] {
            let path = root.join(p);
            assert_eq!(resolve(&path), Some(path.canonicalize().unwrap()), "{p}");
        }
    }

    #[test]
    fn a_missing_tail_is_appended_and_dot_dot_removed() {
        let dir = tempfile::tempdir().unwrap();
        let root = real(&dir);
        std::fs::create_dir(root.join("a")).unwrap();
        assert_eq!(
            resolve(&root.join("a/new/x.txt")),
            Some(root.join("a/new/x.txt"))
        );
        assert_eq!(resolve(&root.join("a/new/../y")), Some(root.join("a/y")));
        assert_eq!(
            resolve(&root.join("a/../../z")),
            Some(root.parent().unwrap().join("z"))
        );
    }

    #[test]
    fn a_dangling_link_is_judged_by_its_target() {
        let dir = tempfile::tempdir().unwrap();
        let root = real(&dir);
        std::fs::create_dir(root.join("in")).unwrap();
        symlink("/kairos-outside/x", root.join("in/abs")).unwrap();
        symlink("../elsewhere/y", root.join("in/rel")).unwrap();
        assert_eq!(
            resolve(&root.join("in/abs")),
            Some(PathBuf::from("/kairos-outside/x"))
        );
        assert_eq!(
            resolve(&root.join("in/rel")),
            Some(root.join("elsewhere/y"))
        );
    }

    #[test]
    fn after_dot_dot_a_link_is_followed_again() {
        let dir = tempfile::tempdir().unwrap();
        let root = real(&dir);
        std::fs::create_dir(root.join("in")).unwrap();
        symlink("/kairos-outside", root.join("in/link")).unwrap();
        assert_eq!(
            resolve(&root.join("in/missing/../link/f")),
            Some(PathBuf::from("/kairos-outside/f"))
        );
    }

    #[test]
    fn a_loop_of_links_cannot_be_resolved() {
        let dir = tempfile::tempdir().unwrap();
        let root = real(&dir);
        symlink("b", root.join("a")).unwrap();
        symlink("a", root.join("b")).unwrap();
        assert_eq!(resolve(&root.join("a")), None);
    }

    #[test]
    fn rules_check_every_layer_and_name_the_path_as_written() {
        let dir = tempfile::tempdir().unwrap();
        let root = real(&dir);
        std::fs::create_dir(root.join("data")).unwrap();
        symlink("/etc/hostname", root.join("data/out")).unwrap();
        let rules = PathRules::of(&["./data/**"], &[], &root);
        let inside = root.join("data/x").display().to_string();
        assert_eq!(rules.check(&inside, Access::Read), Ok(root.join("data/x")));
        let out = root.join("data/out").display().to_string();
        assert_eq!(
            rules.check(&out, Access::Read),
            Err(PathDenied(format!(
                "reading `{out}` resolves outside the permitted paths"
            )))
        );
        // No write globs: anything may be written.
        assert!(rules.check(&out, Access::Write).is_ok());
        assert!(rules.constrains(Access::Read) && !rules.constrains(Access::Write));
    }
}
