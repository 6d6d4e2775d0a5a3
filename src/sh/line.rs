//! The programs a shell line starts, read by a strict recogniser of a small subset of the POSIX
//! shell language (see docs/policy.md, "Commands").
//!
//! The `commands` policy is only as good as this answer, so the recogniser accepts what it
//! understands completely and refuses everything else: a line it accepts is a list of simple
//! commands (leading `NAME=value` assignments, words with single quotes, double quotes and
//! backslash escapes, `$NAME` and `${NAME}` in arguments, redirections anywhere) joined by `;`,
//! `&&`, `||`, `|`, `&` and newlines. Every command word is reported. Anything else (subshells,
//! groups, functions, compound commands, here-documents, command and process substitution,
//! expansions or globs in command position, commands that run code kairos cannot see) is a
//! [`Refusal`] with the construct named.
//!
//! A hand-written recogniser rather than a full shell parser: a parser answers "what does bash
//! mean by this", while the policy needs "is this something every `sh` reads the same way, and
//! which programs does it start". Where dash and bash read a construct differently (`&>` is a
//! redirection in bash, a background `&` then a redirection in dash), the recogniser takes the
//! reading that starts more commands, so the set it reports covers both.

use std::ops::Range;

/// A command word the line starts: its value once quotes are removed, and where it is in the
/// line (so the runner can substitute the resolved program).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Program {
    pub name: String,
    /// The word as written, quotes included.
    pub span: Range<usize>,
    /// Whether the shell may run it as a builtin of its own (a command word, or the word after
    /// `command`/`builtin`), rather than always as an executable found through `PATH`.
    pub builtin_position: bool,
}

/// Why a line is outside the subset the recogniser reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal(pub String);

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn refuse<T>(what: impl Into<String>) -> Result<T, Refusal> {
    Err(Refusal(what.into()))
}

/// Reserved words and other words that open or close compound commands when they are a command
/// word: `if`, loops, `case`, functions, groups, negation, bash's `[[` and `coproc`.
const KEYWORDS: &[&str] = &[
    "if", "then", "else", "elif", "fi", "for", "while", "until", "do", "done", "case", "esac",
    "in", "function", "select", "coproc", "time", "{", "}", "!", "[[", "]]",
];

/// Commands that run code kairos cannot see from the line (a string evaluated, a file sourced,
/// a program named on their input, another shell, a callback): refused whether or not they are
/// listed in `commands`.
const OPAQUE: &[&str] = &[
    "eval",
    ".",
    "source",
    "trap",
    "fc",
    "enable",
    "bind",
    "complete",
    "compgen",
    "mapfile",
    "readarray",
    "alias",
    "let",
    "declare",
    "typeset",
    "local",
    "xargs",
    "sudo",
    "doas",
    "su",
    "runuser",
    "sh",
    "bash",
    "dash",
    "zsh",
    "ksh",
    "mksh",
    "ash",
    "yash",
    "posh",
    "busybox",
    "fish",
    "csh",
    "tcsh",
];

/// Commands that start a program named in their arguments, which kairos reads (their options
/// included) so the inner program is checked too.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Wrapper {
    Env,
    Command,
    Builtin,
    Exec,
    Nohup,
    Nice,
}

