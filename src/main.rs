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
            log::error!("{}", one_line(&e));
            ExitCode::from(commands::exit_code(&e))
        }
    }
}

/// The error and its causes on one line. A cause whose text its wrapper already quotes (an
/// error type that prints `{source}` and also returns it as its source) is not repeated.
fn one_line(e: &anyhow::Error) -> String {
    let mut msg = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if text.is_empty() || msg.contains(&text) {
            continue;
        }
        if !msg.is_empty() {
            msg.push_str(": ");
        }
        msg.push_str(&text);
    }
    msg.replace('\n', "; ")
}
