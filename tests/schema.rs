//! The workflow JSON Schema (`schemas/workflow.schema.json`), checked with an independent
//! validator (the `jsonschema` crate, draft 2020-12) on YAML read by another YAML parser
//! (serde-saphyr): every example and `tests/fixtures/schema-valid/` validates, and every file
//! in `tests/fixtures/schema-invalid/` is rejected.
//!
//! Each invalid file starts with `# kairos: CODE`, the diagnostic `kairos validate` gives it,
//! so the corpus stays invalid for the reason it was written for. It covers the rules a schema
//! can express: unknown keys, missing keys, wrong types, names and patterns, ranges, one kind
//! per node and each tool's `with:` keys. Rules that need the whole file are `kairos
//! validate`'s alone: duplicate keys and ids, references to nodes that do not exist, cycles,
//! a node in both arms of a branch, expressions, regexes and globs.

use crate::common::{Test, root};
use std::path::PathBuf;

fn validator() -> jsonschema::Validator {
    let text = std::fs::read_to_string(root().join("schemas/workflow.schema.json")).unwrap();
    let schema: serde_json::Value = serde_json::from_str(&text).unwrap();
    jsonschema::draft202012::new(&schema).expect("the schema compiles")
}

/// The YAML files of a directory, sorted.
fn yaml_files(dir: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

/// A YAML file as the JSON value a schema validator sees.
fn instance(path: &PathBuf) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap();
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// What the validator says about `path` (empty when it is valid).
fn errors(validator: &jsonschema::Validator, path: &PathBuf) -> Vec<String> {
    let value = instance(path);
    validator
        .iter_errors(&value)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

#[test]
fn schema_is_a_valid_draft_2020_12_schema() {
    let text = std::fs::read_to_string(root().join("schemas/workflow.schema.json")).unwrap();
    let schema: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        schema["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    jsonschema::meta::validate(&schema).expect("valid against the 2020-12 meta-schema");
}

#[test]
fn schema_accepts_every_example() {
    let validator = validator();
    let mut files = yaml_files("workflows");
    files.extend(yaml_files("tests/fixtures/schema-valid"));
    assert!(files.len() >= 13, "{files:?}");
    for file in &files {
        let errors = errors(&validator, file);
        assert!(errors.is_empty(), "{}: {errors:#?}", file.display());
        Test::new()
            .args(["validate", &file.display().to_string()])
            .run()
            .code(0);
    }
}

#[test]
fn schema_rejects_every_invalid_fixture() {
    let validator = validator();
    let files = yaml_files("tests/fixtures/schema-invalid");
    assert!(files.len() >= 50, "{files:?}");
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let code = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# kairos: "))
            .unwrap_or_else(|| panic!("{}: first line is `# kairos: CODE`", file.display()));
        let doc = Test::new()
            .args(["validate", "--format", "json", &file.display().to_string()])
            .run()
            .code(2)
            .json();
        let codes: Vec<&str> = doc["files"][0]["diagnostics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["code"].as_str().unwrap())
            .collect();
        assert!(
            codes.contains(&format!("kairos::{code}").as_str()),
            "{}: kairos reports {codes:?}",
            file.display()
        );
        assert!(
            !validator.is_valid(&instance(file)),
            "{}: the schema accepts it",
            file.display()
        );
    }
}
