//! The resident mode's kernel side: turns the fault sampler's `RESIDENT`
//! setting on, takes the RESIDENT_SAMPLES ring buffer out of the object,
//! and hands back each sample with its stack's frames (read from
//! STACK_TRACES through the caller's lookup: the one-shot `memmon leaks`
//! reads the map, the daemon its drain's cache).

use aya::maps::{Array, MapData, RingBuf};
use memmon_common::{
    names,
    stacks::{ResidentSample, setting},
};

use super::{ProbeSet, stacks::StackError};
use crate::sample::stacks::{RawStack, ResidentPage};

/// The ring buffer of sampled fault addresses.
pub struct ResidentReader {
    ring: RingBuf<MapData>,
}

impl ProbeSet {
    /// Makes the fault sampler send its addresses (call before attaching
    /// it) and returns their reader. Load with `LoadOptions::stack_entries`
    /// set (else the ring buffer holds one page).
    pub fn start_resident(&mut self) -> Result<ResidentReader, StackError> {
        {
            let mut settings: Array<&mut MapData, u64> = Array::try_from(
                self.ebpf
                    .map_mut(names::PROFILE_SETTINGS)
                    .ok_or(StackError::MissingMap(names::PROFILE_SETTINGS))?,
            )
            .map_err(|source| StackError::Map {
                map: names::PROFILE_SETTINGS,
                source,
            })?;
            settings
                .set(setting::RESIDENT, 1, 0)
                .map_err(|source| StackError::Map {
                    map: names::PROFILE_SETTINGS,
                    source,
                })?;
        }
        let map = self
            .ebpf
            .take_map(names::RESIDENT_SAMPLES)
            .ok_or(StackError::MissingMap(names::RESIDENT_SAMPLES))?;
        let ring = RingBuf::try_from(map).map_err(|source| StackError::Map {
            map: names::RESIDENT_SAMPLES,
            source,
        })?;
        Ok(ResidentReader { ring })
    }
}

impl ResidentReader {
    /// The samples sent since the last read, with their frames from
    /// `frames` (a stack hash → its addresses, innermost first).
    pub fn read(&mut self, mut frames: impl FnMut(u64) -> Vec<u64>) -> Vec<ResidentPage> {
        self.read_raw()
            .into_iter()
            .map(|s| Self::page(s, &mut frames))
            .collect()
    }

    /// The samples sent since the last read, as the kernel sent them.
    pub fn read_raw(&mut self) -> Vec<ResidentSample> {
        let mut raw = Vec::new();
        while let Some(item) = self.ring.next() {
            if item.len() >= std::mem::size_of::<ResidentSample>() {
                // SAFETY: the record is a ResidentSample written by the
                // fault sampler (size checked; read unaligned).
                raw.push(unsafe {
                    std::ptr::read_unaligned(item.as_ptr().cast::<ResidentSample>())
                });
            }
        }
        raw
    }

    /// One sample with its stacks' frames from `frames`.
    pub fn page(s: ResidentSample, mut frames: impl FnMut(u64) -> Vec<u64>) -> ResidentPage {
        ResidentPage {
            stack: RawStack {
                tgid: s.tgid,
                user: frames(s.user_stack),
                kernel: frames(s.kernel_stack),
            },
            addr: s.addr,
            period: s.period,
        }
    }
}
