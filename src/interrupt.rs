//! Ctrl-C and SIGTERM (SPEC 7): the first stops starting nodes and lets running ones finish;
//! the second kills the running commands' process groups at once.

use std::sync::atomic::{AtomicU8, Ordering};

static SIGNALS: AtomicU8 = AtomicU8::new(0);

/// How many interrupts have arrived (0, 1, 2 or more).
pub fn count() -> u8 {
    SIGNALS.load(Ordering::SeqCst)
}

/// Whether the run should stop starting nodes.
pub fn requested() -> bool {
    count() > 0
}

/// Installs the handler: a thread that counts SIGINT and SIGTERM.
pub fn install() {
    let Ok(mut signals) = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
    ]) else {
        return;
    };
    let _ = std::thread::Builder::new().name("kairos-signals".into()).spawn(move || {
        for _ in signals.forever() {
            let n = SIGNALS.fetch_add(1, Ordering::SeqCst).saturating_add(1);
            if n == 1 {
                eprintln!("interrupted: no new nodes start; running ones finish (interrupt again to kill them)");
            } else {
                eprintln!("interrupted again: killing running commands");
                crate::tools::shell::kill_all();
            }
        }
    });
}