impl Wrapper {
    fn of(name: &str) -> Option<Self> {
        Some(match name {
            "env" => Wrapper::Env,
            "command" => Wrapper::Command,
            "builtin" => Wrapper::Builtin,
            "exec" => Wrapper::Exec,
            "nohup" => Wrapper::Nohup,
            "nice" => Wrapper::Nice,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Wrapper::Env => "env",
            Wrapper::Command => "command",
            Wrapper::Builtin => "builtin",
            Wrapper::Exec => "exec",
            Wrapper::Nohup => "nohup",
            Wrapper::Nice => "nice",
        }
    }
}

/// Builtins of every common `sh` (dash, bash, busybox ash, ksh) that the shell runs itself,
/// whatever `PATH` says. Only these are left to the shell in command position; every other
/// program is started by the absolute path kairos resolved.
pub const SHELL_BUILTINS: &[&str] = &[
    ":", "[", "break", "cd", "continue", "echo", "exit", "export", "false", "getopts", "hash",
    "kill", "printf", "pwd", "read", "readonly", "return", "set", "shift", "test", "times", "true",
    "type", "ulimit", "umask", "unset", "wait", "command", "exec", "bg", "fg", "jobs", "unalias",
];

/// Builtins to which bash gives a variable name as an argument, evaluating an array subscript in
/// it: `$(...)` there runs even from inside quotes.
const SUBSCRIPT_BUILTINS: &[&str] = &[
    "printf", "read", "unset", "test", "[", "wait", "getopts", "export", "readonly",
];

/// One word as read: its value with quotes removed, and what the shell would do to it.
#[derive(Debug, Default)]
struct Word {
    value: String,
    span: Range<usize>,
    /// `$NAME` or `${NAME}` somewhere: its value is only known when the line runs.
    expands: bool,
    /// An unquoted `*`, `?` or `[`: pathname expansion.
    globs: bool,
    /// An unquoted `{` or `}` (brace expansion in bash, reserved words when alone).
    braces: bool,
    /// An unquoted `~` first: tilde expansion.
    tilde: bool,
    /// `NAME` when the word is an assignment `NAME=value` (the name unquoted).
    assigns: Option<String>,
}

impl Word {
    /// Whether the word's value is known exactly before the line runs.
    fn literal(&self) -> bool {
        !(self.expands || self.globs || self.braces || self.tilde)
    }
}

/// What is expected of the next word of a simple command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Next {
    /// Assignments or the command word.
    Command,
    /// Arguments of an ordinary command.
    Argument,
    /// Options of a wrapper, then the program it starts.
    Wrapped(Wrapper),
    /// The value of a wrapper's option (`env -u NAME`, `nice -n 5`), then back to the wrapper.
    OptionValue(Wrapper),
}

struct Reader<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
    programs: Vec<Program>,
    next: Next,
    /// The command word of the current simple command, when it is one of
    /// [`SUBSCRIPT_BUILTINS`].
    builtin: Option<String>,
}

/// The programs `line` starts, in order, or why it cannot be told.
pub fn analyse(line: &str) -> Result<Vec<Program>, Refusal> {
    let mut reader = Reader {
        text: line,
        bytes: line.as_bytes(),
        pos: 0,
        programs: Vec::new(),
        next: Next::Command,
        builtin: None,
    };
    reader.line()?;
    Ok(reader.programs)
}

fn is_blank(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// Bytes that end an unquoted word.
fn ends_word(b: u8) -> bool {
    is_blank(b) || b"\n;&|<>()".contains(&b)
}

fn is_name_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_'
}

