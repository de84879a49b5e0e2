//! One kernel program (or a tight family) per file.

mod exit;
mod fault_latency;
mod faults;
mod major_faults;
mod numa;
mod oom;
mod reclaim;
pub mod rss_stat;
