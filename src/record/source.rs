//! Recordings as the engine's source of call results (the engine's [`Answers`]).
//!
//! The engine asks once per task call, after its policy decision and before anything runs. A
//! live run ([`crate::engine::Live`]) always runs the tool. A replay (`kairos replay --check`,
//! `--against`) never does: the recording answers every call, and a call it cannot answer
//! (no recorded result, another tool, another input) is a [`crate::engine::Divergence`] that fails the node.
//! A resumed run (`kairos run --resume`) takes what the recording has, so no committed call
//! runs twice, and runs the rest.
//!
//! The input is passed as a closure: rendering and redacting it is only needed when a
//! recording answers, and a live run should not pay for it twice.

use super::Recording;
use crate::engine::{Answer, Answers};
use crate::tools::ToolSpec;
use serde_json::Value;

/// Where the engine gets the results of task calls.
#[derive(Clone, Copy, Debug)]
pub enum CallSource<'r> {
    /// Every call is answered from the recording or diverges; nothing runs.
    Replay(&'r Recording),
    /// A call the recording has is answered from it; the others run.
    Resume(&'r Recording),
}

impl Answers for CallSource<'_> {
    fn answer(&self, id: &str, tool: &ToolSpec, input: &mut dyn FnMut() -> Value) -> Answer {
        let recording = match *self {
            CallSource::Replay(r) => r,
            CallSource::Resume(r) if r.calls.contains_key(id) => r,
            CallSource::Resume(_) => return Answer::Run,
        };
        let input = input();
        // The recorded counts go with the node whether or not the call matches: they describe
        // the recording, as the ledger a replay regenerates has always shown them.
        let mut redactions = recording.redactions(id);
        let digest = digest(tool, &input);
        match recording.answer(id, tool.name, digest.as_deref(), &input) {
            // The same input: the recorded count of its redactions describes it, even where
            // the secrets it masked are not in what the replay renders from (an input's value
            // is recorded masked in `RunStart`).
            Ok(attempts) => Answer::Recorded {
                input,
                attempts,
                redactions,
            },
            // A changed input: its redactions are what the re-rendered input has.
            Err(divergence) => {
                redactions.retain(|(field, _)| field != "input");
                Answer::Diverged {
                    input,
                    redactions,
                    divergence,
                }
            }
        }
    }
}

