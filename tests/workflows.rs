//! The example workflows in `workflows/`.

use crate::common::{Test, root};

fn examples() -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(root().join("workflows"))
        .expect("workflows/ exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .map(|p| p.display().to_string())
        .collect();
    files.sort();
    files
}

#[test]
fn every_example_validates() {
    let files = examples();
    assert!(
        files.len() >= 7,
        "expected the quickstart, one example per node kind and a large one: {files:?}"
    );
    let out = Test::new().args(["validate"]).args(&files).run().code(0);
    assert_eq!(out.stdout.lines().count(), files.len());
}

#[test]
fn every_example_names_the_schema_and_explains_itself() {
    for file in examples() {
        let text = std::fs::read_to_string(&file).unwrap();
        let mut lines = text.lines();
        assert_eq!(
            lines.next(),
            Some("# yaml-language-server: $schema=../schemas/workflow.schema.json"),
            "{file}"
        );
        assert_eq!(
            lines.next(),
            Some("#"),
            "{file}: a comment explaining the example follows the schema line"
        );
        assert!(
            lines
                .next()
                .is_some_and(|l| l.len() > 10 && l.starts_with("# ")),
            "{file}"
        );
    }
}

#[test]
fn examples_cover_every_node_kind_and_a_large_workflow() {
    let out = Test::new()
        .args(["validate", "--format", "json"])
        .args(examples())
        .run()
        .code(0);
    let doc = out.json();
    let largest = doc["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["nodes"].as_u64().unwrap())
        .max()
        .unwrap();
    assert!(largest >= 15, "a realistic workflow of 15+ nodes");
    let all: String = examples()
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect();
    for kind in [
        "\n    run:",
        "\n    tool:",
        "\n    branch:",
        "\n    fork:",
        "\n    join:",
        "\n    approval:",
        "\n    for_each:",
    ] {
        assert!(all.contains(kind), "no example uses {kind:?}");
    }
}

#[test]
fn readme_example_validates_as_shown() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let start = readme.find("```yaml\n").expect("README has a YAML example") + "```yaml\n".len();
    let yaml = &readme[start..start + readme[start..].find("```").unwrap()];
    let shown = readme
        .lines()
        .find(|l| l.starts_with("ok hello.yaml:"))
        .expect("README shows the summary line");
    Test::new()
        .file("hello.yaml", yaml)
        .args(["validate", "hello.yaml"])
        .run()
        .code(0)
        .stdout_contains(shown);
}
