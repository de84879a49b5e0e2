//! `memmon config`: print the default configuration file, or check one.

use crate::{
    cli::ConfigArgs,
    config::{self, Overrides},
    error::Fatal,
};

/// Runs the command.
pub fn run(args: &ConfigArgs) -> Result<(), Fatal> {
    if args.print_default {
        print!("{}", config::default_toml());
        return Ok(());
    }
    if let Some(path) = &args.check {
        let c = config::load(Some(path), &Overrides::default())
            .map_err(|e| Fatal::Usage(e.to_string()))?;
        println!("{}: ok\n{c:#?}", path.display());
        return Ok(());
    }
    Err(Fatal::Usage(
        "give --print-default or --check PATH (see memmon config --help)".into(),
    ))
}
