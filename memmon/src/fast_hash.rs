//! Hash maps for the tables touched once per process per pass (the model's
//! processes, the scans' last readings, the cost guard): foldhash instead
//! of std's SipHash, which was a tenth of a pass at 10,000 processes.

/// A `HashMap` with foldhash's fast, randomly seeded hasher.
pub type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
/// A `HashSet` with the same hasher.
pub type FastSet<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;
