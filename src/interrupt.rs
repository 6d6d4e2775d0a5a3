//! Ctrl-C and SIGTERM: a thread turns each signal into [`Cancel::interrupt`] on the value it
//! was given. The first stops starting nodes and lets running ones finish; the second kills the
//! running commands' process groups at once.

use crate::cancel::Cancel;

/// Installs the handler: a thread that counts SIGINT and SIGTERM on `cancel`.
pub fn install(cancel: Cancel) {
    let Ok(mut signals) = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
    ]) else {
        return;
    };
    let _ = std::thread::Builder::new().name("kairos-signals".into()).spawn(move || {
        for _ in signals.forever() {
            if cancel.interrupt() == 1 {
                eprintln!("interrupted: no new nodes start; running ones finish (interrupt again to kill them)");
            } else {
                eprintln!("interrupted again: killing running commands");
            }
        }
    });
}
