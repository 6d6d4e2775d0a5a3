//! What kairos knows about POSIX shell lines: how to quote a value so `sh` reads it back as
//! one word, how to split a line that is nothing but words (so it can be run without a
//! shell), which programs a line would start (for the `commands` policy: [`line`]), and what a
//! program name means ([`resolve`]).
//!
//! This is a leaf: the workflow's template filters, the shell tool and the policy all use it.

pub mod line;
pub mod resolve;

/// Characters that never need quoting: `quote` returns a string made only of these as it is.
/// `=` is left out on purpose: an unquoted `a=b` in command position is an assignment.
fn is_plain(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"_./:@%+,-".contains(&byte)
}

/// Quotes `value` for a POSIX shell, so that `sh` reads it back as exactly one word equal to
/// `value`, whatever it holds (`$(...)`, quotes, newlines, globs).
pub fn quote(value: &str) -> String {
    if value.is_empty() {
        return "''".into();
    }
    if value.bytes().all(is_plain) {
        return value.into();
    }
    // Nothing is special inside single quotes except the closing quote itself, which is written
    // as `'\''`: close, an escaped quote, reopen.
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for c in value.chars() {
        if c == '\'' {
            out.push_str("'\\''");
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    out
}

/// Unquoted characters that make `sh` do more than split words: operators, redirections,
/// expansions, globs, comments, history and brace expansion (for a `sh` that is bash).
const SPECIAL: &str = "|&;<>()$`\\*?[]#~{}!";

/// Builtins and keywords that have no executable of their own (or whose executable would not do
/// the same thing), so a line starting with one must go through the shell.
const SHELL_ONLY: &[&str] = &[
    // POSIX special builtins.
    "break",
    "continue",
    ":",
    ".",
    "eval",
    "exec",
    "exit",
    "export",
    "readonly",
    "return",
    "set",
    "shift",
    "times",
    "trap",
    "unset",
    // Builtins that act on the shell itself.
    "alias",
    "unalias",
    "bg",
    "fg",
    "jobs",
    "cd",
    "command",
    "fc",
    "getopts",
    "hash",
    "read",
    "type",
    "ulimit",
    "umask",
    "wait",
    // bash and other common shells.
    "source",
    "local",
    "declare",
    "typeset",
    "let",
    "shopt",
    "builtin",
    "enable",
    "caller",
    "mapfile",
    "readarray",
    "pushd",
    "popd",
    "dirs",
    "disown",
    "suspend",
    "logout",
    "history",
    "help",
    "bind",
    "complete",
    "compgen",
    "compopt",
    // Reserved words.
    "if",
    "then",
    "else",
    "elif",
    "fi",
    "for",
    "while",
    "until",
    "do",
    "done",
    "case",
    "esac",
    "in",
    "function",
    "select",
    "coproc",
    "time",
    "{",
    "}",
    "!",
    "[[",
    "]]",
];

/// Splits `line` into words the way `sh` would, when it is nothing but words: `None` as soon as
/// the shell would do anything more with it (see [`SPECIAL`] and [`SHELL_ONLY`]), and for an
/// empty line, a newline, an assignment or an unterminated quote.
///
/// Quoted segments join the text around them into one word, so `a'b c'd` is `ab cd`. Outside
/// quotes, the only backslash accepted is `\'`, the escape [`quote`] itself writes, so that
/// everything `quote` produces can be run directly.
pub fn direct_argv(line: &str) -> Option<Vec<String>> {
    // A newline separates commands; leave every multi-line script to the shell.
    if line.contains('\n') {
        return None;
    }
    let mut words = Vec::new();
    let mut word = String::new();
    // Whether a word has started: `''` is an empty word, not nothing.
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next()? {
                        '\'' => break,
                        c => word.push(c),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next()? {
                        '"' => break,
                        // Expansions and escapes still work inside double quotes.
                        '$' | '`' | '\\' => return None,
                        c => word.push(c),
                    }
                }
            }
            '\\' => {
                if chars.next()? != '\'' {
                    return None;
                }
                in_word = true;
                word.push('\'');
            }
            c if SPECIAL.contains(c) => return None,
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    let first = words.first()?;
    // `=` in the first word may be an assignment (`FOO=1 cmd`); quoting it would make it a
    // program name, but such names are not worth telling apart.
    if first.contains('=') || SHELL_ONLY.contains(&first.as_str()) {
        return None;
    }
    Some(words)
}

/// The programs a shell call runs: `args[0]`, or every command word of a `run:` line the
/// recogniser in [`line`] accepts; otherwise why they cannot be determined.
pub fn programs(run: Option<&str>, args: Option<&[String]>) -> Result<Vec<String>, String> {
    let quoted;
    let line = match (args, run) {
        (Some([]), _) => return Err("`args` is empty".into()),
        // An argument vector is read as the simple command it is, each word quoted, so that
        // what a wrapper (`env`, `nice`, `nohup`, ...) starts is checked too and a program
        // that runs code kairos cannot see is refused, as in a `run:` line.
        (Some(args), _) => {
            quoted = args.iter().map(|a| quote(a)).collect::<Vec<_>>().join(" ");
            quoted.as_str()
        }
        (None, Some(line)) => line,
        (None, None) => return Err("the call has neither `run` nor `args`".into()),
    };
    match line::analyse(line) {
        Ok(programs) => Ok(programs.into_iter().map(|p| p.name).collect()),
        Err(refusal) => Err(format!(
            "the line holds {refusal}, which kairos does not analyse"
        )),
    }
}

#[cfg(test)]
pub(crate) const NASTY: &[&str] = &[
    "",
    "plain",
    "a b",
    "$(touch pwned)",
    "`id`",
    "$HOME",
    "it's",
    "'",
    "''",
    "'\\''",
    "\"",
    "\\",
    "a\\nb",
    "*",
    "?[a]",
    "~",
    "~root",
    "#",
    "a=b",
    "-n",
    "-e",
    "!",
    "{a,b}",
    "a;b|c&d",
    "<>",
    "\t",
    " leading and trailing ",
    "é ünïcödé ✓",
    "a\rb",
    "line\nbreak",
    "\n",
    "'\n'",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn words(list: &[&str]) -> Option<Vec<String>> {
        Some(list.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn splits_plain_words() {
        assert_eq!(
            direct_argv("echo hello world"),
            words(&["echo", "hello", "world"])
        );
        assert_eq!(
            direct_argv("  ls\t-l  /tmp  "),
            words(&["ls", "-l", "/tmp"])
        );
        assert_eq!(direct_argv("a'b c'd"), words(&["ab cd"]));
        assert_eq!(
            direct_argv("echo 'a | b' \"c d\" ''"),
            words(&["echo", "a | b", "c d", ""])
        );
        assert_eq!(
            direct_argv("echo \"it's\" 'say \"hi\"'"),
            words(&["echo", "it's", "say \"hi\""])
        );
        assert_eq!(
            direct_argv("echo '$HOME' 'a\\b'"),
            words(&["echo", "$HOME", "a\\b"])
        );
        assert_eq!(
            direct_argv("env A=1 B=2 printenv A"),
            words(&["env", "A=1", "B=2", "printenv", "A"])
        );
        assert_eq!(direct_argv("echo 'it'\\''s'"), words(&["echo", "it's"]));
        assert_eq!(
            direct_argv("./run.sh --x=1 a,b 50% é"),
            words(&["./run.sh", "--x=1", "a,b", "50%", "é"])
        );
    }

    #[test]
    fn leaves_special_lines_to_the_shell() {
        for c in "|&;<>()$`\\*?[]#~{}!".chars() {
            let text = format!("echo a{c}b");
            assert_eq!(direct_argv(&text), None, "{text:?}");
        }
        for text in [
            "",
            "   ",
            "echo a\nb",
            "echo 'a\nb'",
            "echo 'open",
            "echo \"open",
            "echo \"$HOME\"",
            "echo \"`id`\"",
            "echo \"a\\\"b\"",
            "echo a\\",
            "echo ~",
            "echo # comment",
            "FOO=1 env",
            "FOO=1",
            "'a=b' c",
        ] {
            assert_eq!(direct_argv(text), None, "{text:?}");
        }
        for builtin in [
            "cd", "export", "unset", "set", "exit", "source", ".", "eval", "exec", "alias", "read",
            "wait", "trap", "ulimit", "umask", "shift", "return", "local", "if", "then", "else",
            "elif", "fi", "for", "while", "until", "do", "done", "case", "esac", "function",
            "time", "[[",
        ] {
            let text = format!("{builtin} x");
            assert_eq!(direct_argv(&text), None, "{text:?}");
            assert_eq!(direct_argv(&format!("'{builtin}' x")), None, "{text:?}");
        }
    }

    #[test]
    fn quote_examples() {
        assert_eq!(quote(""), "''");
        assert_eq!(quote("abc-1.2_x/y:z@w%+,"), "abc-1.2_x/y:z@w%+,");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), "'it'\\''s'");
        assert_eq!(quote("a=b"), "'a=b'");
    }

    #[test]
    fn quote_round_trips_through_direct_argv() {
        for &s in NASTY {
            let text = format!("echo {}", quote(s));
            match direct_argv(&text) {
                Some(argv) => assert_eq!(argv, ["echo", s], "{text:?}"),
                None => assert!(s.contains('\n'), "{text:?}"),
            }
        }
    }

    #[test]
    fn programs_of_shell_lines() {
        let ok = |list: &[&str]| Ok(list.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(programs(Some("git log --oneline"), None), ok(&["git"]));
        assert_eq!(programs(Some("git log | wc -l"), None), ok(&["git", "wc"]));
        assert_eq!(
            programs(Some("A=1 make && echo ok > out"), None),
            ok(&["make", "echo"])
        );
        assert!(programs(Some("echo $(rm -rf x)"), None).is_err());
        assert!(programs(Some("eval \"$X\""), None).is_err());
        assert_eq!(
            programs(None, Some(&["wc".to_string(), "-l".to_string()])),
            ok(&["wc"])
        );
        assert!(programs(None, Some(&[])).is_err());
    }
}
