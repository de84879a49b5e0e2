//! memmon's kernel programs. Built for `bpfel-unknown-none` by memmon's
//! build.rs and embedded in the `memmon` binary; on the host this crate is an
//! empty `main` so that `cargo clippy --workspace` covers it.
//!
//! One probe per file under `probes/`; shared maps in `maps.rs`; reads of
//! kernel structs through BTF-derived offsets in `task.rs`.
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]
// The BPF target has no compare-and-swap, so core offers no `fetch_add`;
// the intrinsic lowers to the BPF atomic add instruction.
#![cfg_attr(target_arch = "bpf", feature(core_intrinsics))]
#![cfg_attr(target_arch = "bpf", allow(internal_features))]

#[cfg(target_arch = "bpf")]
mod maps;
#[cfg(target_arch = "bpf")]
mod probes;
#[cfg(target_arch = "bpf")]
mod task;

#[cfg(not(target_arch = "bpf"))]
fn main() {}

#[cfg(target_arch = "bpf")]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

/// GPL-compatible: bpf_probe_read_kernel and the perf/ring-buffer helpers
/// are GPL-only.
#[cfg(target_arch = "bpf")]
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
