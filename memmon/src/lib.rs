//! memmon: a live memory monitor for Linux.
//!
//! The data path, one module per stage:
//! kernel probes (`memmon-ebpf`, types in `memmon-common`) → [`probes`]
//! (load, attach, read maps) → [`collector`] (a [`collector::Sample`] per
//! pass) → [`model`] (processes keyed by pid + start time) → [`sinks`]
//! (table, JSON, ...). [`procfs`] reads /proc and [`cgroupfs`] the memory
//! cgroups for the model; [`commands`]
//! wires the stages for each subcommand.

pub mod cgroupfs;
pub mod cli;
pub mod clock;
pub mod collector;
pub mod commands;
pub mod config;
pub mod daemon;
pub mod error;
pub mod fast_hash;
pub mod fd_budget;
pub mod log_limit;
pub mod logging;
pub mod model;
pub mod pipeline;
pub mod privileges;
pub mod probes;
pub mod procfs;
pub mod sample;
pub mod sinks;
pub mod sources;
pub mod store;
pub mod symbols;
