//! What validation checks of an `llm` call beyond its keys' kinds (no literal credential, a
//! literal `api_key_env`), and the environment variables whose values are a workflow's keys.

use super::{ALLOWABLE, CREDENTIAL_HEADERS, Dialect, LLM};
use crate::syntax::diag::{WorkflowError, ss};
use crate::syntax::yaml;

/// Validation of a call's `with:` beyond its keys' kinds: no literal credential, an
/// `api_key_env` that is a literal variable name (so the run's redaction knows it before the
/// run starts), a dialect and an `allow` list that name what exists.
pub(super) fn check_with(with: &[(yaml::Node, yaml::Node)], errors: &mut Vec<WorkflowError>) {
    let invalid =
        |span: yaml::Span, message: String, label: &str, help: &str| WorkflowError::InvalidValue {
            message,
            span: ss(span),
            label: label.into(),
            help: Some(help.into()),
        };
    for (key, value) in with {
        match key.as_str() {
            Some("api_key") => errors.push(invalid(
                key.span,
                "a literal API key in a workflow is refused".into(),
                "literal credential",
                "put the key in an environment variable and name it: `api_key_env: OPENAI_API_KEY`",
            )),
            Some("api_key_env") => match value.as_str() {
                Some(name) if crate::policy::is_variable_name(name) => {}
                _ => errors.push(invalid(
                    value.span,
                    "`api_key_env` names an environment variable: letters, digits and `_`, no template".into(),
                    "not a variable name",
                    "write the variable's name, such as `OPENAI_API_KEY`, never the key itself",
                )),
            },
            Some("timeout") => {
                // Its form is checked with the key's kind; a limit of none is not one.
                if let Some(Ok(limit)) = value.as_str().map(crate::syntax::duration::check)
                    && limit.is_zero()
                {
                    errors.push(crate::workflow::validate::zero_timeout(value.span));
                }
            }
            Some("base_url") => {
                if let Some(why) = value
                    .as_str()
                    .filter(|b| !b.contains("{{"))
                    .and_then(base_url_problem)
                {
                    errors.push(invalid(
                        value.span,
                        why,
                        "not a base URL",
                        "give the URL the dialect's path is appended to, such as `http://localhost:8080/v1`",
                    ));
                }
            }
            Some("dialect") => {
                if let Some(d) = value.as_str().filter(|d| !d.contains("{{"))
                    && d != "openai"
                    && d != "anthropic"
                {
                    errors.push(invalid(
                        value.span,
                        format!("unknown dialect `{d}`"),
                        "unknown dialect",
                        "`dialect` is `openai` (the default) or `anthropic`",
                    ));
                }
            }
            Some("headers") => {
                if let yaml::Value::Map(entries) = &value.value {
                    for (name, _) in entries {
                        let lower = name.scalar_text().to_ascii_lowercase();
                        if CREDENTIAL_HEADERS.contains(&lower.as_str()) {
                            errors.push(invalid(
                                name.span,
                                format!("header `{}` would carry a literal credential", name.scalar_text()),
                                "literal credential",
                                "name the environment variable holding the key in `api_key_env`; kairos sends it as the dialect's header",
                            ));
                        }
                    }
                }
            }
            Some("allow") => {
                if let yaml::Value::Seq(items) = &value.value {
                    for item in items {
                        if let Some(s) = item.as_str()
                            && !s.contains("{{")
                            && !ALLOWABLE.contains(&s)
                        {
                            errors.push(invalid(
                                item.span,
                                format!("`allow` names `{s}`"),
                                "not an allowable failure",
                                &format!("`allow` takes: {}", ALLOWABLE.join(", ")),
                            ));
                        }
                    }
                }
            }
            _ => {}
        }
        if key.as_str() != Some("api_key_env") {
            literal_keys(value, errors);
        }
    }
}

/// A value that looks like a provider's key (`sk-...`, `sk-ant-...`) anywhere in a call's
/// arguments is refused: it would be in the workflow file, and in the ledger's copy of it.
fn literal_keys(value: &yaml::Node, errors: &mut Vec<WorkflowError>) {
    match &value.value {
        yaml::Value::Str(s) if looks_like_key(s) => {
            errors.push(WorkflowError::InvalidValue {
                message: "this looks like a literal API key".into(),
                span: ss(value.span),
                label: "literal credential".into(),
                help: Some(
                    "put the key in an environment variable and name it in `api_key_env`".into(),
                ),
            });
        }
        yaml::Value::Seq(items) => items.iter().for_each(|i| literal_keys(i, errors)),
        yaml::Value::Map(entries) => entries.iter().for_each(|(_, v)| literal_keys(v, errors)),
        _ => {}
    }
}

/// `sk-` followed by at least 20 key characters, alone or after `Bearer `.
fn looks_like_key(s: &str) -> bool {
    let s = s.trim();
    let s = s.strip_prefix("Bearer ").unwrap_or(s);
    s.strip_prefix("sk-").is_some_and(|rest| {
        rest.len() >= 20
            && rest
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    })
}

/// The environment variables whose values are keys of this workflow's `llm` calls: each
/// `api_key_env` (a literal name, as validation requires) and the defaults of the dialects
/// used without one. The run masks their values like `policy.secrets` (docs/llm.md).
pub fn secret_names(workflow: &crate::workflow::Workflow) -> Vec<String> {
    let mut names = Vec::new();
    let mut nodes = Vec::new();
    // Calls inside loop bodies (agents included) and called files are the run's calls too.
    workflow.each_nested(&mut |w| nodes.extend(&w.nodes));
    for node in nodes {
        let crate::workflow::NodeKind::Task(task) = &node.kind else {
            continue;
        };
        if task.tool.spec().name != LLM.name {
            continue;
        }
        let arg = |k: &str| task.with.iter().find(|(n, _)| n == k).map(|(_, v)| v);
        match arg("api_key_env").and_then(|v| v.as_str()) {
            Some(name) => names.push(name.to_string()),
            // A templated dialect could be either.
            None => match arg("dialect").and_then(|v| v.as_str()) {
                Some("openai") => names.push(Dialect::OpenAi.default_key_env().into()),
                Some("anthropic") => names.push(Dialect::Anthropic.default_key_env().into()),
                None => names.push(Dialect::OpenAi.default_key_env().into()),
                Some(_) => {
                    names.push(Dialect::OpenAi.default_key_env().into());
                    names.push(Dialect::Anthropic.default_key_env().into());
                }
            },
        }
    }
    names.sort();
    names.dedup();
    names
}

/// Why `base` cannot be a base URL: the endpoint's path is appended to it, so a query or a
/// fragment would swallow that path (`http://h/v1#x` + `/chat/completions` asks `/v1`).
pub(super) fn base_url_problem(base: &str) -> Option<String> {
    base.contains(['?', '#']).then(|| {
        format!(
            "`base_url` `{base}` has a query or a fragment: the endpoint's path is appended to it"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_look_like_keys() {
        assert!(looks_like_key("sk-proj-abcdefghijklmnopqrstuvwxyz"));
        assert!(looks_like_key("Bearer sk-ant-api03-abcdefghijklmnopqrstu"));
        assert!(!looks_like_key("sk-short"));
        assert!(!looks_like_key("a sk-abcdefghijklmnopqrstuvwxyz sentence"));
    }
}