fn is_name(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

impl Reader<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn peek_at(&self, ahead: usize) -> Option<u8> {
        self.bytes.get(self.pos + ahead).copied()
    }

    fn line(&mut self) -> Result<(), Refusal> {
        loop {
            self.skip_blanks();
            let Some(b) = self.peek() else {
                return self.end_command();
            };
            match b {
                b'#' => {
                    while self.peek().is_some_and(|b| b != b'\n') {
                        self.pos += 1;
                    }
                }
                b'\n' | b';' => {
                    if b == b';' && matches!(self.peek_at(1), Some(b';' | b'&')) {
                        return refuse("`;;` or `;&` (a `case` clause)");
                    }
                    self.pos += 1;
                    self.end_command()?;
                }
                b'&' => {
                    // `&>` is one redirection in bash, but `&` (in the background) then `>` in
                    // dash. Ending the command here reads it as dash does, which reports every
                    // command word either shell would run.
                    self.pos += if self.peek_at(1) == Some(b'&') { 2 } else { 1 };
                    self.end_command()?;
                }
                b'|' => {
                    match self.peek_at(1) {
                        Some(b'|') => self.pos += 2,
                        Some(b'&') => return refuse("`|&`"),
                        _ => self.pos += 1,
                    }
                    self.end_command()?;
                }
                b'(' | b')' => {
                    return refuse(
                        "a subshell, function definition or arithmetic command (`(`, `)`)",
                    );
                }
                b'<' | b'>' => self.redirection()?,
                b'0'..=b'9' if self.io_number() => {
                    // dash takes only one digit as a descriptor (`10>f cmd` runs `10`), bash
                    // more: a number both read alike is the only one read.
                    if self.peek_at(1).is_some_and(|b| b.is_ascii_digit()) {
                        return refuse(
                            "a file descriptor number of more than one digit (`10>`), which shells read differently",
                        );
                    }
                    self.redirection()?
                }
                _ => {
                    let word = self.word()?;
                    self.take(word)?;
                }
            }
        }
    }

    /// Skips blanks and escaped newlines (line continuations).
    fn skip_blanks(&mut self) {
        loop {
            match self.peek() {
                Some(b) if is_blank(b) => self.pos += 1,
                Some(b'\\') if self.peek_at(1) == Some(b'\n') => self.pos += 2,
                _ => return,
            }
        }
    }

    /// Whether the digits at the cursor are a file descriptor number before `<` or `>`.
    fn io_number(&self) -> bool {
        let digits = self.bytes[self.pos..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        matches!(self.peek_at(digits), Some(b'<' | b'>'))
    }

    /// A redirection: an optional descriptor number, an operator and its target word. The
    /// target is never a command; its value does not matter here.
    fn redirection(&mut self) -> Result<(), Refusal> {
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.pos += 1;
        }
        let op = self.peek();
        self.pos += 1;
        match (op, self.peek()) {
            (Some(b'<'), Some(b'<')) => return refuse("a here-document (`<<`)"),
            (Some(b'<'), Some(b'(')) | (Some(b'>'), Some(b'(')) => {
                return refuse("process substitution (`<(` or `>(`)");
            }
            (Some(b'<'), Some(b'>' | b'&')) | (Some(b'>'), Some(b'>' | b'|' | b'&')) => {
                self.pos += 1;
            }
            _ => {}
        }
        self.skip_blanks();
        match self.peek() {
            Some(b) if !ends_word(b) && b != b'#' => {
                self.word()?;
                Ok(())
            }
            Some(b'(') => refuse("process substitution (`<(` or `>(`)"),
            _ => refuse("a redirection without a target"),
        }
    }

    /// Ends the current simple command.
    fn end_command(&mut self) -> Result<(), Refusal> {
        self.next = Next::Command;
        self.builtin = None;
        Ok(())
    }

    /// Files a word of the current simple command.
    fn take(&mut self, word: Word) -> Result<(), Refusal> {
        match self.next {
            Next::Command => {
                if word.assigns.is_some() {
                    return Ok(());
                }
                self.command_word(word, true)
            }
            Next::Argument => {
                // bash evaluates an array subscript given to some builtins as a variable name
                // (`printf -v 'a[$(cmd)]'`, `test -v`, `unset`), quoted or not.
                if self.builtin.is_some()
                    && word.value.contains('[')
                    && (word.value.contains("$(") || word.value.contains('`'))
                {
                    return refuse(format!(
                        "an argument of the builtin `{}` holding `$(` or a backquote",
                        self.builtin.as_deref().unwrap_or_default()
                    ));
                }
                Ok(())
            }
            Next::OptionValue(w) => {
                self.next = Next::Wrapped(w);
                Ok(())
            }
            Next::Wrapped(w) => self.wrapped(w, word),
        }
    }

    /// A word after a wrapper: one of its options, or the program it starts.
    fn wrapped(&mut self, wrapper: Wrapper, word: Word) -> Result<(), Refusal> {
        let v = word.value.as_str();
        let option = |ok: &[&str]| ok.contains(&v);
        if wrapper == Wrapper::Env && word.assigns.is_some() {
            return Ok(());
        }
        if !word.literal() {
            return refuse(format!(
                "an expansion or glob after `{}`, where a program may be named",
                wrapper.name()
            ));
        }
        if v == "--" {
            return Ok(());
        }
        match wrapper {
            Wrapper::Env => {
                if option(&["-i", "-", "--ignore-environment"])
                    || v.starts_with("--unset=")
                    || v.starts_with("-u") && v.len() > 2
                    || !v.starts_with('-') && v.contains('=')
                {
                    return Ok(());
                }
                if v == "-u" {
                    self.next = Next::OptionValue(wrapper);
                    return Ok(());
                }
            }
            Wrapper::Command => {
                if option(&["-p"]) {
                    return Ok(());
                }
                if option(&["-v", "-V"]) {
                    // Only says what a name is; starts nothing.
                    self.next = Next::Argument;
                    return Ok(());
                }
            }
            Wrapper::Nice => {
                if v.starts_with("--adjustment=")
                    || v.len() > 2 && v.starts_with("-n")
                    || v.len() > 1
                        && v.starts_with('-')
                        && v[1..].bytes().all(|b| b.is_ascii_digit())
                {
                    return Ok(());
                }
                if v == "-n" {
                    self.next = Next::OptionValue(wrapper);
                    return Ok(());
                }
            }
            Wrapper::Builtin | Wrapper::Exec | Wrapper::Nohup => {}
        }
        if v.starts_with('-') {
            return refuse(format!("option `{v}` of `{}`", wrapper.name()));
        }
        let builtin_position = matches!(wrapper, Wrapper::Command | Wrapper::Builtin);
        self.command_word(word, builtin_position)
    }

    /// A word that names a program: checked, reported, and what follows it decided.
    fn command_word(&mut self, word: Word, builtin_position: bool) -> Result<(), Refusal> {
        if !word.literal() {
            return refuse("an expansion, glob, brace or `~` in a command name (`$X`, `*`, `{`)");
        }
        let name = word.value;
        if name.is_empty() {
            return refuse("an empty command name");
        }
        if KEYWORDS.contains(&name.as_str()) {
            return refuse(format!("the shell keyword `{name}`"));
        }
        // A program given by path is the same program: `/usr/bin/env` wraps, `/usr/bin/xargs`
        // runs code kairos cannot see.
        let base = name.rsplit('/').next().unwrap_or(&name);
        if OPAQUE.contains(&base) {
            return refuse(format!("`{name}`, which runs code kairos cannot see"));
        }
        self.next = match Wrapper::of(base) {
            Some(w) => Next::Wrapped(w),
            None => Next::Argument,
        };
        self.builtin =
            (builtin_position && SUBSCRIPT_BUILTINS.contains(&name.as_str())).then(|| name.clone());
        self.programs.push(Program {
            name,
            span: word.span,
            builtin_position,
        });
        Ok(())
    }

    /// Reads one word starting at the cursor (which is not at a blank or an operator).
    fn word(&mut self) -> Result<Word, Refusal> {
        let start = self.pos;
        let mut word = Word::default();
        // Quoting or an expansion seen so far: an `=` after them does not make an assignment.
        let mut plain_so_far = true;
        while let Some(b) = self.peek() {
            if ends_word(b) {
                break;
            }
            match b {
                b'\'' => {
                    plain_so_far = false;
                    self.pos += 1;
                    let Some(len) = self.bytes[self.pos..].iter().position(|&b| b == b'\'') else {
                        return refuse("an unterminated single quote");
                    };
                    word.value.push_str(&self.text[self.pos..self.pos + len]);
                    self.pos += len + 1;
                }
                b'"' => {
                    plain_so_far = false;
                    self.pos += 1;
                    self.double_quoted(&mut word)?;
                }
                b'\\' => {
                    plain_so_far = false;
                    match self.peek_at(1) {
                        None => return refuse("a backslash at the end of the line"),
                        // The shell removes it before it reads the line, so it can join what
                        // this reading kept apart (`$\<newline>(id)` is `$(id)`).
                        Some(b'\n') => return refuse(CONTINUATION_IN_A_WORD),
                        Some(_) => {
                            self.pos += 1;
                            self.push_char(&mut word);
                        }
                    }
                }
                b'$' => {
                    plain_so_far = false;
                    self.dollar(&mut word)?;
                }
                b'`' => return refuse("command substitution (a backquote)"),
                b'=' if plain_so_far && word.assigns.is_none() => {
                    if word.value.bytes().next().is_some_and(is_name_start)
                        && word.value.bytes().all(is_name)
                    {
                        word.assigns = Some(word.value.clone());
                    }
                    plain_so_far = false;
                    word.value.push('=');
                    self.pos += 1;
                }
                _ => {
                    match b {
                        b'*' | b'?' | b'[' => word.globs = true,
                        b'{' | b'}' => word.braces = true,
                        b'~' if self.pos == start => word.tilde = true,
                        _ => {}
                    }
                    self.push_char(&mut word);
                }
            }
        }
        word.span = start..self.pos;
        Ok(word)
    }

    /// Appends the character at the cursor (which may be more than one byte) and moves on.
    fn push_char(&mut self, word: &mut Word) {
        let c = self.text[self.pos..].chars().next().unwrap_or_default();
        word.value.push(c);
        self.pos += c.len_utf8().max(1);
    }

    /// The inside of double quotes, after the opening one, through the closing one.
    fn double_quoted(&mut self, word: &mut Word) -> Result<(), Refusal> {
        loop {
            match self.peek() {
                None => return refuse("an unterminated double quote"),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(());
                }
                Some(b'\\') => match self.peek_at(1) {
                    Some(b'\n') => return refuse(CONTINUATION_IN_A_WORD),
                    Some(b'$' | b'`' | b'"' | b'\\') => {
                        self.pos += 1;
                        self.push_char(word);
                    }
                    _ => {
                        word.value.push('\\');
                        self.pos += 1;
                    }
                },
                Some(b'$') => self.dollar(word)?,
                Some(b'`') => return refuse("command substitution (a backquote)"),
                Some(_) => self.push_char(word),
            }
        }
    }

    /// An expansion at a `$`: only `$NAME`, `${NAME}` and the special parameters are read; a
    /// `$` followed by nothing that expands stays a `$`.
    fn dollar(&mut self, word: &mut Word) -> Result<(), Refusal> {
        let start = self.pos;
        self.pos += 1;
        match self.peek() {
            Some(b'(') => return refuse("command substitution or arithmetic (`$(`)"),
            Some(b'[') => return refuse("bash's arithmetic `$[`"),
            Some(b'\'' | b'"') => return refuse("bash's `$'...'` or `$\"...\"` quoting"),
            Some(b'{') => {
                self.pos += 1;
                let name = self.bytes[self.pos..]
                    .iter()
                    .take_while(|&&b| is_name(b))
                    .count();
                let special = name == 0
                    && matches!(
                        self.peek(),
                        Some(b'?' | b'#' | b'@' | b'*' | b'$' | b'!' | b'-')
                    );
                let len = if special { 1 } else { name };
                if len == 0 || self.peek_at(len) != Some(b'}') {
                    return refuse("a parameter expansion other than `${NAME}`");
                }
                self.pos += len + 1;
            }
            Some(b) if is_name_start(b) => {
                while self.peek().is_some_and(is_name) {
                    self.pos += 1;
                }
            }
            Some(b'0'..=b'9' | b'?' | b'#' | b'@' | b'*' | b'$' | b'!' | b'-') => self.pos += 1,
            _ => {
                word.value.push('$');
                return Ok(());
            }
        }
        word.expands = true;
        word.value.push_str(&self.text[start..self.pos]);
        Ok(())
    }
}

