//! Opening the file the policy checked, and no other (`docs/policy.md`, Paths).
//!
//! The gate checks a call's path before the call; between that check and the open, another
//! process (or another node) may swap a symbolic link on the path. So a tool that opens a file
//! checks again here, and opens what this check resolved: [`resolve`](crate::policy::paths::resolve)
//! gives a path with no symbolic link on it, and it is opened with no link followed anywhere
//! (`openat2` with `RESOLVE_NO_SYMLINKS`, or, on a kernel without `openat2`, one component at
//! a time with `openat` and `O_NOFOLLOW`). A link that appears on the path after the check makes
//! the open fail; it is never followed. The file opened is therefore the one at the checked
//! path, by construction.

use crate::policy::paths::{Access, PathRules};
use rustix::fs::{CWD, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;
use std::ffi::OsStr;
use std::fs::File;
use std::os::fd::OwnedFd;
use std::path::{Component, Path};

/// How a resolved path is opened: with the kernel's `openat2` where it has one, else (kernels
/// before 5.6, or `openat2` blocked by a seccomp filter) by the walk that does the same with
/// plain `openat`; or by the walk only (tests of the walk on a kernel that has `openat2`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Via {
    Openat2,
    #[cfg(test)]
    Walk,
}

/// Why a file could not be opened, in words for the call's error (the path as written).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum OpenError {
    /// The path does not pass `paths.read` / `paths.write` (any more).
    Denied(String),
    /// A directory to create on the way could not be.
    Create(String),
    /// The open itself failed.
    Open(String),
}

impl OpenError {
    /// The error a tool reports for `path`.
    pub(crate) fn message(&self, access: Access, path: &str) -> String {
        let verb = match access {
            Access::Read => "read",
            Access::Write => "write",
        };
        match self {
            OpenError::Denied(why) => {
                format!("cannot {verb} {path}: {why} (the path changed after the policy check)")
            }
            OpenError::Create(why) | OpenError::Open(why) => {
                format!("cannot {verb} {path}: {why}")
            }
        }
    }
}

/// Opens `path` for reading, if `rules` allow it.
pub(crate) fn open_read(path: &str, rules: &PathRules) -> Result<File, OpenError> {
    open_read_via(path, rules, Via::Openat2)
}

/// Opens `path` for writing (created, or truncated), if `rules` allow it, creating the
/// directories it needs.
pub(crate) fn open_write(path: &str, rules: &PathRules) -> Result<File, OpenError> {
    open_write_via(path, rules, Via::Openat2)
}

fn open_read_via(path: &str, rules: &PathRules, via: Via) -> Result<File, OpenError> {
    let resolved = rules
        .check(path, Access::Read)
        .map_err(|d| OpenError::Denied(d.0))?;
    open_nofollow(
        &resolved,
        OFlags::RDONLY | OFlags::NONBLOCK,
        Mode::empty(),
        via,
    )
    .map_err(|e| OpenError::Open(describe(e)))
    .and_then(regular)
}

/// The file, if it is a regular one. A FIFO would block the call's thread until somebody
/// writes to it (which is why it is opened with `O_NONBLOCK`, which regular files ignore), and a
/// device such as `/dev/zero` never ends: the file tools read and write files.
fn regular(fd: OwnedFd) -> Result<File, OpenError> {
    let stat = rustix::fs::fstat(&fd).map_err(|e| OpenError::Open(describe(e)))?;
    match rustix::fs::FileType::from_raw_mode(stat.st_mode) {
        rustix::fs::FileType::RegularFile => Ok(File::from(fd)),
        kind => Err(OpenError::Open(format!(
            "it is not a regular file but {}",
            match kind {
                rustix::fs::FileType::Directory => "a directory",
                rustix::fs::FileType::Fifo => "a FIFO",
                rustix::fs::FileType::Socket => "a socket",
                rustix::fs::FileType::CharacterDevice | rustix::fs::FileType::BlockDevice => {
                    "a device"
                }
                _ => "a special file",
            }
        ))),
    }
}

fn open_write_via(path: &str, rules: &PathRules, via: Via) -> Result<File, OpenError> {
    let resolved = rules
        .check(path, Access::Write)
        .map_err(|d| OpenError::Denied(d.0))?;
    let (Some(parent), Some(name)) = (resolved.parent(), resolved.file_name()) else {
        return Err(OpenError::Open(describe(Errno::ISDIR)));
    };
    let dir = open_dir(parent, via).map_err(|e| OpenError::Create(describe(e)))?;
    // `O_NONBLOCK`: a FIFO with no reader fails (ENXIO) instead of blocking; see `regular`.
    // Emptied only once it is known to be a regular file: `O_TRUNC` would act on anything.
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::NONBLOCK;
    let file = open_in(&dir, name, flags, Mode::from_bits_truncate(0o666))
        .map_err(|e| OpenError::Open(describe(e)))
        .and_then(regular)?;
    file.set_len(0)
        .map_err(|e| OpenError::Open(e.to_string()))?;
    Ok(file)
}

