//! `edgefleet`: the command-line client (see docs/cli.md).

use std::process::ExitCode;

use clap::Parser;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = edgefleet_cli::Cli::parse();
    match edgefleet_cli::run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("edgefleet: {error}");
            ExitCode::from(error.exit_code())
        }
    }
}
