//! `loadtest`: see `loadtest --help`.

use clap::Parser;
use loadtest::cli::{Cli, Internal};

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