/// The digest a call's `Start` records: none for a tool without arguments (noop), which has
/// no invocation to tell apart.
fn digest(tool: &ToolSpec, input: &Value) -> Option<String> {
    (!tool.keys.is_empty()).then(|| {
        crate::ledger::input_digest(tool.name, &serde_json::to_string(input).unwrap_or_default())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Divergence;
    use crate::ledger::event::{self, Event, RawJson, Text};
    use crate::tools::Attempt;
    use serde_json::json;
    use std::borrow::Cow;

    fn tool(name: &str) -> &'static ToolSpec {
        crate::tools::find(name).unwrap().spec()
    }

    fn start(node: &str, tool: &str, input: Option<&'static str>) -> Event<'static> {
        Event::Start(event::Start {
            node: Text::from(node.to_string()),
            tool: Text::from(tool.to_string()),
            input_sha256: input.map(|i| crate::ledger::input_digest(tool, i).into()),
            input: input.map(|i| RawJson(i.into())),
            for_each: None,
        })
    }

    fn output(node: &str, attempt: u64, value: Value, error: Option<&str>) -> Event<'static> {
        Event::ToolOutput(event::ToolOutput {
            error: error.map(|e| Text::from(e.to_string())),
            ..event::ToolOutput::new(node.to_string(), attempt, Cow::Owned(value))
        })
    }

    fn end(node: &str, attempts: u64) -> Event<'static> {
        Event::End(event::End {
            attempts: Some(attempts),
            ..event::End::plain(node.to_string(), event::Status::Succeeded)
        })
    }

    /// `greet` (echo "hi") succeeded on its second attempt after a 5 ms backoff, and its
    /// output had one secret masked; `wait` is a noop that ran once.
    fn recording() -> Recording {
        let mut r = Recording::default();
        for e in [
            start("greet", "echo", Some(r#"{"message":"hi"}"#)),
            output("greet", 1, Value::Null, Some("busy")),
            Event::Retry(event::Retry {
                node: "greet".into(),
                attempt: 2,
                delay_ms: 5,
                reason: None,
            }),
            output("greet", 2, json!("hi"), None),
            Event::ContentRedacted {
                node: "greet".into(),
                field: "output".into(),
                count: 1,
            },
            Event::ContentRedacted {
                node: "greet".into(),
                field: "input".into(),
                count: 1,
            },
            end("greet", 2),
            start("wait", "noop", None),
            end("wait", 1),
        ] {
            r.add(e);
        }
        r
    }

    fn hi() -> Value {
        json!({"message": "hi"})
    }

    #[test]
    fn replay_answers_a_recorded_call_with_its_attempts() {
        let r = recording();
        let answer = CallSource::Replay(&r).answer("greet", tool("echo"), &mut hi);
        let Answer::Recorded {
            input,
            attempts,
            redactions,
        } = answer
        else {
            panic!("{answer:?}")
        };
        assert_eq!(input, hi());
        assert_eq!(attempts.len(), 2);
        assert_eq!(attempts[0].outcome.error.as_deref(), Some("busy"));
        assert_eq!(attempts[0].delay_ms, Some(5));
        assert_eq!(attempts[1].outcome.output, json!("hi"));
        assert_eq!(attempts[1].delay_ms, None);
        // The input rendered now is the recorded one: the recorded counts, the input's
        // included, describe it (in the order recorded).
        assert_eq!(
            redactions,
            [("output".to_string(), 1), ("input".to_string(), 1)]
        );
    }

    #[test]
    fn replay_answers_a_call_without_arguments_by_its_attempt_count() {
        let r = recording();
        let answer = CallSource::Replay(&r).answer("wait", tool("noop"), &mut || json!({}));
        let Answer::Recorded { attempts, .. } = answer else {
            panic!("{answer:?}")
        };
        assert_eq!(attempts, [Attempt::default()]);
    }

    fn diverged(answer: Answer) -> Divergence {
        match answer {
            Answer::Diverged { divergence, .. } => divergence,
            other => panic!("expected a divergence, got {other:?}"),
        }
    }

    #[test]
    fn replay_diverges_on_a_changed_input() {
        let r = recording();
        let asked = json!({"message": "hello"});
        let answer = CallSource::Replay(&r).answer("greet", tool("echo"), &mut || asked.clone());
        // A changed input's count is recomputed from the input rendered now, not taken over.
        let Answer::Diverged { redactions, .. } = &answer else {
            panic!("{answer:?}")
        };
        assert_eq!(*redactions, [("output".to_string(), 1)]);
        let d = diverged(answer);
        assert_eq!(d.node, "greet");
        assert_eq!(d.reason, "the rendered input differs from the recorded one");
        assert_eq!(d.recorded, Some(hi()));
        assert_eq!(d.asked, asked);
        assert_eq!(
            d.attempt().outcome.error.as_deref(),
            Some("replay diverged: the rendered input differs from the recorded one")
        );
    }

    #[test]
    fn replay_diverges_on_another_tool() {
        let r = recording();
        let d = diverged(CallSource::Replay(&r).answer(
            "greet",
            tool("shell"),
            &mut || json!({"run": "echo hi"}),
        ));
        assert_eq!(
            d.reason,
            "the recording ran tool `echo`, the workflow now asks for `shell`"
        );
        assert_eq!(d.recorded, Some(hi()));
    }

    #[test]
    fn replay_diverges_on_a_call_the_recording_lacks() {
        let r = recording();
        let answer = CallSource::Replay(&r).answer("later", tool("echo"), &mut hi);
        let Answer::Diverged {
            input, divergence, ..
        } = answer
        else {
            panic!("{answer:?}")
        };
        assert_eq!(input, hi());
        assert_eq!(divergence.reason, "no recorded result for this call");
        assert_eq!(divergence.recorded, None);
    }

    #[test]
    fn resume_answers_what_the_recording_has_and_runs_the_rest() {
        let r = recording();
        let source = CallSource::Resume(&r);
        assert!(matches!(
            source.answer("greet", tool("echo"), &mut hi),
            Answer::Recorded { .. }
        ));
        let mut not_rendered = || -> Value { panic!("a call that runs needs no recorded input") };
        assert_eq!(
            source.answer("later", tool("echo"), &mut not_rendered),
            Answer::Run
        );
    }

    #[test]
    fn a_live_run_runs_every_call() {
        let mut not_rendered = || -> Value { panic!("a live call needs no recorded input") };
        assert_eq!(
            crate::engine::Live.answer("greet", tool("echo"), &mut not_rendered),
            Answer::Run
        );
    }
}
