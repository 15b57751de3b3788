//! Prints the first outputs of the SplitMix64 generator started at a state, to compare with
//! another implementation (e.g. Vigna's `splitmix64.c` or Java's `SplittableRandom`):
//!
//! ```sh
//! cargo run -p allconv-splitmix --example outputs -- [STATE] [COUNT]
//! ```
//!
//! Defaults: state 0, 4 outputs. STATE is decimal or `0x` hexadecimal.

use std::io::Write;
use std::process::ExitCode;

fn parse(text: &str) -> Option<u64> {
    match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(&hex.replace('_', ""), 16).ok(),
        None => text.replace('_', "").parse().ok(),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let state = args.first().map_or(Some(0), |a| parse(a));
    let count = args.get(1).map_or(Some(4), |a| parse(a));
    let (Some(state), Some(count)) = (state, count) else {
        let _ = writeln!(
            std::io::stderr(),
            "usage: outputs [STATE] [COUNT] (decimal or 0x hexadecimal); got {args:?}"
        );
        return ExitCode::from(2);
    };
    // Written, not `println!`: a closed stdout (`| head`) ends the listing instead of a panic.
    let mut out = std::io::stdout().lock();
    for i in 0..count {
        if writeln!(out, "{:#018x}", allconv_splitmix::output(state, i)).is_err() {
            break;
        }
    }
    ExitCode::SUCCESS
}
