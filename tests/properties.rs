//! Property tests: generated valid workflows validate; mangled files never panic.

use proptest::prelude::*;
use std::fmt::Write;

/// A random DAG as YAML: every dependency points to an earlier node, kinds are mixed, and
/// templates reference earlier nodes.
fn workflow_yaml() -> impl Strategy<Value = (String, usize)> {
    (1usize..40, any::<u64>()).prop_map(|(n, seed)| {
        let mut rng = seed;
        let mut next = move |m: u64| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng % m.max(1)
        };
        let mut y = String::from("version: 1\nname: gen\ninputs:\n  x: { default: 1 }\npolicy: { preset: permissive }\nnodes:\n");
        let mut i = 0;
        while i < n {
            let needs: Vec<String> = if i == 0 { vec![] } else { (0..next(3)).map(|_| format!("n{}", next(i as u64))).collect::<std::collections::BTreeSet<_>>().into_iter().collect() };
            let _ = writeln!(y, "  - id: n{i}");
            if !needs.is_empty() {
                let _ = writeln!(y, "    needs: [{}]", needs.join(", "));
            }
            match next(6) {
                0 => y.push_str("    tool: noop\n"),
                1 if i > 0 => {
                    let _ = write!(y, "    tool: echo\n    with: {{ message: \"{{{{ nodes.n{}.output }}}} {{{{ inputs.x }}}}\" }}\n", next(i as u64));
                }
                2 => y.push_str("    run: echo hi\n    timeout: 2s\n    retry: { attempts: 2 }\n"),
                3 => y.push_str("    for_each: [1, 2, 3]\n    tool: template\n    with: { text: \"{{ item }}-{{ index }}\" }\n"),
                4 if i + 2 < n => {
                    let _ = writeln!(y, "    branch: {{ if: \"inputs.x > 0\", then: [n{}], else: [n{}] }}", i + 1, i + 2);
                }
                5 if i + 1 < n => {
                    let _ = writeln!(y, "    fork: [n{}]", i + 1);
                }
                _ => y.push_str("    tool: random\n    with: { int: [1, 6] }\n"),
            }
            i += 1;
        }
        let _ = write!(y, "  - id: last\n    join: [n{}]\n", n - 1);
        (y, n + 1)
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn generated_workflows_validate((yaml, nodes) in workflow_yaml()) {
        let workflow = kairos::workflow::load_str("gen.yaml", &yaml);
        let workflow = match workflow {
            Ok(w) => w,
            Err(d) => {
                let mut out = String::new();
                d.render(&mut out);
                panic!("{yaml}\n{out}");
            }
        };
        prop_assert_eq!(workflow.nodes.len(), nodes);
    }

    #[test]
    fn mangled_workflows_never_panic((yaml, _) in workflow_yaml(), cut in any::<prop::sample::Index>(), junk in "[\\[\\]{}:,\"' \n#&*!|>a-z0-9-]{0,6}") {
        let at = cut.index(yaml.len() + 1);
        let mut mangled = yaml.clone();
        let at = (0..=at).rev().find(|&i| mangled.is_char_boundary(i)).unwrap_or(0);
        mangled.insert_str(at, &junk);
        if let Err(d) = kairos::workflow::load_str("m.yaml", &mangled) {
            prop_assert!(!d.errors.is_empty());
            let mut out = String::new();
            d.render(&mut out);
            for record in d.records() {
                prop_assert!(record.line >= 1 && record.column >= 1);
            }
        }
    }
}
