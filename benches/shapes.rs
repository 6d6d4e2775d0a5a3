//! Workflow shapes for the benchmarks, as `shared/bench/gen.py` builds them: `chain` (each node
//! needs the previous), `fanout` (a root, N children, one join on all of them) and
//! `random-dag` (each node needs 1-3 random earlier nodes).

use std::fmt::Write;

pub fn workflow(shape: &str, n: usize, body: &str) -> String {
    let mut state = 42u64;
    let mut next = move |m: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % m as u64) as usize
    };
    let mut y = String::with_capacity(n * 48);
    y.push_str("version: 1\nname: bench\npolicy: { preset: permissive }\nnodes:\n");
    let count = if shape == "fanout" { n + 2 } else { n };
    for i in 0..count {
        let _ = writeln!(y, "  - id: t{i}");
        let deps: Vec<usize> = match shape {
            "chain" if i > 0 => vec![i - 1],
            "chain" => vec![],
            "fanout" if i == 0 => vec![],
            "fanout" if i == n + 1 => (1..=n).collect(),
            "fanout" => vec![0],
            _ if i == 0 => vec![],
            _ => {
                let mut d: Vec<usize> = (0..1 + next(3)).map(|_| next(i)).collect();
                d.sort_unstable();
                d.dedup();
                d
            }
        };
        if !deps.is_empty() {
            let deps: Vec<String> = deps.iter().map(|d| format!("t{d}")).collect();
            let _ = writeln!(y, "    needs: [{}]", deps.join(", "));
        }
        y.push_str(body);
    }
    y
}
