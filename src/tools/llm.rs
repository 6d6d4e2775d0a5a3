//! The `llm` tool: described and validated, not yet runnable in this build. Its `base_url` is
//! what the policy checks against `hosts`.

use super::{
    Args, CallCx, KeyKind, Outcome, Placement, Resource, Tool, ToolSpec, key, str_arg, unavailable,
};
use crate::policy::Capability;

/// A chat completion against an OpenAI-compatible endpoint.
pub struct Llm;

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
        str_arg(args, "base_url")
            .map(Resource::Url)
            .into_iter()
            .collect()
    }

    fn call(&self, _: &Args, _: &mut CallCx<'_>) -> Outcome {
        unavailable(&LLM)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::effective::Effective;
    use crate::tools::testing::args;
    use serde_json::json;

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
