//! Outputs that read the model: a text table and JSON for `snapshot`.
//! (Prometheus, the JSON API and the TUI join here.)

pub mod alloc_report;
pub mod cgroup_table;
pub mod columns;
pub mod events;
pub mod json;
pub mod openmetrics;
pub mod probes_report;
pub mod prometheus;
pub mod system_table;
pub mod table;
pub mod top;
