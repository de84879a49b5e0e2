//! Empty library target: lets memmon's build.rs depend on this crate so
//! cargo rebuilds the eBPF object when its sources change.
#![no_std]
