//! The shell-line analysis behind the `commands` policy: `kairos::sh::programs`, which names
//! the programs a `run:` line (or an `args:` list) would start, or refuses the line. Also the
//! quoting every `{{ }}` in a `run:` line goes through: a quoted value must read back as the
//! one word it was. Errors (`None`) are fine; a panic is not.
#![no_main]

use kairos::sh;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(line) = std::str::from_utf8(data) else {
        return;
    };
    let _ = sh::programs(Some(line), None);
    let args: Vec<String> = line.split('\0').map(str::to_string).collect();
    let _ = sh::programs(None, Some(&args));

    // `quote` then `direct_argv` gives the value back as one word, or leaves the line to
    // the shell (`None`): never a different word, never several.
    let quoted = sh::quote(line);
    if let Some(words) = sh::direct_argv(&quoted) {
        assert_eq!(
            words,
            [line],
            "quote({line:?}) = {quoted:?} reads back differently"
        );
    }
});
