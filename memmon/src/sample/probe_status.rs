//! The state of each probe after loading: attached, unavailable (with the
//! kernel's reason) or disabled by configuration.

use serde::Serialize;

/// What happened when memmon tried to attach a probe.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ProbeState {
    /// Attached and counting.
    Attached,
    /// Could not attach on this kernel; the rest run.
    Unavailable {
        /// Why, in words that name the fix where there is one.
        reason: String,
    },
    /// Not attached on purpose (flag or configuration).
    Disabled {
        /// Which setting turned it off.
        reason: String,
    },
}

/// One probe's name, attach point and state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ProbeStatus {
    /// Probe name from the catalog.
    pub name: String,
    /// Human-readable attach point, e.g. `tracepoint:exceptions:page_fault_user`.
    pub attach_point: String,
    /// Attached / unavailable / disabled.
    #[serde(flatten)]
    pub state: ProbeState,
}

impl ProbeStatus {
    /// True when the probe is counting.
    pub fn is_attached(&self) -> bool {
        self.state == ProbeState::Attached
    }
}
