//! The `random` tool: draws from the node's seeded RNG, so a run and its replay draw the same
//! values at any `--jobs`.

use super::{Args, CallCx, KeyKind, Outcome, Placement, Resource, Tool, ToolSpec, key};
use rand::RngExt;
use rand::seq::{IndexedRandom, SliceRandom};
use serde_json::Value;

/// An integer, a float, a choice or a shuffle.
pub struct Random;

static RANDOM: ToolSpec = ToolSpec {
    name: "random",
    summary: "draws from the node's seeded RNG",
    keys: &[
        key(
            "int",
            KeyKind::Value,
            false,
            "[lo, hi]: an integer in the closed range",
        ),
        key(
            "float",
            KeyKind::Value,
            false,
            "[lo, hi]: a float in the half-open range",
        ),
        key(
            "choice",
            KeyKind::Value,
            false,
            "a list to pick one item from",
        ),
        key("shuffle", KeyKind::Value, false, "a list to shuffle"),
    ],
    one_of: &[&["int", "float", "choice", "shuffle"]],
    capabilities: &[],
};

impl Tool for Random {
    fn spec(&self) -> &'static ToolSpec {
        &RANDOM
    }

    fn placement(&self) -> Placement {
        Placement::Inline
    }

    fn draws_rng(&self) -> bool {
        true
    }

    fn resources<'a>(&self, _: &'a Args) -> Vec<Resource<'a>> {
        Vec::new()
    }

    fn call(&self, args: &Args, cx: &mut CallCx<'_>) -> Outcome {
        let Some(rng) = cx.rng.as_deref_mut() else {
            return Outcome::failed("internal error: no RNG for `random`");
        };
        draw(args, rng).into()
    }
}

fn draw(args: &Args, rng: &mut rand_chacha::ChaCha20Rng) -> Result<Value, String> {
    if args.contains_key("int") {
        let (lo, hi) = pair(args, "int")?;
        let (Some(lo), Some(hi)) = (lo.as_i64(), hi.as_i64()) else {
            return Err("`int` bounds must be integers".into());
        };
        if lo > hi {
            return Err(format!("empty range [{lo}, {hi}]"));
        }
        Ok(Value::from(rng.random_range(lo..=hi)))
    } else if args.contains_key("float") {
        let (lo, hi) = pair(args, "float")?;
        let (Some(lo), Some(hi)) = (lo.as_f64(), hi.as_f64()) else {
            return Err("`float` bounds must be numbers".into());
        };
        if lo >= hi || lo.is_nan() || hi.is_nan() {
            return Err(format!("empty range [{lo}, {hi})"));
        }
        Ok(Value::from(rng.random_range(lo..hi)))
    } else if args.contains_key("choice") {
        let items = list(args, "choice")?;
        items
            .choose(rng)
            .cloned()
            .ok_or_else(|| "`choice` is empty".to_string())
    } else {
        let mut items = list(args, "shuffle")?;
        items.shuffle(rng);
        Ok(Value::Array(items))
    }
}

fn pair(args: &Args, key: &str) -> Result<(Value, Value), String> {
    match args.get(key) {
        Some(Value::Array(v)) if v.len() == 2 => Ok((v[0].clone(), v[1].clone())),
        _ => Err(format!("`{key}` must be a list of two numbers, [lo, hi]")),
    }
}

fn list(args: &Args, key: &str) -> Result<Vec<Value>, String> {
    match args.get(key) {
        Some(Value::Array(v)) => Ok(v.clone()),
        Some(other) => Err(format!("`{key}` must be a list, found {other}")),
        None => Err(format!("`{key}` is missing")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cancel::Cancel;
    use crate::tools::testing::{args, call};
    use rand::SeedableRng;
    use rand_chacha::ChaCha20Rng;
    use serde_json::json;

    fn draw_seeded(seed: u64, with: Value) -> Outcome {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        Random.call(
            &args(with),
            &mut CallCx {
                rng: Some(&mut rng),
                timeout: None,
                cancel: &Cancel::default(),
                paths: &crate::policy::paths::PathRules::none(),
                net: &crate::net::Net::default(),
                own_path: false,
                mcp: &crate::mcp::Servers::default(),
                shell: None,
                attempt: crate::exec::AttemptId::default(),
            },
        )
    }

    #[test]
    fn draws_stay_in_range_and_repeat_with_the_seed() {
        for seed in 0..50 {
            let n = draw_seeded(seed, json!({ "int": [3, 5] })).output;
            assert!((3..=5).contains(&n.as_i64().unwrap()), "{n}");
            let f = draw_seeded(seed, json!({ "float": [0.5, 1.0] })).output;
            assert!((0.5..1.0).contains(&f.as_f64().unwrap()), "{f}");
            let c = draw_seeded(seed, json!({ "choice": ["a", "b"] })).output;
            assert!(c == json!("a") || c == json!("b"));
            let mut s = draw_seeded(seed, json!({ "shuffle": [1, 2, 3] })).output;
            s.as_array_mut().unwrap().sort_by_key(|v| v.as_i64());
            assert_eq!(s, json!([1, 2, 3]));
        }
        let with = json!({ "shuffle": (0..20).collect::<Vec<_>>() });
        assert_eq!(draw_seeded(7, with.clone()), draw_seeded(7, with));
    }

    #[test]
    fn bad_arguments_fail() {
        for (with, error) in [
            (json!({ "int": [5, 3] }), "empty range [5, 3]"),
            (json!({ "int": [1.5, 3] }), "`int` bounds must be integers"),
            (json!({ "float": [1, 1] }), "empty range [1, 1)"),
            (
                json!({ "int": [1] }),
                "`int` must be a list of two numbers, [lo, hi]",
            ),
            (json!({ "choice": [] }), "`choice` is empty"),
            (
                json!({ "shuffle": "abc" }),
                "`shuffle` must be a list, found \"abc\"",
            ),
        ] {
            assert_eq!(draw_seeded(0, with).error.as_deref(), Some(error));
        }
    }

    #[test]
    fn without_an_rng_the_call_fails() {
        assert!(
            call(&Random, &args(json!({ "int": [1, 2] })))
                .error
                .unwrap()
                .contains("no RNG")
        );
    }
}
