//! `careledger-load`: drives a bounded load against a careledger server on loopback (see
//! `careledger-load --help`) and exits non-zero when a request failed or a subscriber missed
//! an event.

use clap::Parser;

/// The `careledger` binary's allocator: `measure` verifies and rebuilds in this process, as the
/// server would, so it allocates as the server does.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// The load (no subcommand), or one of the tools for a region's ledger.
#[derive(clap::Parser)]
#[command(
    name = "careledger-load",
    version,
    about = "A bounded loopback load on a careledger server; `bulk` writes a region's ledger, \
             `measure` takes a server's figures over it",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    tool: Option<Tool>,
    #[command(flatten)]
    load: careledger_load::LoadArgs,
}

#[derive(clap::Subcommand)]
enum Tool {
    /// Write a realistic ledger into a new data directory through the ledger's own append path
    /// (many commands per request, many patients per group commit).
    Bulk(careledger_load::bulk::BulkArgs),
    /// Measure a server over a data directory `bulk` wrote: resident memory, plan reads of
    /// cached and uncached patients, restart to serving, rebuild, verification with a cold
    /// page cache (dropping it needs root).
    Measure(careledger_load::bulk::MeasureArgs),
}

fn main() -> std::process::ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
    let cli = Cli::parse();
    let result = match cli.tool {
        Some(Tool::Bulk(args)) => careledger_load::bulk::bulk(&args),
        Some(Tool::Measure(args)) => careledger_load::bulk::measure(&args),
        None => careledger_load::run(cli.load),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
