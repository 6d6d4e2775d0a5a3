//! The `llm` tool: described and validated, not yet runnable in this build. The endpoint it
//! would reach, `base_url` or the default one, is what the policy checks against `hosts`.

use super::{
    Args, CallCx, KeyKind, Outcome, Placement, Resource, Tool, ToolSpec, key, str_arg, unavailable,
};
use crate::policy::Capability;
use serde_json::Value;

/// A chat completion against an OpenAI-compatible endpoint.
pub struct Llm;

/// The endpoint a call without `base_url` reaches.
pub const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";

static LLM: ToolSpec = ToolSpec {
    name: "llm",
    summary: "chat completion against an OpenAI-compatible endpoint",
    keys: &[
        key("base_url", KeyKind::Template, false, "endpoint base URL"),
        key("model", KeyKind::Template, true, "model name"),
        key(
            "messages",
            KeyKind::Value,
            false,
            "chat messages ({role, content})",
        ),
        key("prompt", KeyKind::Template, false, "a single user message"),
        key("temperature", KeyKind::Value, false, "sampling temperature"),
        key("seed", KeyKind::Value, false, "sampling seed"),
    ],
    one_of: &[&["messages", "prompt"]],
    capabilities: &[Capability::Llm],
};

impl Tool for Llm {
    fn spec(&self) -> &'static ToolSpec {
        &LLM
    }

    fn placement(&self) -> Placement {
        Placement::Unavailable
    }

    fn resources<'a>(&self, args: &'a Args) -> Vec<Resource<'a>> {
        // A `base_url` that renders to something other than text is no URL: checked as given
        // (empty), it is denied wherever `hosts` applies, as the call could not reach anything
        // named.
        let url = match args.get("base_url") {
            None | Some(Value::Null) => DEFAULT_BASE_URL,
            Some(_) => str_arg(args, "base_url").unwrap_or_default(),
        };
        vec![Resource::Url(url)]
    }

    fn call(&self, _: &Args, _: &mut CallCx<'_>) -> Outcome {
        unavailable(&LLM)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::effective::{Effective, Reason};
    use crate::tools::testing::args;
    use serde_json::json;

    #[test]
    fn without_base_url_the_default_endpoint_is_checked_against_hosts() {
        let with = args(json!({ "model": "m", "prompt": "hi" }));
        assert_eq!(Llm.resources(&with), [Resource::Url(DEFAULT_BASE_URL)]);

        let policy = Effective::of_workflow("preset: permissive\nhosts: [llm.internal]\n");
        let (check, verdict) = policy.check(&Llm.resources(&with)[0]);
        assert_eq!(check.name(), "host");
        assert_eq!(verdict.unwrap_err().reason, Reason::HostNotPermitted);

        let policy = Effective::of_workflow("preset: permissive\nhosts: [api.openai.com]\n");
        assert_eq!(policy.check(&Llm.resources(&with)[0]).1, Ok(()));
    }

    #[test]
    fn base_url_is_checked_against_hosts() {
        let with = args(json!({ "base_url": "http://llm.internal:8000/v1", "model": "m" }));
        assert_eq!(
            Llm.resources(&with),
            [Resource::Url("http://llm.internal:8000/v1")]
        );
        let policy = Effective::of_workflow("preset: permissive\nhosts: [llm.internal]\n");
        assert_eq!(policy.check(&Llm.resources(&with)[0]).1, Ok(()));
    }
}