/// What an open's error says. A link where the resolved path had none is the one error a
/// person would not guess from the system's words.
fn describe(e: Errno) -> String {
    if e == Errno::LOOP {
        "a symbolic link appeared on the path after the policy check".into()
    } else if e == Errno::NXIO {
        // What opening a socket, or a FIFO nobody reads without waiting, says.
        "it is not a regular file but a socket or a FIFO".into()
    } else {
        std::io::Error::from(e).to_string()
    }
}

/// Opens the resolved (absolute, link-free) `path` without following any link.
fn open_nofollow(path: &Path, flags: OFlags, mode: Mode, via: Via) -> Result<OwnedFd, Errno> {
    if via == Via::Openat2 {
        match openat2(path, flags, mode) {
            Err(Errno::NOSYS | Errno::PERM) => {}
            other => return other,
        }
    }
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        // `/` itself.
        return rustix::fs::openat(CWD, path, flags | OFlags::CLOEXEC | OFlags::DIRECTORY, mode);
    };
    let dir = walk(parent, false)?;
    open_in(&dir, name, flags, mode)
}

fn openat2(path: &Path, flags: OFlags, mode: Mode) -> Result<OwnedFd, Errno> {
    rustix::fs::openat2(
        CWD,
        path,
        flags | OFlags::CLOEXEC,
        mode,
        ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
    )
}

/// Opens the directory `path` (resolved), creating what is missing of it, following no link.
fn open_dir(path: &Path, via: Via) -> Result<OwnedFd, Errno> {
    let flags = OFlags::PATH | OFlags::DIRECTORY;
    if via == Via::Openat2 {
        match openat2(path, flags, Mode::empty()) {
            // Missing directories are made by the walk, one at a time; without `openat2`,
            // the walk does it all.
            Err(Errno::NOENT | Errno::NOSYS | Errno::PERM) => {}
            other => return other,
        }
    }
    walk(path, true)
}

/// `name` in `dir`, opened without following it if it is a link.
fn open_in(dir: &OwnedFd, name: &OsStr, flags: OFlags, mode: Mode) -> Result<OwnedFd, Errno> {
    rustix::fs::openat(dir, name, flags | OFlags::NOFOLLOW | OFlags::CLOEXEC, mode)
}

/// Walks the resolved directory `path` from `/`, one component at a time, never following a
/// link: a component that is a link is an error (`ELOOP`), whatever it points to. With
/// `create`, a missing directory is made (mode 0777 less the umask, as `mkdir -p` does).
fn walk(path: &Path, create: bool) -> Result<OwnedFd, Errno> {
    let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let mut dir = rustix::fs::openat(CWD, "/", flags, Mode::empty())?;
    for component in path.components() {
        let name = match component {
            Component::Normal(name) => name,
            Component::RootDir => continue,
            // A resolved path has none of these.
            Component::CurDir | Component::ParentDir | Component::Prefix(_) => {
                return Err(Errno::INVAL);
            }
        };
        let next = match rustix::fs::openat(&dir, name, flags, Mode::empty()) {
            Err(Errno::NOENT) if create => {
                match rustix::fs::mkdirat(&dir, name, Mode::from_bits_truncate(0o777)) {
                    Ok(()) | Err(Errno::EXIST) => {}
                    Err(e) => return Err(e),
                }
                rustix::fs::openat(&dir, name, flags, Mode::empty())
            }
            other => other,
        };
        dir = next.map_err(|e| link_or(&dir, name, e))?;
    }
    Ok(dir)
}