/// A line continuation between words is read as a blank; inside a word (quoted or not) the
/// shell would join the characters around it before reading them, which this reading does not.
const CONTINUATION_IN_A_WORD: &str = "a line continuation (`\\` and a newline) inside a word";

#[cfg(test)]
mod tests {
    use super::*;

    fn names(line: &str) -> Result<Vec<String>, Refusal> {
        analyse(line).map(|p| p.into_iter().map(|p| p.name).collect())
    }

    #[test]
    fn accepted_lines_report_every_command_word() {
        let table: &[(&str, &[&str])] = &[
            ("echo hi", &["echo"]),
            ("git log | wc -l", &["git", "wc"]),
            ("A=1 B='x y' make && echo ok > out", &["make", "echo"]),
            ("ls 2>&1 | wc", &["ls", "wc"]),
            ("ls >/dev/null 2>&1; echo done", &["ls", "echo"]),
            (">out echo hi", &["echo"]),
            ("2>/dev/null ls", &["ls"]),
            ("make &>/dev/null", &["make"]),
            ("cat < in >> out", &["cat"]),
            ("echo 'a | b' \"c $HOME ${USER}\" \\; x", &["echo"]),
            ("'ec'ho hi", &["echo"]),
            ("a\nb # c; d\n  c", &["a", "b", "c"]),
            ("sleep 1 & wait", &["sleep", "wait"]),
            ("X=1", &[]),
            ("", &[]),
            ("env LC_ALL=C -u HOME sort -r", &["env", "sort"]),
            ("nice -n 5 nohup make", &["nice", "nohup", "make"]),
            ("command -v git", &["command"]),
            ("command git status", &["command", "git"]),
            ("exec make", &["exec", "make"]),
            ("echo it\\'s '$(not run)' a=b", &["echo"]),
            ("echo \\\n  continued", &["echo"]),
            ("./run.sh --x=1", &["./run.sh"]),
            ("echo $ $1 $? {a,b} *.rs ~", &["echo"]),
        ];
        for (line, expected) in table {
            let expected: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
            assert_eq!(names(line), Ok(expected), "{line:?}");
        }
    }

