//! The embedded eBPF object, and the copy of it a kernel older than 6.1
//! needs (the counters map declared preallocated for the perf_event
//! program); the object test checks every kernel name userspace uses is in
//! it.

use memmon_common::names::{self, Map};

/// The kernel programs, built by build.rs.
pub(super) static OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/memmon-probes"));

/// The embedded object could not be adapted to this kernel.
#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    /// Not an ELF object.
    #[error("cannot parse memmon's eBPF object: {0}")]
    Parse(#[source] object::Error),
    /// The map is not in it.
    #[error("memmon's eBPF object has no map {0}")]
    NoMap(String),
    /// Its definition is not where a legacy map definition is.
    #[error("map {map}'s definition {why} in memmon's eBPF object")]
    MapDefinition {
        /// The map.
        map: String,
        /// What is wrong.
        why: &'static str,
    },
    /// Its flags are not the ones the patch expects.
    #[error("map {map} has flags {flags:#x} in memmon's eBPF object, expected BPF_F_NO_PREALLOC")]
    Flags {
        /// The map.
        map: String,
        /// Its flags.
        flags: u32,
    },
}

/// The eBPF object as loaded: the embedded one, or a copy adapted to this
/// kernel.
pub(super) enum ObjectBytes {
    Embedded,
    /// u64 words keep the ELF image 8-byte aligned, as the parser needs.
    Patched(Vec<u64>, usize),
}

impl ObjectBytes {
    pub(super) fn bytes(&self) -> &[u8] {
        match self {
            ObjectBytes::Embedded => OBJECT,
            // SAFETY: the Vec holds at least `len` initialised bytes.
            ObjectBytes::Patched(words, len) => unsafe {
                std::slice::from_raw_parts(words.as_ptr().cast::<u8>(), *len)
            },
        }
    }
}

/// `BPF_F_NO_PREALLOC`, the flag the counters map is declared with.
const BPF_F_NO_PREALLOC: u32 = 1;
/// Offset of `map_flags` in a legacy `bpf_map_def` (type, key_size,
/// value_size, max_entries, map_flags, ...: u32 each).
const MAP_DEF_FLAGS: u64 = 16;
/// The map the major-fault perf_event program writes to.
const COUNTERS_MAP: &Map = names::PROC_COUNTERS;

/// The object for a kernel of `release`. Linux before 6.1 lets perf_event
/// programs use only preallocated hash maps (the verifier says "perf_event
/// programs can only use preallocated hash map"; 6.1's BPF memory
/// allocator lifted that), so there the counters map is declared
/// preallocated: its `max_processes` entries take memory up front instead
/// of as processes come.
pub(super) fn object_for_this_kernel(release: &str) -> Result<ObjectBytes, ObjectError> {
    if !before(release, (6, 1)) {
        return Ok(ObjectBytes::Embedded);
    }
    tracing::debug!("Linux {release} < 6.1: {COUNTERS_MAP} preallocated for perf_event programs");
    preallocated(OBJECT, COUNTERS_MAP)
}

/// True when kernel `release` (`5.10.0-32-amd64`) is older than `version`.
fn before(release: &str, version: (u32, u32)) -> bool {
    let mut nums = release
        .split(|c: char| !c.is_ascii_digit())
        .map(|n| n.parse::<u32>().ok());
    match (nums.next().flatten(), nums.next().flatten()) {
        (Some(major), Some(minor)) => (major, minor) < version,
        _ => false,
    }
}

/// A copy of ELF object `object` with map `map`'s BPF_F_NO_PREALLOC
/// cleared in its `maps` section definition.
fn preallocated(object: &[u8], map: &str) -> Result<ObjectBytes, ObjectError> {
    use object::{Object as _, ObjectSection as _, ObjectSymbol as _};
    let bad = |why: &'static str| ObjectError::MapDefinition {
        map: map.to_string(),
        why,
    };
    let file = object::File::parse(object).map_err(ObjectError::Parse)?;
    let symbol = file
        .symbols()
        .find(|s| s.name() == Ok(map))
        .ok_or_else(|| ObjectError::NoMap(map.to_string()))?;
    let section = symbol
        .section_index()
        .and_then(|i| file.section_by_index(i).ok())
        .ok_or_else(|| bad("has no section"))?;
    let (start, size) = section
        .file_range()
        .ok_or_else(|| bad("lies in a section without data"))?;
    let within = symbol.address().saturating_sub(section.address()) + MAP_DEF_FLAGS;
    if within + 4 > size {
        return Err(bad("lies outside its section"));
    }
    let at = usize::try_from(start + within).map_err(|_| bad("lies beyond the address space"))?;
    let flags = object
        .get(at..at + 4)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map(u32::from_le_bytes)
        .ok_or_else(|| bad("has flags outside the object"))?;
    if flags != BPF_F_NO_PREALLOC {
        return Err(ObjectError::Flags {
            map: map.to_string(),
            flags,
        });
    }
    let mut words = vec![0u64; object.len().div_ceil(8)];
    // SAFETY: `words` holds at least object.len() bytes.
    let bytes =
        unsafe { std::slice::from_raw_parts_mut(words.as_mut_ptr().cast::<u8>(), object.len()) };
    bytes.copy_from_slice(object);
    bytes[at..at + 4].copy_from_slice(&0u32.to_le_bytes());
    Ok(ObjectBytes::Patched(words, object.len()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probes::catalog::{KILL_SIGNAL_RAW, PROBES, RSS_STAT_RAW};

    #[test]
    fn kernels_before_6_1_get_a_preallocated_counters_map() {
        assert!(before("5.10.0-32-amd64", (6, 1)));
        assert!(!before("6.1.0-50-amd64", (6, 1)));
        assert!(!before("6.12.117+deb13-amd64", (6, 1)));
        assert!(!before("unknown kernel", (6, 1)));
        let patched = preallocated(OBJECT, COUNTERS_MAP).expect("patch the embedded object");
        let (old, new) = (OBJECT, patched.bytes());
        assert_eq!(old.len(), new.len());
        let changed: Vec<usize> = (0..old.len()).filter(|&i| old[i] != new[i]).collect();
        assert_eq!(changed.len(), 1, "only the flag byte changes");
        assert_eq!((old[changed[0]], new[changed[0]]), (1, 0));
        assert!(preallocated(OBJECT, "NO_SUCH_MAP").is_err());
    }

    #[test]
    fn the_embedded_object_has_every_catalog_program_and_shared_map() {
        // Parsed, not loaded: no root needed.
        let obj = aya_obj::Object::parse(OBJECT).expect("the embedded eBPF object parses");
        for spec in PROBES.iter().chain([&RSS_STAT_RAW, &KILL_SIGNAL_RAW]) {
            assert!(
                obj.programs.contains_key(spec.program.name()),
                "probe {}: program {} is not in the eBPF object (have: {:?})",
                spec.name,
                spec.program,
                obj.programs.keys().collect::<Vec<_>>()
            );
        }
        for program in memmon_common::names::program::ALL {
            assert!(
                obj.programs.contains_key(program.name()),
                "program {program} is not in the eBPF object"
            );
        }
        for map in memmon_common::names::MAPS {
            assert!(
                obj.maps.contains_key(map.name()),
                "map {map} is not in the eBPF object (have: {:?})",
                obj.maps.keys().collect::<Vec<_>>()
            );
        }
        assert!(
            obj.maps
                .keys()
                .any(|m| m.contains("bss") || m.contains("data") || m.contains("rodata")),
            "no global section for {}",
            memmon_common::names::CONFIG
        );
    }
}
