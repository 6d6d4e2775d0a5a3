//! The `sleep` tool: waits for a duration, or until the node's timeout, or until the run is
//! interrupted (the first Ctrl-C: a wait is not work to let finish), whichever comes first.

use super::{Args, CallCx, KeyKind, Outcome, Resource, Tool, ToolSpec, key, text};
use crate::syntax::duration;
use serde_json::Value;

/// Waits for `duration`.
pub struct Sleep;

static SLEEP: ToolSpec = ToolSpec {
    name: "sleep",
    summary: "waits for a duration",
    keys: &[key(
        "duration",
        KeyKind::Duration,
        true,
        "how long to wait, e.g. 500ms",
    )],
    one_of: &[],
    capabilities: &[],
};

impl Tool for Sleep {
    fn spec(&self) -> &'static ToolSpec {
        &SLEEP
    }

    fn resources<'a>(&self, _: &'a Args) -> Vec<Resource<'a>> {
        Vec::new()
    }

    fn call(&self, args: &Args, cx: &mut CallCx<'_>) -> Outcome {
        let text = text(args, "duration");
        let Some(wanted) = duration::parse(&text) else {
            return Outcome::failed(format!("invalid duration `{text}`"));
        };
        let limit = cx.timeout.filter(|limit| *limit < wanted);
        if !cx.cancel.wait(limit.unwrap_or(wanted)) {
            return Outcome::interrupted();
        }
        match limit {
            Some(limit) => Outcome::failed(format!("timed out after {}", duration::format(limit))),
            None => Outcome::value(Value::Null),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cancel::Cancel;
    use crate::tools::testing::{args, call};
    use serde_json::json;
    use std::time::Duration;

    fn sleep(with: Value, timeout: Option<Duration>, cancel: &Cancel) -> Outcome {
        Sleep.call(
            &args(with),
            &mut CallCx {
                rng: None,
                timeout,
                cancel,
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
    fn waits_and_outputs_nothing() {
        assert_eq!(
            call(&Sleep, &args(json!({ "duration": "1ms" }))),
            Outcome::value(Value::Null)
        );
    }

    #[test]
    fn an_invalid_duration_fails() {
        assert_eq!(
            call(&Sleep, &args(json!({ "duration": "soon" })))
                .error
                .as_deref(),
            Some("invalid duration `soon`")
        );
    }

    #[test]
    fn the_timeout_ends_a_longer_wait() {
        let outcome = sleep(
            json!({ "duration": "1h" }),
            Some(Duration::from_millis(5)),
            &Cancel::default(),
        );
        assert_eq!(outcome.error.as_deref(), Some("timed out after 5ms"));
    }

    #[test]
    fn the_first_interrupt_from_another_thread_ends_the_wait() {
        let cancel = Cancel::default();
        let other = cancel.clone();
        let interrupter = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            other.interrupt();
        });
        let outcome = sleep(json!({ "duration": "24h" }), None, &cancel);
        interrupter.join().unwrap();
        assert!(outcome.is_interrupted());
    }

    #[test]
    fn a_duration_longer_than_a_week_fails() {
        let outcome = call(&Sleep, &args(json!({ "duration": "999999999h" })));
        assert_eq!(
            outcome.error.as_deref(),
            Some("invalid duration `999999999h`")
        );
    }
}
