//! The `file.read` tool: reads a text file. The policy checks the path (`paths.read`) before
//! the call, and the tool checks it again as it opens it, opening what it checked
//! (`open.rs`).

use super::{Args, CallCx, KeyKind, Outcome, Resource, Tool, ToolSpec, key, open, str_arg, text};
use crate::policy::Capability;
use crate::policy::paths::Access;
use serde_json::Value;

/// Outputs the content of `path`.
pub struct FileRead;

static FILE_READ: ToolSpec = ToolSpec {
    name: "file.read",
    summary: "reads a file",
    keys: &[key("path", KeyKind::Template, true, "file to read")],
    one_of: &[],
    capabilities: &[Capability::FsRead],
};

impl Tool for FileRead {
    fn spec(&self) -> &'static ToolSpec {
        &FILE_READ
    }

    fn resources<'a>(&self, args: &'a Args) -> Vec<Resource<'a>> {
        vec![Resource::Read(str_arg(args, "path").unwrap_or_default())]
    }

    fn call(&self, args: &Args, cx: &mut CallCx<'_>) -> Outcome {
        let path = text(args, "path");
        let mut file = match open::open_read(&path, cx.paths) {
            Ok(file) => file,
            Err(e) => return Outcome::failed(e.message(Access::Read, &path)),
        };
        let mut content = String::new();
        std::io::Read::read_to_string(&mut file, &mut content)
            .map(|_| Value::String(content))
            .map_err(|e| format!("cannot read {path}: {e}"))
            .into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::paths::PathRules;
    use crate::tools::testing::{args, call, call_with_paths};
    use serde_json::json;

    #[test]
    fn reads_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.txt");
        std::fs::write(&path, "one\ntwo\n").unwrap();
        let path = path.display().to_string();
        assert_eq!(
            call(&FileRead, &args(json!({ "path": path }))),
            Outcome::value(json!("one\ntwo\n"))
        );
    }

    #[test]
    fn a_missing_file_fails() {
        let error = call(&FileRead, &args(json!({ "path": "/kairos/no/such/file" })))
            .error
            .unwrap();
        assert!(
            error.starts_with("cannot read /kairos/no/such/file: "),
            "{error}"
        );
    }

    /// A thread swaps `data/link` between a file inside `paths.read` and one outside while
    /// the tool reads it 2,000 times: it never gives the outside file's content (the gate's
    /// check and the open would otherwise see two different files).
    #[test]
    fn a_link_swapped_during_reads_never_reads_outside() {
        use std::os::unix::fs::symlink;
        use std::sync::atomic::{AtomicBool, Ordering};
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        std::fs::create_dir_all(root.join("data")).unwrap();
        std::fs::create_dir_all(root.join("outside")).unwrap();
        std::fs::write(root.join("data/inside.txt"), "inside").unwrap();
        std::fs::write(root.join("outside/secret.txt"), "secret").unwrap();
        let rules = PathRules::of(&["./data/**"], &[], &root);
        let link = root.join("data/link");
        symlink(root.join("data/inside.txt"), &link).unwrap();
        let with = args(json!({ "path": link.display().to_string() }));
        let stop = AtomicBool::new(false);
        let (mut read, mut leaked) = (0, 0);
        std::thread::scope(|s| {
            s.spawn(|| {
                let next = root.join("data/.next");
                let targets = [
                    root.join("outside/secret.txt"),
                    root.join("data/inside.txt"),
                ];
                for k in 0.. {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let _ = std::fs::remove_file(&next);
                    symlink(&targets[k % 2], &next).unwrap();
                    std::fs::rename(&next, &link).unwrap();
                }
            });
            for _ in 0..2000 {
                let outcome = call_with_paths(&FileRead, &with, &rules);
                leaked += usize::from(outcome.output == json!("secret"));
                read += usize::from(outcome.error.is_none());
            }
            stop.store(true, Ordering::Relaxed);
        });
        assert_eq!(leaked, 0, "reads of the file outside paths.read");
        assert!(read > 0, "no read got through at all");
    }

    #[test]
    fn the_path_is_a_read() {
        let with = args(json!({ "path": "data/in.txt" }));
        assert_eq!(FileRead.resources(&with), [Resource::Read("data/in.txt")]);
    }
}
