//! Running a tool call: the built-in tools of SPEC section 3 behind one entry point.
//!
//! Arguments arrive rendered (templates evaluated, `assert`'s `that` already a value). Tools
//! are plain functions of their arguments, the node's RNG and its timeout, so a call gives
//! the same result whichever thread runs it.

use super::{Outcome, ToolSpec, shell};
use crate::cancel::Cancel;
use crate::syntax::duration;
use rand::RngExt;
use rand::seq::{IndexedRandom, SliceRandom};
use rand_chacha::ChaCha20Rng;
use serde_json::{Map, Value};
use std::time::Duration;

/// Tools that only compute: they run on the scheduler thread as soon as they are ready,
/// with no hand-off to a worker.
pub fn is_inline(tool: &ToolSpec) -> bool {
    matches!(
        tool.name,
        "noop" | "echo" | "template" | "random" | "assert"
    )
}

/// Tools this build can run.
pub fn is_available(tool: &ToolSpec) -> bool {
    !matches!(tool.name, "http" | "llm" | "mcp")
}

pub struct Call<'a> {
    pub args: &'a Map<String, Value>,
    /// The node's RNG; present for the tools that draw from it.
    pub rng: Option<&'a mut ChaCha20Rng>,
    pub timeout: Option<Duration>,
    /// The run's interrupts: a second one ends a wait and kills running commands.
    pub cancel: &'a Cancel,
}

pub fn run(tool: &ToolSpec, call: &mut Call<'_>) -> Outcome {
    let result = match tool.name {
        "noop" => Ok(Value::Null),
        "echo" => Ok(Value::String(text(call.args, "message"))),
        "template" => Ok(Value::String(text(call.args, "text"))),
        "sleep" => sleep(call),
        "random" => random(call),
        "assert" => assert(call.args),
        "shell" => return shell(call),
        "file.read" => file_read(call.args),
        "file.write" => file_write(call.args),
        other => Err(format!(
            "tool `{other}` is not available in this version of kairos"
        )),
    };
    match result {
        Ok(output) => Outcome {
            output,
            ..Outcome::default()
        },
        Err(error) => Outcome {
            error: Some(error),
            ..Outcome::default()
        },
    }
}

/// A rendered argument as text (strings as they are, other values as JSON).
fn text(args: &Map<String, Value>, key: &str) -> String {
    match args.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

fn sleep(call: &Call<'_>) -> Result<Value, String> {
    let text = text(call.args, "duration");
    let wanted = duration::parse(&text).ok_or_else(|| format!("invalid duration `{text}`"))?;
    let limit = call.timeout.filter(|limit| *limit < wanted);
    if !call.cancel.sleep(limit.unwrap_or(wanted)) {
        return Err("interrupted".into());
    }
    match limit {
        Some(limit) => Err(format!("timed out after {}", duration::format(limit))),
        None => Ok(Value::Null),
    }
}

fn pair(args: &Map<String, Value>, key: &str) -> Result<(Value, Value), String> {
    match args.get(key) {
        Some(Value::Array(v)) if v.len() == 2 => Ok((v[0].clone(), v[1].clone())),
        _ => Err(format!("`{key}` must be a list of two numbers, [lo, hi]")),
    }
}

fn list(args: &Map<String, Value>, key: &str) -> Result<Vec<Value>, String> {
    match args.get(key) {
        Some(Value::Array(v)) => Ok(v.clone()),
        Some(other) => Err(format!("`{key}` must be a list, found {other}")),
        None => Err(format!("`{key}` is missing")),
    }
}

fn random(call: &mut Call<'_>) -> Result<Value, String> {
    let args = call.args;
    let Some(rng) = call.rng.as_deref_mut() else {
        return Err("internal error: no RNG for `random`".into());
    };
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

fn assert(args: &Map<String, Value>) -> Result<Value, String> {
    let holds = match args.get("that") {
        Some(Value::Bool(b)) => *b,
        Some(Value::Null) | None => false,
        Some(Value::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0),
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Object(o)) => !o.is_empty(),
    };
    if holds {
        Ok(Value::Bool(true))
    } else {
        let message = text(args, "message");
        Err(if message.is_empty() {
            "assertion failed".to_string()
        } else {
            format!("assertion failed: {message}")
        })
    }
}

fn file_read(args: &Map<String, Value>) -> Result<Value, String> {
    let path = text(args, "path");
    std::fs::read_to_string(&path)
        .map(Value::String)
        .map_err(|e| format!("cannot read {path}: {e}"))
}

fn file_write(args: &Map<String, Value>) -> Result<Value, String> {
    let path = text(args, "path");
    let content = text(args, "content");
    let p = std::path::Path::new(&path);
    if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    std::fs::write(p, content.as_bytes()).map_err(|e| format!("cannot write {path}: {e}"))?;
    Ok(Value::from(content.len()))
}

fn shell(call: &Call<'_>) -> Outcome {
    let args = call.args;
    let command = match (args.get("run"), args.get("args")) {
        (Some(Value::String(line)), _) => shell::Command::Line(line.clone()),
        (_, Some(Value::Array(argv))) => shell::Command::Args(
            argv.iter()
                .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
                .collect(),
        ),
        _ => {
            return Outcome {
                error: Some("`run` or `args` is required".into()),
                ..Outcome::default()
            };
        }
    };
    let env = match args.get("env") {
        Some(Value::Object(map)) => map
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.as_str().map_or_else(|| v.to_string(), str::to_string),
                )
            })
            .collect(),
        _ => Vec::new(),
    };
    let request = shell::Request {
        command,
        env,
        cwd: args
            .get("cwd")
            .and_then(Value::as_str)
            .map(std::path::PathBuf::from),
        stdin: args
            .get("stdin")
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string)),
        timeout: call.timeout,
    };
    shell::run(&request, call.cancel)
}
