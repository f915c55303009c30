use std::process::ExitCode;

use clap::Parser;
use webnet::config::Cli;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    webnet::telemetry::init(cli.log_format);
    match webnet::cli::run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // One line the operator can act on, not a backtrace.
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
