//! The `careledger` binary: the command-line tool (see `careledger --help`): the server, the
//! demo, verification, proofs, exports of one patient's history and their offline check, the
//! read models on the command line, actors.

// First: its `say!` macro is used by the modules after it.
#[macro_use]
mod output;

mod access_log;
mod actors;
mod backup;
mod cli;
mod demo;
mod export;
mod keys;
mod remote;
mod render;
mod transport;
mod witness;

fn main() -> std::process::ExitCode {
    cli::main()
}
