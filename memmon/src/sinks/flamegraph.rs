//! An SVG flame graph of a profile (inferno, from the folded stacks).

use crate::{model::profile::Profile, sinks::profile::folded_lines};

/// Writes the SVG; an empty profile gets inferno's "no stack counts" error.
pub fn svg(profile: &Profile, title: &str, out: &mut dyn std::io::Write) -> std::io::Result<()> {
    let lines = folded_lines(profile);
    let mut opts = inferno::flamegraph::Options::default();
    opts.title = title.to_string();
    // The source, the period and what the widths mean, under the title.
    let (source, meaning) = crate::sinks::profile::describe(profile);
    opts.subtitle = Some(format!(
        "period {}; {source}; {meaning}",
        crate::sinks::profile::period_text(profile)
    ));
    opts.count_name = match profile.event.unit() {
        "bytes" => "bytes".into(),
        _ => profile.event.name().into(),
    };
    inferno::flamegraph::from_lines(&mut opts, lines.iter().map(String::as_str), out)
}
