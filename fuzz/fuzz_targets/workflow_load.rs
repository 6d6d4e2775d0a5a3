//! The workflow loader, as `kairos validate` drives it: YAML text to a validated workflow, then
//! the effective policy, the redaction and capability checks, and the diagnostics rendered both
//! ways (`--format table` and `--format json`); then what `kairos run` checks before it starts
//! (tools, inputs) and what `kairos graph` prints. Any input may be refused; none may panic.
#![no_main]

use kairos::workflow;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The CLI refuses a file that is not UTF-8 before the loader sees it.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match workflow::load_str("fuzz.yaml", text) {
        Ok(w) => {
            let policy = kairos::plan::effective_policy(&w, None);
            let _ = kairos::plan::check_redaction(&policy);
            let violations = kairos::plan::check_capabilities(&w, &policy);
            let _ = w.capabilities_needed();
            let _ = w.edge_count();
            let _ = kairos::plan::resolve_inputs(&w, &[]);
            let _ = kairos::report::graph::mermaid(&w);
            let _ = kairos::report::graph::dot(&w);
            let _ = kairos::report::graph::json(&w);
            if !violations.is_empty() {
                let d = workflow::Diagnostics {
                    source: std::sync::Arc::new(kairos_source(&w)),
                    errors: violations,
                };
                render(&d);
            }
        }
        Err(d) => render(&d),
    }
});

fn kairos_source(w: &workflow::Workflow) -> miette::NamedSource<String> {
    miette::NamedSource::new(w.file.clone(), w.source.to_string())
}

/// Both renderings `kairos validate` prints.
fn render(d: &workflow::Diagnostics) {
    let mut out = String::new();
    d.render(&mut out);
    let _ = serde_json::to_string(&d.records());
}
