//! The `careledger` binary: the command-line tool of `careledger-api` (see `careledger --help`).

fn main() -> std::process::ExitCode {
    careledger_api::cli::main()
}
