//! Completions, man pages and schemas are generated from the code and committed; this test
//! fails when a committed copy is stale. `KAIROS_UPDATE_GENERATED=1 cargo test generated`
//! rewrites them.

use crate::common::root;

#[test]
fn generated_files_are_fresh() {
    let update = std::env::var_os("KAIROS_UPDATE_GENERATED").is_some();
    let mut stale = Vec::new();
    let files = kairos::cli::generate::files();
    for (path, contents) in &files {
        let full = root().join(path);
        if std::fs::read(&full).ok().as_deref() != Some(contents.as_slice()) {
            if update {
                std::fs::create_dir_all(full.parent().unwrap()).unwrap();
                std::fs::write(&full, contents).unwrap();
            } else {
                stale.push(path.clone());
            }
        }
    }
    assert!(
        stale.is_empty(),
        "stale generated files {stale:?}: run `KAIROS_UPDATE_GENERATED=1 cargo test generated`"
    );
    let names: Vec<&str> = files.iter().map(|(p, _)| p.as_str()).collect();
    for expected in [
        "completions/kairos.bash",
        "completions/_kairos",
        "completions/kairos.fish",
        "completions/kairos.elv",
        "completions/_kairos.ps1",
        "man/kairos.1",
        "man/kairos-validate.1",
        "man/kairos-graph.1",
        "schemas/workflow.schema.json",
        "schemas/ledger-line.schema.json",
    ] {
        assert!(
            names.contains(&expected),
            "{expected} is not generated: {names:?}"
        );
    }
}

#[test]
fn workflow_schema_accepts_the_examples_shape() {
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("schemas/workflow.schema.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(schema["title"], "kairos workflow");
    let required: Vec<&str> = schema["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(required, ["version", "name", "nodes"]);
    let tools = &schema["$defs"]["NodeDoc"]["properties"]["tool"]["enum"];
    assert!(tools.as_array().unwrap().iter().any(|t| t == "file.read"));
}
