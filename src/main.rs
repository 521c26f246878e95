//! The `seedpart` binary: parses the command line and dispatches.

use clap::Parser;
use seedpart::cli::{Cli, Command};
use seedpart::commands;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    seedpart::logger::init(cli.verbose);
    let result = match cli.command {
        Command::Inspect(a) => commands::inspect(&a),
        Command::Build(a) => commands::build(&a),
        Command::Run(_) | Command::Status(_) => Err(anyhow::anyhow!("`run` and `status` are being built (issue 3)")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{}", commands::one_line(&e));
            ExitCode::from(commands::exit_code(&e))
        }
    }
}
