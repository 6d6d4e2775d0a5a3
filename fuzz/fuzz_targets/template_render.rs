//! Template and expression evaluation at run time (`engine::render`), against a small fixed
//! context: inputs, a node's committed result, the run and a `for_each` item. The first byte
//! chooses what is evaluated and in which text style; the rest is the template. Errors are
//! fine; a panic is not. Pathological templates that run long or grow large are what the
//! limits of `docs/workflow.md` bound: libFuzzer reports them as timeouts or out-of-memory.
#![no_main]

use kairos::engine::render::{Locals, NodeValues, Renderer};
use kairos::workflow::expr::TextStyle;
use libfuzzer_sys::fuzz_target;
use std::sync::{Arc, OnceLock};

struct Context {
    json: Renderer,
    legacy: Renderer,
    locals: Locals,
}

fn context() -> &'static Context {
    static CONTEXT: OnceLock<Context> = OnceLock::new();
    CONTEXT.get_or_init(|| {
        let inputs = serde_json::json!({
            "name": "world",
            "count": 3,
            "flag": true,
            "list": [1, "two", null, {"k": "v"}],
            "map": {"a": "b", "n": 1.5},
            "empty": "",
            "quote": "it's \"quoted\" $(id) `id`",
        });
        let renderer = |style| {
            let nodes = Arc::new(NodeValues::new([(0, "fetch"), (1, "count")]));
            nodes.set(
                0,
                &serde_json::json!({
                    "output": "hello\nworld",
                    "stdout": "hello\nworld\n",
                    "stderr": "",
                    "exit_code": 0,
                    "status": "succeeded",
                }),
            );
            nodes.set(
                1,
                &serde_json::json!({"output": [1, 2, 3], "status": "succeeded"}),
            );
            Renderer::new(&inputs, "fuzz", 42, nodes, style)
        };
        Context {
            json: renderer(TextStyle::Json),
            legacy: renderer(TextStyle::Legacy),
            locals: Locals {
                item: serde_json::json!({"name": "x", "n": 7}),
                index: 2,
            },
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    // minijinja counts lines and columns in `u16`: at 65,535 of either they wrap (an
    // overflow that only a debug build of minijinja reports). Harmless to kairos, which locates
    // a failure by its byte range, not its line and column; so such texts are not tried.
    if text.len() >= usize::from(u16::MAX) {
        return;
    }
    let ctx = context();
    let renderer = if mode & 1 == 0 {
        &ctx.json
    } else {
        &ctx.legacy
    };
    let locals = (mode & 2 != 0).then_some(&ctx.locals);
    match (mode >> 2) % 4 {
        0 => {
            let _ = renderer.template(text, locals);
        }
        1 => {
            let _ = renderer.shell_line(text, locals);
        }
        2 => {
            if let Ok(value) = renderer.expression(text, locals) {
                let _ = kairos::engine::render::to_json(&value);
            }
        }
        _ => {
            let _ = renderer.condition(text, locals);
        }
    }
});
