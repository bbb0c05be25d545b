//! `loadtest`: see `loadtest --help`.

use clap::Parser;
use loadtest::cli::{Cli, Internal};

/// mimalloc rather than the system allocator: under load glibc's malloc kept
/// about ten times the live heap resident (measured: 82 MiB live, 800 MiB RSS
/// after 12 s at 150 tickets/s), and memory per console is a figure we hold.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match cli.command {
        Some(Internal::Node(node)) => match runtime.block_on(loadtest::nodes::serve(node)) {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("node failed: {e:#}");
                std::process::ExitCode::FAILURE
            }
        },
        None => match runtime.block_on(loadtest::main_run(&cli.load)) {
            Ok(summary) => {
                println!("{}", summary.human());
                if summary.passed {
                    std::process::ExitCode::SUCCESS
                } else {
                    std::process::ExitCode::from(1)
                }
            }
            Err(e) => {
                eprintln!("loadtest failed: {e:#}");
                std::process::ExitCode::from(2)
            }
        },
    }
}
