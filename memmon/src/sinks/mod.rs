//! Outputs that read the model: a text table and JSON for `snapshot`.
//! (Prometheus, the JSON API and the TUI join here.)

pub mod alloc_report;
pub mod cgroup_table;
pub mod columns;
pub mod events;
pub mod explain;
pub mod flamegraph;
pub mod incident;
pub mod json;
pub mod kill_log;
pub mod openmetrics;
pub mod pprof;
pub mod probes_report;
pub mod profile;
pub mod prometheus;
pub mod system_table;
pub mod table;
pub mod top;
