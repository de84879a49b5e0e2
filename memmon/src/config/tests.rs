//! The configuration's tests: the file, flags, variables and default file
//! all follow the key table.

use std::path::Path;

use super::*;

fn load_text(text: &str) -> Result<Config, ConfigError> {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("memmon.toml");
    std::fs::write(&path, text).expect("write");
    load(Some(&path), &Overrides::default())
}

#[test]
fn default_file_parses_to_defaults() {
    assert_eq!(
        load_text(&default_toml()).expect("default parses"),
        Config::default()
    );
}

#[test]
fn wrong_type_names_line_and_key() {
    let err = load_text("listen = \"127.0.0.1:1\"\ntop_k = \"many\"\n").expect_err("must fail");
    assert!(
        err.to_string().contains("memmon.toml:2: key `top_k`"),
        "{err}"
    );
}

#[test]
fn unknown_key_names_line() {
    let err = load_text("\n\nlisten_port = 3\n").expect_err("must fail");
    assert!(err.to_string().contains(":3:"), "{err}");
    assert!(err.to_string().contains("listen_port"), "{err}");
}

#[test]
fn bad_value_names_key() {
    let err = load_text("top_by = \"color\"\n").expect_err("must fail");
    assert!(err.to_string().contains("key `top_by`"), "{err}");
    let err = load_text("listen = \"nowhere\"\n").expect_err("must fail");
    assert!(err.to_string().contains("key `listen`"), "{err}");
}

#[test]
fn flags_override_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("m.toml");
    std::fs::write(&path, "top_k = 7\ninterval_seconds = 2.0\n").expect("write");
    let mut o = Overrides::new(true);
    o.set(key::top_k, vec!["9".into()]);
    let c = load(Some(&path), &o).expect("loads");
    assert_eq!((c.top_k, c.interval_seconds), (9, 2.0));
    o.set(key::top_k, vec!["0".into()]);
    let err = load(Some(&path), &o).expect_err("0 rejected");
    assert!(
        err.to_string().contains("--top-k (or MEMMON_TOP_K)"),
        "{err}"
    );
}

#[test]
fn every_key_is_a_flag_an_env_var_and_a_file_key() {
    use clap::CommandFactory as _;
    let cli = crate::cli::Cli::command();
    let daemon = cli
        .get_subcommands()
        .find(|c| c.get_name() == "daemon")
        .expect("daemon subcommand");
    for k in KEYS {
        let arg = daemon
            .get_arguments()
            .find(|a| a.get_long().map(|l| format!("--{l}")) == Some(k.flag()))
            .unwrap_or_else(|| panic!("{}: no flag {}", k.name, k.flag()));
        assert_eq!(
            arg.get_env().and_then(|e| e.to_str()),
            Some(k.env().as_str()),
            "{}: env",
            k.name
        );
        assert!(Config::default().value_of(k.name).is_some(), "{}", k.name);
        assert!(
            default_toml().contains(k.name),
            "{} not in the default file",
            k.name
        );
    }
    // The file accepts exactly these keys: serde names them all when
    // one is unknown.
    let err = load_text("no_such_key = 1\n").expect_err("unknown key");
    for k in KEYS {
        assert!(
            err.to_string().contains(&format!("`{}`", k.name)),
            "{}: {err}",
            k.name
        );
    }
}

#[test]
fn errors_name_the_real_flag() {
    let mut o = Overrides::new(true);
    o.set(key::interval_seconds, vec!["0".into()]);
    let err = load(None, &o).expect_err("0 rejected");
    assert!(
        err.to_string()
            .starts_with("--interval (or MEMMON_INTERVAL_SECONDS)"),
        "{err}"
    );
}

#[test]
fn restart_keys_are_named() {
    let a = Config::default();
    let b = Config {
        top_k: 3,
        history_seconds: 10,
        listen: "127.0.0.1:1".parse().expect("addr"),
        ..Config::default()
    };
    let names: Vec<&str> = a.needs_restart(&b).iter().map(|k| k.name).collect();
    assert_eq!(names, vec!["listen", "history_seconds"]);
}

#[test]
fn missing_explicit_file_is_an_error() {
    let err = load(
        Some(Path::new("/nonexistent/memmon.toml")),
        &Overrides::default(),
    )
    .expect_err("must fail");
    assert!(
        err.to_string().contains("/nonexistent/memmon.toml"),
        "{err}"
    );
}

/// A key declared in a scratch table: the one entry makes the field, its
/// default, the key (flag and variable derived from the name), the typed
/// setter for flags and the file, the check, and the default file's value.
mod scratch {
    use super::super::decl::*;

    keys! {
        /// A setting only this test declares.
        scratch_limit: u64 = 7; Whole where (|v: &u64| {
            if *v > 0 { Ok(()) } else { Err(ValueError::OutOfRange("give 1 or more".into())) }
        }) {
            help: "A scratch limit",
            value_name: "N",
            reload: true,
        }
    }

    #[test]
    fn one_declaration_makes_every_form_of_a_key() {
        let mut c = Config::default();
        assert_eq!(c.scratch_limit, 7);
        assert_eq!(KEYS, &[key::scratch_limit]);
        let k = key::scratch_limit;
        assert_eq!(
            (k.name, k.flag(), k.env(), k.reload),
            (
                "scratch_limit",
                "--scratch-limit".to_string(),
                "MEMMON_SCRATCH_LIMIT".to_string(),
                true
            )
        );
        assert_eq!(k.doc, &[" A setting only this test declares."]);
        c.set(k, Given::Text(&["9".to_string()]))
            .expect("flag value");
        assert_eq!(c.value_of("scratch_limit").as_deref(), Some("9"));
        c.set(k, Given::Toml(&toml::Value::Integer(0)))
            .expect("file value");
        let (bad, why) = c.check().expect_err("0 is refused");
        assert_eq!(
            (bad.name, why),
            (
                "scratch_limit",
                ValueError::OutOfRange("give 1 or more".into())
            )
        );
        let e = c
            .set(k, Given::Toml(&toml::Value::String("x".into())))
            .expect_err("a string is refused");
        assert!(e.to_string().contains("expected a whole number"), "{e}");
        assert_eq!(
            Config::default().toml_of("scratch_limit").as_deref(),
            Some("7")
        );
    }
}

#[test]
fn switches_and_lists_take_their_flag_shapes() {
    use clap::Parser as _;
    let cli = crate::cli::Cli::try_parse_from([
        "memmon",
        "daemon",
        "--no-pin",
        "--fault-detail",
        "--disable-probe",
        "rss_stat,kmalloc",
        "--disable-probe",
        "slab_alloc",
        "--profile=false",
        "--top-k",
        "7",
        "--interval",
        "0.25",
    ])
    .expect("parses");
    let crate::cli::Command::Daemon(args) = cli.command else {
        panic!("not the daemon");
    };
    let mut c = Config::default();
    args.overrides().apply(&mut c).expect("valid");
    assert!(!c.pin && c.fault_detail && !c.profile);
    assert_eq!(c.disabled_probes, ["rss_stat", "kmalloc", "slab_alloc"]);
    assert_eq!((c.top_k, c.interval_seconds), (7, 0.25));
    let cli = crate::cli::Cli::try_parse_from(["memmon", "snapshot", "--disable-probe", "nope"])
        .expect("parses");
    let crate::cli::Command::Snapshot(args) = cli.command else {
        panic!("not snapshot");
    };
    let err = crate::commands::snapshot::load_options(&args.probe_args).expect_err("no probe");
    assert!(
        err.to_string()
            .starts_with("--disable-probe: no probe named `nope`"),
        "{err}"
    );
}
