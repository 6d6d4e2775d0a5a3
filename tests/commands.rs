//! The `commands` policy: every program a shell call starts is checked, a line kairos cannot
//! read is denied, and a name means what kairos's own `PATH` finds (docs/policy.md, "Commands").

use crate::common::Test;
use serde_json::Value;
use std::path::Path;

const ATTACKS: &str = "tests/fixtures/attacks/shell";

fn attack(name: &str) -> String {
    std::fs::read_to_string(crate::common::root().join(ATTACKS).join(name)).unwrap()
}

/// A workflow whose nodes run `lines` (as `run:`) under `commands: LIST`.
fn workflow(commands: &str, lines: &[&str]) -> String {
    let mut yaml = format!(
        "version: 1\nname: c\npolicy: {{ preset: permissive, commands: [{commands}] }}\nnodes:\n"
    );
    for (i, line) in lines.iter().enumerate() {
        // A JSON string is a YAML double-quoted scalar.
        yaml.push_str(&format!(
            "  - id: n{i}\n    run: {}\n",
            serde_json::to_string(line).unwrap()
        ));
    }
    yaml
}

fn ledger(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("l.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn of<'a>(events: &'a [Value], kind: &str, node: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|e| e["event"] == kind && e["node"] == node)
        .collect()
}

/// Runs the attack `fixture` under `commands: [echo]`: it must be denied and `touch` must not
/// have run.
fn assert_denied(fixture: &str) {
    let line = attack(fixture);
    let t = Test::new().workflow(&workflow("echo", &[&line]));
    let out = t
        .args(["run", "wf.yaml", "-q", "--ledger", "l.jsonl"])
        .run()
        .code(3);
    let events = ledger(out.dir.path());
    let deny = of(&events, "PolicyDeny", "n0");
    assert_eq!(deny.len(), 1, "{fixture}: {line:?} was not denied");
    assert_eq!(deny[0]["reason"], "COMMAND_NOT_PERMITTED", "{fixture}");
    assert!(
        !out.dir.path().join("X").exists(),
        "{fixture}: {line:?} ran `touch`"
    );
}

#[test]
fn commands_subshell_is_denied() {
    assert_denied("subshell.sh");
}

#[test]
fn commands_group_is_denied() {
    assert_denied("group.sh");
}

#[test]
fn commands_after_a_leading_redirection_are_checked() {
    assert_denied("leading-redirection.sh");
    assert_denied("leading-fd-redirection.sh");
}

#[test]
fn commands_function_definition_is_denied() {
    assert_denied("function.sh");
}

#[test]
fn commands_arithmetic_command_is_denied() {
    assert_denied("arithmetic-command.sh");
}

#[test]
fn commands_after_a_bash_redirection_are_checked() {
    // `&>` is a redirection in bash, but `&` then `>` in dash: `touch` runs there.
    assert_denied("bash-redirection.sh");
}

/// Every attack kept under `tests/fixtures/attacks/shell/`, in one run.
#[test]
fn commands_every_construct_outside_the_subset_is_denied() {
    let mut names: Vec<String> = std::fs::read_dir(crate::common::root().join(ATTACKS))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert!(names.len() >= 20, "{names:?}");
    let lines: Vec<String> = names.iter().map(|n| attack(n)).collect();
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    let t = Test::new()
        .workflow(&workflow("echo", &lines))
        .file("script", "touch X\n");
    let out = t
        .args(["run", "wf.yaml", "-q", "--ledger", "l.jsonl"])
        .run()
        .code(3);
    let events = ledger(out.dir.path());
    for (i, name) in names.iter().enumerate() {
        let deny = of(&events, "PolicyDeny", &format!("n{i}"));
        assert_eq!(deny.len(), 1, "{name}: {:?} was not denied", lines[i]);
        assert_eq!(deny[0]["reason"], "COMMAND_NOT_PERMITTED", "{name}");
    }
    assert!(!out.dir.path().join("X").exists());
}

#[test]
fn commands_denial_names_the_construct() {
    let t = Test::new().workflow(&workflow("echo", &[&attack("subshell.sh")]));
    let out = t
        .args(["run", "wf.yaml", "-q", "--ledger", "l.jsonl"])
        .run()
        .code(3);
    let events = ledger(out.dir.path());
    let detail = of(&events, "PolicyDeny", "n0")[0]["detail"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(detail.contains("cannot be determined"), "{detail}");
    assert!(detail.contains("subshell"), "{detail}");
}

/// Lines inside the subset run as before under a `commands` list that names their programs.
#[test]
fn commands_accepted_lines_still_run() {
    let table: &[(&str, &str)] = &[
        ("echo plain", "plain"),
        (
            "echo 'single $HOME' \"double\" back\\ slash",
            "single $HOME double back slash",
        ),
        ("echo a | tr a b", "b"),
        ("echo one; echo two", "one\ntwo"),
        ("false || echo fallback", "fallback"),
        ("true && echo and", "and"),
        ("ls kairos-none 2>&1 | wc -l | tr -d ' '", "1"),
        ("echo to-file > out.txt && cat < out.txt", "to-file"),
        (">out2.txt echo first && cat out2.txt", "first"),
        ("2>/dev/null ls kairos-none || echo quiet", "quiet"),
        ("echo hidden >/dev/null 2>&1; echo shown", "shown"),
        (
            "X=1 Y='a b' env -u HOME sort < /dev/null; echo sorted",
            "sorted",
        ),
        ("echo \"$V\" | cat", "from-env"),
        ("echo a\necho b # comment; touch X", "a\nb"),
    ];
    let lines: Vec<&str> = table.iter().map(|(l, _)| *l).collect();
    let mut yaml = workflow("echo, tr, ls, wc, cat, 'false', 'true', env, sort", &lines);
    yaml = yaml.replace(
        "    run: \"echo \\\"$V\\\" | cat\"\n",
        "    run: \"echo \\\"$V\\\" | cat\"\n    with: { env: { V: from-env } }\n",
    );
    let out = Test::new()
        .workflow(&yaml)
        .args(["run", "wf.yaml", "-q", "--ledger", "l.jsonl"])
        .run()
        .code(0);
    let events = ledger(out.dir.path());
    for (i, (line, expected)) in table.iter().enumerate() {
        let output = &of(&events, "ToolOutput", &format!("n{i}"))[0]["output"];
        assert_eq!(output, expected, "{line:?}");
    }
    assert!(!out.dir.path().join("X").exists());
}

/// `args:` is checked by its first item, and nothing in the others is a command.
#[test]
fn commands_args_program_is_checked() {
    let yaml = "version: 1\nname: c\npolicy: { preset: permissive, commands: [echo] }\nnodes:\n  - id: ok\n    tool: shell\n    with: { args: [echo, \"$(touch X); touch X\"] }\n  - id: bad\n    tool: shell\n    with: { args: [touch, X] }\n";
    let out = Test::new()
        .workflow(yaml)
        .args(["run", "wf.yaml", "-q", "--ledger", "l.jsonl"])
        .run()
        .code(3);
    let events = ledger(out.dir.path());
    assert_eq!(
        of(&events, "ToolOutput", "ok")[0]["output"],
        "$(touch X); touch X"
    );
    assert_eq!(
        of(&events, "PolicyDeny", "bad")[0]["reason"],
        "COMMAND_NOT_PERMITTED"
    );
    assert!(!out.dir.path().join("X").exists());
}

/// A directory `evil/` holding an executable for each of `names` that creates `PWNED`.
fn evil(t: Test, names: &[&str]) -> Test {
    let mut t = t;
    for name in names {
        t = t.file(
            &format!("evil/{name}"),
            "#!/bin/sh\ntouch \"$(dirname \"$0\")/../PWNED\"\necho pwned\n",
        );
        let path = t.path().join("evil").join(name);
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    t
}

/// `PATH` set by the call (in `env`, in the line, with a relative `PATH` and `cwd`) does not
/// change which program an allowed name starts, in `run:` lines (direct or through `sh`) and in
/// `args:`.
#[test]
fn commands_path_override_does_not_change_the_program() {
    let yaml = "version: 1\nname: c\npolicy: { preset: permissive, commands: [echo, cat, tr] }\nnodes:\n  - id: direct\n    run: echo direct\n    with: { env: { PATH: ./evil } }\n  - id: through_sh\n    run: echo through | cat\n    with: { env: { PATH: ./evil } }\n  - id: inline\n    run: \"echo inline | PATH=./evil cat\"\n  - id: assigned\n    run: \"PATH=./evil; echo assigned | tr a a\"\n  - id: relative\n    run: echo relative | cat\n    with: { env: { PATH: . }, cwd: evil }\n  - id: args\n    tool: shell\n    with: { args: [cat], stdin: args, env: { PATH: ./evil } }\n  - id: env_path\n    tool: shell\n    with: { args: [echo, env-path], env: { PATH: \"./evil:/usr/bin:/bin\" } }\n";
    let t = evil(Test::new().workflow(yaml), &["echo", "cat", "tr"]);
    let out = t
        .args(["run", "wf.yaml", "-q", "--ledger", "l.jsonl"])
        .run()
        .code(0);
    let events = ledger(out.dir.path());
    for (node, expected) in [
        ("direct", "direct"),
        ("through_sh", "through"),
        ("inline", "inline"),
        ("assigned", "assigned"),
        ("relative", "relative"),
        ("args", "args"),
        ("env_path", "env-path"),
    ] {
        assert_eq!(
            of(&events, "ToolOutput", node)[0]["output"],
            expected,
            "{node}"
        );
    }
    assert!(
        !out.dir.path().join("PWNED").exists(),
        "a program from ./evil ran"
    );
}

/// Without a `commands` list, a call's `PATH` chooses its programs as it would in a shell
/// (a virtualenv's or `node_modules/.bin`'s tools): only an allowed name is pinned.
#[test]
fn without_commands_the_calls_path_finds_the_program() {
    let yaml = "version: 1\nname: c\npolicy: { preset: permissive }\nnodes:\n  - id: args\n    tool: shell\n    with: { args: [mytool], env: { PATH: ./evil } }\n  - id: line\n    run: mytool | cat\n    with: { env: { PATH: \"./evil:/usr/bin:/bin\" } }\n";
    let t = evil(Test::new().workflow(yaml), &["mytool"]);
    let out = t
        .args(["run", "wf.yaml", "-q", "--ledger", "l.jsonl"])
        .run()
        .code(0);
    let events = ledger(out.dir.path());
    for node in ["args", "line"] {
        assert_eq!(
            of(&events, "ToolOutput", node)[0]["output"],
            "pwned",
            "{node}"
        );
    }
}

/// The child keeps the `PATH` the call asked for: only the lookup of the program is kairos's.
#[test]
fn commands_path_override_reaches_the_child() {
    let yaml = "version: 1\nname: c\npolicy: { preset: permissive, commands: [printenv] }\nnodes:\n  - id: p\n    tool: shell\n    with: { args: [printenv, PATH], env: { PATH: /kairos/test } }\n";
    let out = Test::new()
        .workflow(yaml)
        .args(["run", "wf.yaml", "-q", "--ledger", "l.jsonl"])
        .run()
        .code(0);
    let events = ledger(out.dir.path());
    assert_eq!(of(&events, "ToolOutput", "p")[0]["output"], "/kairos/test");
}

/// A name with a `/` is a path: never looked up, run relative to `cwd`, and allowed only when
/// `commands` lists it as written.
#[test]
fn commands_paths_match_as_written() {
    let yaml = "version: 1\nname: c\npolicy: { preset: permissive, commands: [./tool, echo] }\nnodes:\n  - id: listed\n    run: ./tool\n  - id: with_cwd\n    run: ./tool\n    with: { cwd: sub }\n  - id: bare\n    run: tool\n    with: { env: { PATH: . } }\n  - id: other\n    run: ./evil/echo\n  - id: absolute_echo\n    run: /bin/echo x\n";
    let t = evil(Test::new().workflow(yaml), &["echo"])
        .file("tool", "#!/bin/sh\necho top\n")
        .file("sub/tool", "#!/bin/sh\necho sub\n");
    for p in ["tool", "sub/tool"] {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(t.path().join(p), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let out = t
        .args(["run", "wf.yaml", "-q", "--ledger", "l.jsonl"])
        .run()
        .code(3);
    let events = ledger(out.dir.path());
    assert_eq!(of(&events, "ToolOutput", "listed")[0]["output"], "top");
    assert_eq!(of(&events, "ToolOutput", "with_cwd")[0]["output"], "sub");
    for node in ["bare", "other", "absolute_echo"] {
        assert_eq!(
            of(&events, "PolicyDeny", node)[0]["reason"],
            "COMMAND_NOT_PERMITTED",
            "{node}"
        );
    }
    assert!(!out.dir.path().join("PWNED").exists());
}

/// A program kairos's `PATH` does not have fails like a missing command, and a line goes on as
/// the shell would.
#[test]
fn commands_missing_program_fails_as_not_found() {
    let yaml = "version: 1\nname: c\npolicy: { preset: permissive }\nnodes:\n  - id: fallback\n    run: kairos-no-such-program 2>/dev/null || echo fallback\n  - id: direct\n    run: kairos-no-such-program\n    continue_on_error: true\n";
    let out = Test::new()
        .workflow(yaml)
        .args(["run", "wf.yaml", "-q", "--ledger", "l.jsonl"])
        .run()
        .code(0);
    let events = ledger(out.dir.path());
    assert_eq!(
        of(&events, "ToolOutput", "fallback")[0]["output"],
        "fallback"
    );
    let direct = of(&events, "ToolOutput", "direct")[0];
    assert_eq!(direct["exit_code"], 127);
}

/// Differential check of the analysis against `sh` itself: for lines built at random from
/// fragments of the shell language, whenever kairos accepts a line, every program `sh -c` starts
/// for it (each a stub on `PATH` that logs its name) is one kairos reported.
mod differential {
    use proptest::prelude::*;
    use std::collections::BTreeSet;
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;

    const STUBS: &[&str] = &["aa", "bb", "cc", "env", "nice", "nohup"];

    /// Stubs that log their name, then do their real job (which starts the program named in
    /// their arguments).
    const WRAPPERS: &[&str] = &["env", "nice", "nohup"];

    const FRAGMENTS: &[&str] = &[
        "aa",
        "bb",
        "cc",
        "env",
        "echo",
        "true",
        "command",
        "exec",
        "X=aa",
        "'aa'",
        "\"bb\"",
        "a\\a",
        "$X",
        "${X}",
        "\"$X\"",
        "a*",
        "a?",
        "{aa,bb}",
        "~",
        ";",
        "&&",
        "||",
        "|",
        "&",
        "\n",
        "(",
        ")",
        "{",
        "}",
        "((",
        "))",
        "$(aa)",
        "`bb`",
        "<(cc)",
        ">/dev/null",
        "2>/dev/null",
        "2>&1",
        "&>/dev/null",
        ">&2",
        "<&0",
        "#",
        "'",
        "\"",
        "\\",
        "if",
        "then",
        "fi",
        "for",
        "do",
        "done",
        "in",
        "!",
        "eval",
        "-u",
        "-i",
        "PATH=.",
        "x=1",
        "$'aa'",
        "<<E",
        "$((1))",
        "-v",
        "-p",
        "--",
    ];

    fn stubs(dir: &Path) {
        let real = |name: &str| {
            std::env::split_paths(&std::env::var_os("PATH").unwrap())
                .map(|d| d.join(name))
                .find(|p| p.is_file())
                .unwrap_or_else(|| panic!("{name} on PATH"))
        };
        for name in STUBS {
            let tail = if WRAPPERS.contains(name) {
                format!("exec {} \"$@\"\n", real(name).display())
            } else {
                String::new()
            };
            let path = dir.join(name);
            std::fs::write(&path, format!("#!/bin/sh\necho {name} >> \"$LOG\"\n{tail}")).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
    }

    /// The programs `sh -c line` started, from the stubs' log.
    fn started(dir: &Path, line: &str) -> BTreeSet<String> {
        let log = dir.join("log");
        let _ = std::fs::remove_file(&log);
        let status = std::process::Command::new("/bin/sh")
            .args(["-c", line])
            .env_clear()
            .env("PATH", dir.join("bin"))
            .env("LOG", &log)
            .env("X", "aa")
            .current_dir(dir.join("work"))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
        assert!(status.is_ok(), "{line:?}");
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]
        #[test]
        fn commands_analysis_covers_what_sh_runs(
            parts in prop::collection::vec(
                (prop::sample::select(FRAGMENTS), prop::bool::weighted(0.8)),
                1..9,
            )
        ) {
            let mut line = String::new();
            for (fragment, space) in parts {
                line.push_str(fragment);
                if space {
                    line.push(' ');
                }
            }
            // Background commands finish before the log is read.
            let line = format!("{line}\nwait");
            if let Ok(programs) = kairos::sh::line::analyse(&line) {
                let reported: BTreeSet<String> = programs.into_iter().map(|p| p.name).collect();
                let dir = tempfile::tempdir().unwrap();
                std::fs::create_dir_all(dir.path().join("bin")).unwrap();
                std::fs::create_dir_all(dir.path().join("work")).unwrap();
                stubs(&dir.path().join("bin"));
                let ran = started(dir.path(), &line);
                prop_assert!(
                    ran.is_subset(&reported),
                    "{line:?}: sh ran {ran:?}, kairos reported {reported:?}"
                );
            }
        }
    }

    /// The fragments do produce accepted lines that run stubs, so the property is not vacuous.
    #[test]
    fn commands_differential_check_sees_programs() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("bin")).unwrap();
        std::fs::create_dir_all(dir.path().join("work")).unwrap();
        stubs(&dir.path().join("bin"));
        let line = "aa 2>&1 | 'bb' && env -u X cc\nwait";
        assert!(kairos::sh::line::analyse(line).is_ok());
        assert_eq!(
            started(dir.path(), line),
            ["aa", "bb", "cc", "env"].map(String::from).into()
        );
    }
}

/// A relative entry in kairos's own `PATH` is taken from where kairos started, not from the
/// call's `cwd`.
#[test]
fn commands_relative_path_entry_is_not_read_from_cwd() {
    let yaml = "version: 1\nname: c\npolicy: { preset: permissive, commands: [echo, cat] }\nnodes:\n  - id: direct\n    run: echo direct\n    with: { cwd: sub }\n  - id: through_sh\n    run: echo through | cat\n    with: { cwd: sub }\n";
    let t = Test::new().workflow(yaml);
    let t = t.file("sub/.keep", "");
    std::fs::create_dir_all(t.path().join("sub/evil")).unwrap();
    for name in ["echo", "cat"] {
        let path = t.path().join("sub/evil").join(name);
        std::fs::write(&path, "#!/bin/sh\ntouch ../PWNED\necho pwned\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let path = format!("evil:{}", std::env::var("PATH").unwrap());
    let out = t
        .env("PATH", &path)
        .args(["run", "wf.yaml", "-q", "--ledger", "l.jsonl"])
        .run()
        .code(0);
    let events = ledger(out.dir.path());
    assert_eq!(of(&events, "ToolOutput", "direct")[0]["output"], "direct");
    assert_eq!(
        of(&events, "ToolOutput", "through_sh")[0]["output"],
        "through"
    );
    assert!(!out.dir.path().join("PWNED").exists());
}

/// What a wrapper starts is checked whether the call is an argument vector (`shell`'s `args`,
/// a stdio MCP server's `command`) or a `run:` line, and a wrapper or an opaque program given
/// by path is the same program.
#[test]
fn wrappers_in_argument_vectors_and_by_path_are_seen_through() {
    let yaml = "version: 1\nname: w\nmcp_servers:\n  s: { command: [env, python3, server.py] }\npolicy: { preset: permissive, commands: [env, nice, nohup, /usr/bin/env, echo] }\nnodes:\n  - id: a\n    tool: shell\n    with: { args: [env, touch, X] }\n  - id: b\n    tool: shell\n    with: { args: [nice, -n, \"5\", touch, X] }\n  - id: c\n    run: /usr/bin/env touch X\n  - id: d\n    tool: mcp\n    with: { server: s, tool: t }\n  - id: e\n    tool: shell\n    with: { args: [/usr/bin/xargs, touch] }\n  - id: ok\n    tool: shell\n    with: { args: [env, echo, fine] }\n";
    let out = Test::new()
        .workflow(yaml)
        .args(["run", "wf.yaml", "-q", "--ledger", "l.jsonl"])
        .run()
        .code(3);
    let events = ledger(out.dir.path());
    for node in ["a", "b", "c", "d", "e"] {
        let deny = of(&events, "PolicyDeny", node);
        assert_eq!(deny.len(), 1, "{node} was not denied");
        assert_eq!(deny[0]["reason"], "COMMAND_NOT_PERMITTED", "{node}");
    }
    assert!(!out.dir.path().join("X").exists(), "`touch` ran");
    let ok = of(&events, "ToolOutput", "ok");
    assert_eq!(ok[0]["output"], "fine");
}
