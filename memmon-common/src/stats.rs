//! Slots of the per-CPU `STATS` array: what each probe saw and what it could
//! not record. Userspace sums the slots over CPUs.

/// Index into the `STATS` per-CPU array.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stat {
    /// Page-fault tracepoint hits (user and kernel mode).
    FaultEvents = 0,
    /// Major-fault perf events.
    MajorFaultEvents = 1,
    /// Process exits seen (group_dead).
    ExitEvents = 2,
    /// A per-process counter update found `PROC_COUNTERS` full.
    ProcMapFull = 3,
    /// An exit event could not be reserved in the ring buffer.
    EventsLost = 4,
}

/// Number of slots in `STATS` (room for later probes).
pub const STATS_LEN: u32 = 64;

impl Stat {
    /// Every slot, in index order.
    pub const ALL: [Stat; 5] = [
        Stat::FaultEvents,
        Stat::MajorFaultEvents,
        Stat::ExitEvents,
        Stat::ProcMapFull,
        Stat::EventsLost,
    ];

    /// Stable snake_case name used in reports and metrics.
    pub const fn name(self) -> &'static str {
        match self {
            Stat::FaultEvents => "fault_events",
            Stat::MajorFaultEvents => "major_fault_events",
            Stat::ExitEvents => "exit_events",
            Stat::ProcMapFull => "proc_map_full",
            Stat::EventsLost => "events_lost",
        }
    }
}