/// `O_DIRECTORY | O_NOFOLLOW` on a link fails with `ENOTDIR`; say `ELOOP` when it was one.
fn link_or(dir: &OwnedFd, name: &OsStr, e: Errno) -> Errno {
    let is_link = e == Errno::NOTDIR
        && rustix::fs::statat(dir, name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW)
            .is_ok_and(|st| rustix::fs::FileType::from_raw_mode(st.st_mode).is_symlink());
    if is_link { Errno::LOOP } else { e }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::unix::fs::symlink;
    use std::path::PathBuf;

    const BOTH: [Via; 2] = [Via::Openat2, Via::Walk];

    /// A working directory with `data/` (allowed) holding `inside.txt`, and `outside/`
    /// (not allowed) holding `secret.txt`.
    struct Tree {
        _dir: tempfile::TempDir,
        root: PathBuf,
        rules: PathRules,
    }

    impl Tree {
        fn new() -> Self {
            let dir = tempfile::tempdir().unwrap();
            let root = dir.path().canonicalize().unwrap();
            std::fs::create_dir_all(root.join("data/sub")).unwrap();
            std::fs::create_dir_all(root.join("outside")).unwrap();
            std::fs::write(root.join("data/inside.txt"), "inside").unwrap();
            std::fs::write(root.join("outside/secret.txt"), "secret").unwrap();
            let rules = PathRules::of(&["./data/**"], &["./data/**"], &root);
            Tree {
                _dir: dir,
                root,
                rules,
            }
        }

        fn path(&self, p: &str) -> String {
            self.root.join(p).display().to_string()
        }

        fn read(&self, p: &str, via: Via) -> Result<String, OpenError> {
            let mut text = String::new();
            open_read_via(&self.path(p), &self.rules, via)?
                .read_to_string(&mut text)
                .unwrap();
            Ok(text)
        }

        fn write(&self, p: &str, via: Via) -> Result<(), OpenError> {
            open_write_via(&self.path(p), &self.rules, via)?
                .write_all(b"written")
                .unwrap();
            Ok(())
        }
    }

    fn denied(r: Result<impl std::fmt::Debug, OpenError>) -> bool {
        matches!(r, Err(OpenError::Denied(_)))
    }

    #[test]
    fn reads_and_writes_inside_the_allowed_tree() {
        for via in BOTH {
            let t = Tree::new();
            assert_eq!(t.read("data/inside.txt", via).unwrap(), "inside");
            t.write("data/new/dir/out.txt", via).unwrap();
            assert_eq!(
                std::fs::read_to_string(t.root.join("data/new/dir/out.txt")).unwrap(),
                "written"
            );
        }
    }

    #[test]
    fn fifos_devices_and_directories_are_refused_without_blocking() {
        for via in BOTH {
            let t = Tree::new();
            let fifo = t.root.join("data/pipe");
            rustix::fs::mkfifoat(rustix::fs::CWD, &fifo, Mode::from_bits_truncate(0o600)).unwrap();
            // Nobody writes to it, nor reads from it: a blocking open would never return.
            for r in [
                t.read("data/pipe", via),
                t.write("data/pipe", via).map(|_| String::new()),
            ] {
                match r {
                    Err(OpenError::Open(why)) => {
                        assert!(
                            why.contains("FIFO") || why.contains("No such device"),
                            "{why}"
                        )
                    }
                    other => panic!("{other:?}"),
                }
            }
            let _socket = std::os::unix::net::UnixListener::bind(t.root.join("data/sock")).unwrap();
            for r in [
                t.read("data/sock", via),
                t.write("data/sock", via).map(|_| String::new()),
            ] {
                match r {
                    Err(OpenError::Open(why)) => assert!(why.contains("socket"), "{why}"),
                    other => panic!("{other:?}"),
                }
            }
            match t.read("data/sub", via) {
                Err(OpenError::Open(why)) => assert!(why.contains("a directory"), "{why}"),
                other => panic!("{other:?}"),
            }
            let dev = PathRules::of(&["/dev/**"], &["/dev/**"], &t.root);
            match open_read_via("/dev/zero", &dev, via) {
                Err(OpenError::Open(why)) => assert!(why.contains("a device"), "{why}"),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn a_link_that_stays_inside_is_followed() {
        for via in BOTH {
            let t = Tree::new();
            symlink("inside.txt", t.root.join("data/alias")).unwrap();
            symlink("sub", t.root.join("data/subdir")).unwrap();
            assert_eq!(t.read("data/alias", via).unwrap(), "inside");
            t.write("data/subdir/f.txt", via).unwrap();
            assert!(t.root.join("data/sub/f.txt").is_file());
        }
    }

    #[test]
    fn links_and_dot_dot_out_of_the_tree_are_denied() {
        for via in BOTH {
            let t = Tree::new();
            symlink(t.root.join("outside/secret.txt"), t.root.join("data/leak")).unwrap();
            symlink(t.root.join("outside"), t.root.join("data/dirleak")).unwrap();
            assert!(denied(t.read("data/leak", via)));
            assert!(denied(t.read("data/dirleak/secret.txt", via)));
            assert!(denied(t.read("data/../outside/secret.txt", via)));
            assert!(denied(t.write("data/dirleak/new.txt", via)));
            assert!(denied(t.write("data/sub/../../outside/new.txt", via)));
            assert!(!t.root.join("outside/new.txt").exists());
        }
    }

    #[test]
    fn creating_through_a_dangling_link_out_of_the_tree_is_denied() {
        for via in BOTH {
            let t = Tree::new();
            symlink(
                t.root.join("outside/created.txt"),
                t.root.join("data/dangling"),
            )
            .unwrap();
            assert!(denied(t.write("data/dangling", via)));
            assert!(!t.root.join("outside/created.txt").exists());
        }
    }

    /// The check resolved a path with no link on it; if a link appears there before the open
    /// (here: put in place by hand between the two), the open fails instead of following it.
    #[test]
    fn a_link_that_appears_after_the_check_is_not_followed() {
        for via in BOTH {
            let t = Tree::new();
            // The last component: O_CREAT on a dangling link would create its target.
            let target = t.root.join("data/later.txt");
            symlink(t.root.join("outside/created.txt"), &target).unwrap();
            let err = open_nofollow(
                &target,
                OFlags::WRONLY | OFlags::CREATE,
                Mode::from_bits_truncate(0o666),
                via,
            )
            .unwrap_err();
            assert_eq!(err, Errno::LOOP);
            assert!(!t.root.join("outside/created.txt").exists());
            // A directory on the way.
            std::fs::remove_dir(t.root.join("data/sub")).unwrap();
            symlink(t.root.join("outside"), t.root.join("data/sub")).unwrap();
            let err = open_nofollow(
                &t.root.join("data/sub/secret.txt"),
                OFlags::RDONLY,
                Mode::empty(),
                via,
            )
            .unwrap_err();
            assert_eq!(err, Errno::LOOP);
            assert_eq!(
                open_dir(&t.root.join("data/sub/deeper"), via).unwrap_err(),
                Errno::LOOP
            );
            assert!(!t.root.join("outside/deeper").exists());
        }
    }

    /// A thread swaps `data/link` between a file inside the tree and one outside while the
    /// reads go on: no read ever gives the outside file's content.
    #[test]
    fn a_link_swapped_during_reads_never_leads_outside() {
        for via in BOTH {
            let t = Tree::new();
            let link = t.root.join("data/link");
            symlink(t.root.join("data/inside.txt"), &link).unwrap();
            let stop = std::sync::atomic::AtomicBool::new(false);
            let (mut inside, mut refused, mut leaked) = (0, 0, 0);
            std::thread::scope(|s| {
                s.spawn(|| {
                    let next = t.root.join("data/.link.tmp");
                    let targets = [
                        t.root.join("outside/secret.txt"),
                        t.root.join("data/inside.txt"),
                    ];
                    let mut k = 0;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let _ = std::fs::remove_file(&next);
                        symlink(&targets[k % 2], &next).unwrap();
                        std::fs::rename(&next, &link).unwrap();
                        k += 1;
                    }
                });
                for _ in 0..2000 {
                    match t.read("data/link", via) {
                        Ok(text) if text == "inside" => inside += 1,
                        Ok(_) => leaked += 1,
                        Err(_) => refused += 1,
                    }
                }
                stop.store(true, std::sync::atomic::Ordering::Relaxed);
            });
            assert_eq!(leaked, 0, "reads of the file outside the tree");
            assert_eq!(inside + refused, 2000);
        }
    }

    /// The same with a directory on the way swapped between a real one inside and a link
    /// to one outside.
    #[test]
    fn a_directory_swapped_during_reads_never_leads_outside() {
        for via in BOTH {
            let t = Tree::new();
            std::fs::write(t.root.join("data/sub/secret.txt"), "inside").unwrap();
            let stop = std::sync::atomic::AtomicBool::new(false);
            let mut leaked = 0;
            std::thread::scope(|s| {
                s.spawn(|| {
                    let (sub, real, link) = (
                        t.root.join("data/sub"),
                        t.root.join("data/.real"),
                        t.root.join("data/.link"),
                    );
                    symlink(t.root.join("outside"), &link).unwrap();
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        // sub (real) -> .real, .link -> sub, then back.
                        std::fs::rename(&sub, &real).unwrap();
                        std::fs::rename(&link, &sub).unwrap();
                        std::fs::rename(&sub, &link).unwrap();
                        std::fs::rename(&real, &sub).unwrap();
                    }
                });
                for _ in 0..2000 {
                    if let Ok(text) = t.read("data/sub/secret.txt", via) {
                        leaked += usize::from(text != "inside");
                    }
                }
                stop.store(true, std::sync::atomic::Ordering::Relaxed);
            });
            assert_eq!(leaked, 0, "reads of the file outside the tree");
        }
    }

    #[test]
    fn messages_name_the_path_as_written() {
        let t = Tree::new();
        symlink(t.root.join("outside/secret.txt"), t.root.join("data/leak")).unwrap();
        let e = t.read("data/leak", Via::Openat2).unwrap_err();
        let written = t.path("data/leak");
        assert_eq!(
            e.message(Access::Read, "data/leak"),
            format!(
                "cannot read data/leak: reading `{written}` resolves outside the permitted paths (the path changed after the policy check)"
            )
        );
        assert_eq!(
            OpenError::Open(describe(Errno::LOOP)).message(Access::Write, "x"),
            "cannot write x: a symbolic link appeared on the path after the policy check"
        );
    }
}