    #[test]
    fn spans_cover_the_command_word_as_written() {
        let line = "A=1 'ec'ho hi; >x  wc";
        let programs = analyse(line).unwrap();
        assert_eq!(&line[programs[0].span.clone()], "'ec'ho");
        assert_eq!(&line[programs[1].span.clone()], "wc");
    }

    #[test]
    fn continuations_between_operators_do_not_hide_a_command() {
        // `sh` joins `|\<newline>|` into `||`; read as two pipes or refused, the commands
        // named are the ones `sh` runs.
        for (line, named) in [
            ("echo x |\\\n| touch X", &["echo", "touch"][..]),
            ("echo x &\\\n& touch X", &["echo", "touch"]),
            ("echo x >\\\n&2 touch X", &["echo"]),
        ] {
            if let Ok(found) = names(line) {
                assert_eq!(found, named, "{line:?}");
            }
        }
    }

    #[test]
    fn everything_outside_the_subset_is_refused() {
        for line in [
            "echo hi; ( touch X )",
            "echo hi; { touch X; }",
            "echo() { touch X; }; echo",
            "echo; (( touch X ))",
            "echo $(touch X)",
            "echo \"$(touch X)\"",
            "echo `touch X`",
            "echo \"`touch X`\"",
            "echo $((1+2))",
            "cat <(touch X)",
            "echo > >(touch X)",
            "cat <<EOF\nx\nEOF",
            "cat <<<x",
            "$X hi",
            "${X} hi",
            "\"$X\" hi",
            "ec${X}ho",
            "echo ${X:-$(touch Y)}",
            "echo ${X:=y}",
            "* hi",
            "ech? hi",
            "[a] hi",
            "{touch,X}",
            "~/bin/x",
            "if true; then touch X; fi",
            "for f in a; do touch $f; done",
            "while touch X; do :; done",
            "case x in x) touch X;; esac",
            "function f { touch X; }",
            "! touch X",
            "[[ -e x ]]",
            "time touch X",
            "eval touch X",
            ". ./script",
            "source ./script",
            "sh -c 'touch X'",
            "bash script",
            "xargs touch",
            "sudo touch X",
            "env -S 'touch X'",
            "env $X",
            "env \"$X\" y",
            "exec -a x touch",
            "echo $'a'",
            "echo 'open",
            "echo \"open",
            "echo \\",
            "echo >",
            "echo |& cat",
            "printf -v 'a[$(touch X)]' x",
            "echo $[1+2]",
            "''",
            // A continuation inside a word joins what is around it before the shell reads it.
            "$\\n$\\\n$",
            // dash runs `10` here, bash `echo`.
            "10>/dev/null echo hi",
            "echo hi 123>/dev/null",
            "echo $\\\n(touch X)",
            "echo \"$\\\n(touch X)\"",
            "ec\\\nho $\\\n{X:-y}",
        ] {
            assert!(analyse(line).is_err(), "{line:?} was accepted");
        }
    }
}
