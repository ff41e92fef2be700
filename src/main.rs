//! The `careledger` binary: the command-line tool (see `careledger --help`): the server, the
//! demo, verification, proofs, the read models on the command line, actors.

mod cli;
mod demo;
mod witness;

fn main() -> std::process::ExitCode {
    cli::main()
}
