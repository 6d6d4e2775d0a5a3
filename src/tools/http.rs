//! The `http` tool: described and validated, not yet runnable in this build. Its URL is what
//! the policy checks against `hosts`.

use super::{
    Args, CallCx, KeyKind, Outcome, Placement, Resource, Tool, ToolSpec, key, str_arg, unavailable,
};
use crate::policy::Capability;

/// An HTTP request.
pub struct Http;

static HTTP: ToolSpec = ToolSpec {
    name: "http",
    summary: "makes an HTTP request",
    keys: &[
        key(
            "method",
            KeyKind::Template,
            false,
            "GET (default), POST, ...",
        ),
        key("url", KeyKind::Template, true, "request URL"),
        key("headers", KeyKind::Value, false, "request headers"),
        key("body", KeyKind::Value, false, "request body"),
    ],
    one_of: &[],
    capabilities: &[Capability::Net],
};

impl Tool for Http {
    fn spec(&self) -> &'static ToolSpec {
        &HTTP
    }

    fn placement(&self) -> Placement {
        Placement::Unavailable
    }

    fn resources<'a>(&self, args: &'a Args) -> Vec<Resource<'a>> {
        vec![Resource::Url(str_arg(args, "url").unwrap_or_default())]
    }

    fn call(&self, _: &Args, _: &mut CallCx<'_>) -> Outcome {
        unavailable(&HTTP)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::effective::{Effective, Reason};
    use crate::tools::testing::args;
    use serde_json::json;

    #[test]
    fn the_url_is_checked_against_hosts() {
        let policy = Effective::of_workflow("preset: permissive\nhosts: [\"*.example.com\"]\n");
        let allowed = args(json!({ "url": "https://api.example.com/v1/x" }));
        let denied = args(json!({ "url": "https://evil.test/" }));
        assert_eq!(
            Http.resources(&allowed),
            [Resource::Url("https://api.example.com/v1/x")]
        );
        assert_eq!(policy.check(&Http.resources(&allowed)[0]).1, Ok(()));
        let (check, verdict) = policy.check(&Http.resources(&denied)[0]);
        assert_eq!(check.name(), "host");
        assert_eq!(verdict.unwrap_err().reason, Reason::HostNotPermitted);
    }
}
