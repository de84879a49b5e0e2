//! The `memmon` binary: parse flags, set up logging, run the command, map
//! errors to exit codes (1 runtime / privileges, 2 bad input).

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
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("memmon: {e:#}");
            ExitCode::from(e.exit_code())
        }
    }
}

fn run(cli: Cli) -> Result<(), Fatal> {
    match cli.command {
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
        Command::Explain(args) => {
            commands::incidents::Source::resolve(args.connect.as_deref(), args.store.as_deref())
                .and_then(|source| {
                    commands::incidents::explain_oom(
                        &source,
                        args.oom.as_deref().unwrap_or("latest"),
                        args.json,
                    )
                })
        }
    }
}

fn init_logging(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}
