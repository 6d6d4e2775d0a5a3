//! The `file.read` tool: reads a text file. The policy checks the path (`paths.read`) before
//! the call.

use super::{Args, CallCx, KeyKind, Outcome, Resource, Tool, ToolSpec, key, str_arg, text};
use crate::policy::Capability;
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

    fn call(&self, args: &Args, _: &mut CallCx<'_>) -> Outcome {
        let path = text(args, "path");
        std::fs::read_to_string(&path)
            .map(Value::String)
            .map_err(|e| format!("cannot read {path}: {e}"))
            .into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tools::testing::{args, call};
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

    #[test]
    fn the_path_is_a_read() {
        let with = args(json!({ "path": "data/in.txt" }));
        assert_eq!(FileRead.resources(&with), [Resource::Read("data/in.txt")]);
    }
}
