fn main() {
    std::panic::set_hook(Box::new(last_resort));
    // Debug builds (the tests') can be made to panic, so that the hook itself is tested; no
    // release build has this.
    #[cfg(debug_assertions)]
    if let Some(message) = std::env::var_os("KAIROS_DEBUG_PANIC") {
        panic!("{}", message.to_string_lossy());
    }
    std::process::exit(kairos::main());
}

/// The last resort when kairos itself is wrong: one line that asks for a bug report, never a
/// backtrace (nor the panic's message, which may quote input such as a secret), and the
/// bad-input exit code, the one `docs/exit-codes.md` gives to anything that is not a result.
/// Every known cause of a panic is checked and reported as a diagnostic before it can happen;
/// this hook only keeps an unknown one from dumping Rust internals on a user.
fn last_resort(info: &std::panic::PanicHookInfo<'_>) {
    use std::io::Write as _;
    // A dependency's file is named from its crate on (`miette-7.6.0/src/...`), not from
    // wherever the build machine kept it.
    let place = info
        .location()
        .map(|l| {
            let file = l.file();
            let file = file
                .rsplit_once("/registry/src/")
                .and_then(|(_, rest)| rest.split_once('/'))
                .map_or(file, |(_, path)| path);
            format!(" at {file}:{}", l.line())
        })
        .unwrap_or_default();
    // A failed write cannot be reported anywhere; ignoring it keeps the hook from panicking.
    let _ = writeln!(
        std::io::stderr(),
        "kairos: internal error{place}; this is a bug in kairos {}, please report it with the command and the files that caused it",
        env!("CARGO_PKG_VERSION")
    );
    std::process::exit(kairos::exit::BAD_INPUT);
}
