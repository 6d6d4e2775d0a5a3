//! The `file.write` tool: writes a text file, creating the directories it needs. The policy
//! checks the path (`paths.write`) before the call.

use super::{Args, CallCx, KeyKind, Outcome, Resource, Tool, ToolSpec, key, str_arg, text};
use crate::policy::Capability;
use serde_json::Value;

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

    fn call(&self, args: &Args, _: &mut CallCx<'_>) -> Outcome {
        write(&text(args, "path"), &text(args, "content")).into()
    }
}

fn write(path: &str, content: &str) -> Result<Value, String> {
    let p = std::path::Path::new(path);
    if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    std::fs::write(p, content.as_bytes()).map_err(|e| format!("cannot write {path}: {e}"))?;
    Ok(Value::from(content.len()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tools::testing::{args, call};
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

    #[test]
    fn the_path_is_a_write() {
        let with = args(json!({ "path": "out/x.txt", "content": "x" }));
        assert_eq!(FileWrite.resources(&with), [Resource::Write("out/x.txt")]);
    }
}
