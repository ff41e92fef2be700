//! The command line's standard output. A reader that stops reading early (`careledger audit |
//! head`) closes the pipe: the command then ends quietly with success, as `head` asked, instead
//! of panicking as `println!` does.

use std::io::Write as _;

/// Writes one line to standard output; ends the process quietly when the reader has gone.
pub fn line(args: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args).and_then(|()| out.write_all(b"\n")) {
        gone_or_fail(&e);
    }
}

fn gone_or_fail(e: &std::io::Error) {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        // Nothing more can be said to anyone: whatever the command read stays as it was, and
        // whatever it wrote is durable already.
        std::process::exit(0);
    }
    eprintln!("error: writing to standard output: {e}");
    std::process::exit(1);
}

/// `println!` for the command line's output: see [`line`].
macro_rules! say {
    () => {
        $crate::output::line(format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::output::line(format_args!($($arg)*))
    };
}
