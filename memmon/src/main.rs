//! The `memmon` binary: parse flags, set up logging, run the command, map
//! errors to exit codes (1 runtime / privileges, 2 bad input; `explain`
//! adds 3 and 4 for what it found).

use std::process::ExitCode;

use clap::Parser as _;
use memmon::{
    cli::{Cli, Command},
    commands,
    error::Fatal,
};

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli.log);
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("memmon: {e:#}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// Runs the command; its exit status (0 but for `explain`'s verdicts).
fn run(cli: Cli) -> Result<u8, Fatal> {
    let done = match cli.command {
        Command::Snapshot(args) => commands::snapshot::run(&args),
        Command::Events(args) => commands::events::run(&args),
        Command::Daemon(args) => memmon::daemon::run(&args),
        Command::Profile(args) => commands::profile::run(&args),
        Command::Leaks(args) => commands::leaks::run(&args),
        Command::Config(args) => commands::config::run(&args),
        Command::Top(args) => commands::top::run(&args),
        Command::Completions(args) => commands::docs::completions(&args),
        Command::Man(args) => commands::docs::man(&args),
        Command::Record(args) => commands::record::run(&args),
        Command::Replay(args) => commands::replay::run(&args),
        Command::Dump(args) => commands::dump::run(&args),
        Command::Incidents(args) => commands::incidents::run(&args),
        Command::Explain(args) => return commands::explain::run(&args),
    };
    done.map(|()| 0)
}

fn init_logging(filter: &str) {
    memmon::logging::init(filter);
}
