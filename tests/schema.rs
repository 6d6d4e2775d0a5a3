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
//!
//! The ledger line schema (`schemas/ledger-line.schema.json`) goes through the same validator:
//! every complete line of every committed ledger validates, and damaged lines are rejected.

use crate::common::{Test, root};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

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

fn ledger_schema() -> Value {
    let text = std::fs::read_to_string(root().join("schemas/ledger-line.schema.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn ledger_validator() -> jsonschema::Validator {
    jsonschema::draft202012::new(&ledger_schema()).expect("the ledger schema compiles")
}

/// The ledgers (`*.jsonl`) under `dir`, at any depth, sorted.
fn ledgers(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(ledgers(&path));
        } else if path.extension().is_some_and(|e| e == "jsonl") {
            files.push(path);
        }
    }
    files.sort();
    files
}

/// What the validator says about one line (empty when it is valid).
fn line_errors(validator: &jsonschema::Validator, line: &Value) -> Vec<String> {
    validator
        .iter_errors(line)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect()
}

#[test]
fn ledger_schema_is_a_valid_draft_2020_12_schema() {
    let schema = ledger_schema();
    assert_eq!(
        schema["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    jsonschema::meta::validate(&schema).expect("valid against the 2020-12 meta-schema");
    assert_eq!(
        schema["properties"]["event"]["enum"],
        json!(kairos::ledger::event::KINDS)
    );
}

#[test]
fn ledger_schema_accepts_every_line_of_the_committed_ledgers() {
    let validator = ledger_validator();
    let mut files = ledgers(&root().join("tests/fixtures/golden"));
    files.extend(ledgers(&root().join("tests/fixtures/release-0.1")));
    assert!(files.len() >= 26, "{files:?}");
    let mut torn = 0;
    let mut kinds = BTreeSet::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        // A torn file ends in the middle of a line: only the lines that end with `\n` are whole.
        let mut lines = text.split_inclusive('\n').peekable();
        let mut n = 0;
        while let Some(line) = lines.next() {
            let Some(line) = line.strip_suffix('\n') else {
                assert!(lines.peek().is_none());
                torn += 1;
                break;
            };
            n += 1;
            let value: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{} line {n}: {e}", file.display()));
            let errors = line_errors(&validator, &value);
            assert!(
                errors.is_empty(),
                "{} line {n}: {errors:#?}",
                file.display()
            );
            kinds.insert(value["event"].as_str().unwrap().to_string());
        }
        assert!(n > 0, "{}: no complete line", file.display());
    }
    assert!(torn >= 2, "the torn ledgers were not among the files");
    let every: BTreeSet<String> = kairos::ledger::event::KINDS
        .iter()
        .map(|k| k.to_string())
        .collect();
    assert_eq!(kinds, every, "the committed ledgers hold every event kind");
}

#[test]
fn ledger_schema_rejects_damaged_lines() {
    let validator = ledger_validator();
    let text =
        std::fs::read_to_string(root().join("tests/fixtures/golden/core/ledger.jsonl")).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let counts = json!({"denied": 0, "failed": 0, "paused": 0, "skipped": 0, "succeeded": 0});
    // (what is wrong, the kind of line damaged, the field, its new value or `None` to remove it)
    let cases = [
        ("an unknown field", "End", "extra", Some(json!(1))),
        (
            "an unknown field in a value",
            "RunEnd",
            "counts",
            Some(counts),
        ),
        ("`node` on a run event", "RunEnd", "node", Some(json!("a"))),
        (
            "a string for a number",
            "ToolOutput",
            "attempt",
            Some(json!("1")),
        ),
        ("a number for text", "Start", "tool", Some(json!(7))),
        ("a negative seq", "End", "seq", Some(json!(-1))),
        ("a fraction for the clock", "End", "clock", Some(json!(1.5))),
        (
            "null for an optional field",
            "End",
            "attempts",
            Some(Value::Null),
        ),
        (
            "a status that does not exist",
            "End",
            "status",
            Some(json!("done")),
        ),
        ("a missing required field", "End", "status", None),
        ("a missing node", "Skipped", "node", None),
        ("a missing clock", "Start", "clock", None),
        (
            "an unknown event kind",
            "End",
            "event",
            Some(json!("Teleport")),
        ),
        (
            "an uppercase prev",
            "End",
            "prev",
            Some(json!("A".repeat(64))),
        ),
        ("a short prev", "End", "prev", Some(json!("0".repeat(63)))),
    ];
    for (what, kind, field, value) in cases {
        let mut line = lines
            .iter()
            .find(|l| l["event"] == kind)
            .unwrap_or_else(|| panic!("no {kind} line"))
            .clone();
        let errors = line_errors(&validator, &line);
        assert!(errors.is_empty(), "{kind} before the damage: {errors:#?}");
        let object = line.as_object_mut().unwrap();
        match value {
            Some(value) => object.insert(field.to_string(), value),
            None => object.remove(field),
        };
        let errors = line_errors(&validator, &line);
        assert!(!errors.is_empty(), "{what}: the schema accepts {line}");
        assert!(
            errors.iter().any(|e| e.contains(field)),
            "{what}: no error names `{field}`: {errors:#?}"
        );
    }
}
