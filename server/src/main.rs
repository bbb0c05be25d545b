use clap::Parser;

fn main() -> anyhow::Result<()> {
    let cli = callcenter::config::Cli::parse();
    callcenter::telemetry::init(cli.common.log_format);
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(callcenter::cli::main(cli))
}
