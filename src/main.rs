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
        Command::Run(a) => return commands::run(&a),
        Command::Status(a) => seedpart::status::status(&a),
        Command::UserData(a) => commands::user_data(&a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{}", commands::one_line(&e));
            ExitCode::from(commands::exit_code(&e))
        }
    }
}
