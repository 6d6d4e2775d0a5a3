//! The `file.write` tool: writes a text file, creating the directories it needs. The policy
//! checks the path (`paths.write`) before the call, and the tool checks it again as it opens
//! it, opening what it checked (`open.rs`): no link is followed, neither on the way nor at
//! the end, so a link swapped in, or one to nothing yet, cannot lead the write elsewhere.

use super::{Args, CallCx, KeyKind, Outcome, Resource, Tool, ToolSpec, key, open, str_arg, text};
use crate::policy::Capability;
use crate::policy::paths::{Access, PathRules};
use serde_json::Value;
use std::io::Write;

/// Writes `content` to `path`; outputs the number of bytes written.
pub struct FileWrite;

static FILE_WRITE: ToolSpec = ToolSpec {
    name: "file.write",
    summary: "writes a file",
    keys: &[
        key("path", KeyKind::Template, true, "file to write"),
        key("content", KeyKind::Template, true, "text to write"),
    ],
    one_of: &[],
    capabilities: &[Capability::FsWrite],
};

impl Tool for FileWrite {
    fn spec(&self) -> &'static ToolSpec {
        &FILE_WRITE
    }

    fn resources<'a>(&self, args: &'a Args) -> Vec<Resource<'a>> {
        vec![Resource::Write(str_arg(args, "path").unwrap_or_default())]
    }

    fn call(&self, args: &Args, cx: &mut CallCx<'_>) -> Outcome {
        write(&text(args, "path"), &text(args, "content"), cx.paths).into()
    }
}

fn write(path: &str, content: &str, paths: &PathRules) -> Result<Value, String> {
    let mut file = open::open_write(path, paths).map_err(|e| e.message(Access::Write, path))?;
    file.write_all(content.as_bytes())
        .map_err(|e| format!("cannot write {path}: {e}"))?;
    Ok(Value::from(content.len()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tools::testing::{args, call, call_with_paths};
    use serde_json::json;

    #[test]
    fn writes_the_file_and_its_directories() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new/dir/out.txt");
        let with = args(json!({ "path": path.display().to_string(), "content": "héllo" }));
        assert_eq!(call(&FileWrite, &with), Outcome::value(json!(6)));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "héllo");
    }

    #[test]
    fn an_unwritable_path_fails() {
        let dir = tempfile::tempdir().unwrap();
        let with = args(json!({ "path": dir.path().display().to_string(), "content": "x" }));
        let error = call(&FileWrite, &with).error.unwrap();
        assert!(error.starts_with("cannot write "), "{error}");
    }

    /// A thread swaps `data/link` between a link to a file inside `paths.write` and a link to
    /// nothing outside it while the tool writes through it 2,000 times: nothing outside is
    /// ever created or written.
    #[test]
    fn a_link_swapped_during_writes_never_writes_outside() {
        use std::os::unix::fs::symlink;
        use std::sync::atomic::{AtomicBool, Ordering};
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        std::fs::create_dir_all(root.join("data")).unwrap();
        std::fs::create_dir_all(root.join("outside")).unwrap();
        std::fs::write(root.join("outside/kept.txt"), "kept").unwrap();
        let rules = PathRules::of(&[], &["./data/**"], &root);
        let link = root.join("data/link");
        symlink(root.join("data/inside.txt"), &link).unwrap();
        let with = args(json!({ "path": link.display().to_string(), "content": "x" }));
        let stop = AtomicBool::new(false);
        std::thread::scope(|s| {
            s.spawn(|| {
                let next = root.join("data/.next");
                let targets = [
                    root.join("outside/created.txt"),
                    root.join("outside/kept.txt"),
                    root.join("data/inside.txt"),
                ];
                for k in 0.. {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let _ = std::fs::remove_file(&next);
                    symlink(&targets[k % 3], &next).unwrap();
                    std::fs::rename(&next, &link).unwrap();
                }
            });
            for _ in 0..2000 {
                call_with_paths(&FileWrite, &with, &rules);
            }
            stop.store(true, Ordering::Relaxed);
        });
        assert!(!root.join("outside/created.txt").exists());
        assert_eq!(
            std::fs::read_to_string(root.join("outside/kept.txt")).unwrap(),
            "kept"
        );
    }

    #[test]
    fn the_path_is_a_write() {
        let with = args(json!({ "path": "out/x.txt", "content": "x" }));
        assert_eq!(FileWrite.resources(&with), [Resource::Write("out/x.txt")]);
    }
}
