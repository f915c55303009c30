//! The `webnet` command: parse the command line and hand off to the library (`cli::run`),
//! or to the benchmark, which lives in this binary rather than in the library.

mod bench;

use std::process::ExitCode;

use clap::Parser;
use webnet::config::{Cli, Command};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    webnet::telemetry::init(cli.log_format);
    let result = match cli.command {
        Command::Bench(args) => bench::run(&cli.database_url, args).await,
        _ => webnet::cli::run(cli).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // One line the operator can act on, not a backtrace.
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
