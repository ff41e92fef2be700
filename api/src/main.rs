//! The `careledger` binary: see `careledger --help`.

fn main() -> std::process::ExitCode {
    careledger_api::cli::main()
}
