//! The settings as command-line flags: a `clap::Args` made from the key
//! table, so a key's flag, `--no-` switch, environment variable, value
//! name and help come from its one declaration. The daemon flattens the
//! probe-selection flags (with their variables) and the other settings;
//! `snapshot`, `top`, `record` and `events` flatten the probe-selection
//! flags alone ([`ProbeArgs`], no variables: the environment configures
//! the daemon).

use clap::{Arg, ArgAction, ArgMatches, Args, Command, FromArgMatches};

use super::{Config, KEYS, Key, Overrides, Shape};

/// The flags of the keys whose `probe` attribute is `PROBES`, with their
/// environment variables when `ENV`.
#[derive(Clone, Debug, Default)]
pub struct KeyFlags<const PROBES: bool, const ENV: bool> {
    given: Vec<(&'static Key, Vec<String>)>,
}

/// Probe selection of the one-shot commands (`--fault-detail`,
/// `--alloc-detail`, `--disable-probe`).
pub type ProbeArgs = KeyFlags<true, false>;
/// The daemon's probe selection: the same flags, with their variables.
pub type DaemonProbeArgs = KeyFlags<true, true>;
/// The daemon's other settings.
pub type DaemonSettings = KeyFlags<false, true>;

impl<const PROBES: bool, const ENV: bool> KeyFlags<PROBES, ENV> {
    fn keys() -> impl Iterator<Item = &'static Key> {
        KEYS.iter().copied().filter(|k| k.probe == PROBES)
    }

    /// What was given, as config overrides.
    pub fn overrides(&self) -> Overrides {
        let mut o = Overrides::new(ENV);
        for (k, v) in &self.given {
            o.set(k, v.clone());
        }
        o
    }
}

/// The id of a switch's `--no-` flag.
fn negation(k: &Key) -> String {
    format!("no_{}", k.name)
}

fn arg(k: &'static Key, env: bool) -> Vec<Arg> {
    let flag = k.flag();
    let long = flag.trim_start_matches('-').to_string();
    let default = Config::default().value_of(k.name).unwrap_or_default();
    let shown = match (env, k.shape) {
        // The one-shot commands attach every probe unless told otherwise.
        (false, Shape::Switch) => format!(" [default: true here, {default} for the daemon]"),
        (false, _) => String::new(),
        (true, _) if default.is_empty() => String::new(),
        (true, _) => format!(" [default: {default}]"),
    };
    let mut a = Arg::new(k.name)
        .long(long.clone())
        .value_name(k.value_name)
        .help(format!("{}{shown}", k.help));
    if env {
        a = a.env(k.env());
    }
    a = match k.shape {
        Shape::Value => a.action(ArgAction::Set),
        Shape::Switch => a
            .action(ArgAction::Set)
            .num_args(0..=1)
            .default_missing_value("true"),
        Shape::List => a.action(ArgAction::Append).value_delimiter(','),
    };
    let mut args = vec![a];
    if k.shape == Shape::Switch {
        args.push(
            Arg::new(negation(k))
                .long(format!("no-{long}"))
                .action(ArgAction::SetTrue)
                .conflicts_with(k.name)
                .help(format!("Same as {flag}=false")),
        );
    }
    args
}

impl<const PROBES: bool, const ENV: bool> Args for KeyFlags<PROBES, ENV> {
    fn augment_args(cmd: Command) -> Command {
        Self::keys().fold(cmd, |cmd, k| cmd.args(arg(k, ENV)))
    }

    fn augment_args_for_update(cmd: Command) -> Command {
        Self::augment_args(cmd)
    }
}

impl<const PROBES: bool, const ENV: bool> FromArgMatches for KeyFlags<PROBES, ENV> {
    fn from_arg_matches(m: &ArgMatches) -> Result<Self, clap::Error> {
        let mut given = Vec::new();
        for k in Self::keys() {
            if k.shape == Shape::Switch && m.get_flag(&negation(k)) {
                given.push((k, vec!["false".to_string()]));
            } else if let Some(values) = m.get_many::<String>(k.name) {
                given.push((k, values.cloned().collect()));
            }
        }
        Ok(KeyFlags { given })
    }

    fn update_from_arg_matches(&mut self, m: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(m)?;
        Ok(())
    }
}
