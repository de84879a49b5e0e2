//! One file per subcommand: each validates its flags, wires probes →
//! collector → model → sink, and returns a [`crate::error::Fatal`] on failure.

pub mod config;
pub mod daemon_client;
pub mod docs;
pub mod dump;
pub mod events;
pub mod explain;
pub mod incidents;
pub mod leaks;
pub mod leaks_exact;
pub mod profile;
pub mod record;
pub mod replay;
pub mod snapshot;
pub mod stop_signal;
pub mod top;
pub mod top_profile;
