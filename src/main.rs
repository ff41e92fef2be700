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

/// jemalloc, not glibc's malloc: a rebuild of a region's ledger folds and frees millions of
/// small strings and vectors on four threads, and glibc spent a third of that time in its own
/// bookkeeping (`malloc_consolidate`, `unlink_chunk`); with jemalloc the 10M-event rebuild took
/// 54-57 s instead of 76-94 s, while appends, plan reads and memory measured the same
/// (docs/performance.md, "The rebuild at 10M events, again").
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    cli::main()
}
