//! Offsets of the `task_struct` and `signal_struct` fields the kernel
//! programs read, resolved from the running kernel's BTF. aya-ebpf has no
//! CO-RE relocation, so this is how one object fits every kernel layout.

use btf_rs::{Btf, Type};
use memmon_common::{
    CgroupOffsets, OomOffsets, RssOffsets, TaskOffsets, task_iter::TaskIterOffsets,
};

/// Where the running kernel publishes its BTF.
pub const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

/// What this kernel's BTF lacks (or could not be read): the fields that
/// need it stay unknown, and the reason is logged or reported.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BtfError {
    /// /sys/kernel/btf/vmlinux missing or unparsable.
    #[error("cannot read kernel BTF at {VMLINUX_BTF}: {0}")]
    Unreadable(String),
    /// A type is missing.
    #[error("BTF has no type {name}: {reason}")]
    NoType {
        /// The type.
        name: &'static str,
        /// What the BTF reader said.
        reason: String,
    },
    /// A struct lacks a field.
    #[error("BTF: struct {name} has no field {field}")]
    NoField {
        /// The struct.
        name: &'static str,
        /// The field.
        field: &'static str,
    },
    /// An enum lacks a member.
    #[error("BTF: enum {name} has no member {member} (no memory controller?)")]
    NoEnumMember {
        /// The enum.
        name: &'static str,
        /// The member.
        member: &'static str,
    },
    /// An enum member has another value than memmon decodes.
    #[error("BTF: {name} is {got} here, memmon decodes {want}")]
    EnumValue {
        /// The member.
        name: &'static str,
        /// Its value here.
        got: u32,
        /// The value memmon decodes.
        want: u32,
    },
    /// A tracepoint typedef is not a function pointer.
    #[error("BTF: {0} is not a tracepoint function type")]
    NotTracepoint(&'static str),
    /// A tracepoint takes other arguments than the raw program reads.
    #[error("{tracepoint} takes {got} arguments here, not {want}")]
    Arguments {
        /// The tracepoint function.
        tracepoint: &'static str,
        /// Its arguments here.
        got: usize,
        /// What the program reads.
        want: &'static str,
    },
    /// A type has another shape than memmon reads.
    #[error("{0}")]
    Shape(&'static str),
}

/// The running kernel's BTF, opened once: mmapped where the kernel allows
/// (6.16+: only the types looked up are parsed, ~10x faster than parsing
/// all ~100k types), else parsed whole.
pub fn kernel_btf() -> Result<Btf, BtfError> {
    Btf::from_file_with_backend(VMLINUX_BTF, btf_rs::Backend::Mmap)
        .or_else(|_| Btf::from_file(VMLINUX_BTF))
        .map_err(|e| BtfError::Unreadable(e.to_string()))
}

/// Offsets along `task->cgroups->subsys[memory_cgrp_id]->cgroup->kn->{name,id}`.
pub fn resolve_cgroup(btf: &Btf) -> Result<CgroupOffsets, BtfError> {
    Ok(CgroupOffsets {
        valid: 1,
        task_cgroups: field_offset(btf, "task_struct", "cgroups")?,
        css_set_subsys: field_offset(btf, "css_set", "subsys")?,
        memory_subsys_id: enum_value(btf, "cgroup_subsys_id", "memory_cgrp_id")?,
        css_cgroup: field_offset(btf, "cgroup_subsys_state", "cgroup")?,
        cgroup_kn: field_offset(btf, "cgroup", "kn")?,
        kn_name: field_offset(btf, "kernfs_node", "name")?,
        kn_id: field_offset(btf, "kernfs_node", "id")?,
    })
}

/// What the raw rss_stat program reads: on kernels from 6.2,
/// `trace_rss_stat(mm, member)` with `mm_struct.rss_stat` an array of
/// `percpu_counter`. An error (an older kernel: `struct mm_rss_stat`, and
/// a `count` argument) means the classic tracepoint is used.
pub fn resolve_rss(btf: &Btf) -> Result<RssOffsets, BtfError> {
    let proto = tracepoint_params(btf, "btf_trace_rss_stat")?;
    if proto != 3 {
        return Err(BtfError::Arguments {
            tracepoint: "trace_rss_stat",
            got: proto.saturating_sub(1),
            want: "(mm, member)",
        });
    }
    let types = btf
        .resolve_types_by_name("mm_struct")
        .map_err(no_type("mm_struct"))?;
    for t in types {
        let Type::Struct(s) = t else { continue };
        let Some(bits) = find_member(btf, &s.members, "rss_stat", 0) else {
            continue;
        };
        let member = member_type(btf, &s.members, "rss_stat")
            .ok_or(BtfError::Shape("BTF: mm_struct.rss_stat has no type"))?;
        let Type::Array(array) = member else {
            return Err(BtfError::Shape(
                "mm_struct.rss_stat is not an array of percpu_counter",
            ));
        };
        let elem = btf
            .resolve_chained_type(&array)
            .map_err(|_| BtfError::Shape("BTF: mm_struct.rss_stat element has no type"))?;
        let Type::Struct(counter) = elem else {
            return Err(BtfError::Shape(
                "mm_struct.rss_stat's elements are not structs",
            ));
        };
        let count = find_member(btf, &counter.members, "count", 0).ok_or(BtfError::NoField {
            name: "percpu_counter",
            field: "count",
        })?;
        return Ok(RssOffsets {
            valid: 1,
            task_mm: field_offset(btf, "task_struct", "mm")?,
            mm_rss_stat: bits / 8,
            counter_size: counter.size() as u32,
            counter_count: count / 8,
            counters: array.len() as u32,
        });
    }
    Err(BtfError::NoField {
        name: "mm_struct",
        field: "rss_stat",
    })
}

/// What the task iterator reads. `mm_struct.rss_stat` is an array of
/// `percpu_counter` from 6.2 (each one's `count`) and a `struct
/// mm_rss_stat { atomic_long_t count[]; }` before: either way a run of
/// counters at a fixed stride, which is what `get_mm_counter` reads.
pub fn resolve_task_iter(btf: &Btf) -> Result<TaskIterOffsets, BtfError> {
    let task = |f: &'static str| field_offset(btf, "task_struct", f);
    let signal = |f: &'static str| field_offset(btf, "signal_struct", f);
    let (mm_rss_first, rss_stride) = rss_counters(btf)?;
    Ok(TaskIterOffsets {
        valid: 1,
        pid: task("pid")?,
        tgid: task("tgid")?,
        comm: task("comm")?,
        start_boottime: task("start_boottime")?,
        min_flt: task("min_flt")?,
        maj_flt: task("maj_flt")?,
        signal: task("signal")?,
        signal_min_flt: signal("min_flt")?,
        signal_maj_flt: signal("maj_flt")?,
        real_parent: task("real_parent")?,
        _pad: 0,
        mm: task("mm")?,
        mm_total_vm: field_offset(btf, "mm_struct", "total_vm")?,
        mm_rss_first,
        rss_stride,
    })
}

/// (offset of the first rss counter's value in `mm_struct`, stride).
fn rss_counters(btf: &Btf) -> Result<(u32, u32), BtfError> {
    let types = btf
        .resolve_types_by_name("mm_struct")
        .map_err(no_type("mm_struct"))?;
    for t in types {
        let Type::Struct(s) = t else { continue };
        let Some(bits) = find_member(btf, &s.members, "rss_stat", 0) else {
            continue;
        };
        let base = bits / 8;
        let member = member_type(btf, &s.members, "rss_stat")
            .ok_or(BtfError::Shape("BTF: mm_struct.rss_stat has no type"))?;
        return match member {
            // 6.2+: struct percpu_counter rss_stat[NR_MM_COUNTERS].
            Type::Array(array) => {
                let elem = btf
                    .resolve_chained_type(&array)
                    .map_err(|_| BtfError::Shape("BTF: mm_struct.rss_stat element has no type"))?;
                let Type::Struct(counter) = elem else {
                    return Err(BtfError::Shape(
                        "mm_struct.rss_stat's elements are not structs",
                    ));
                };
                let count =
                    find_member(btf, &counter.members, "count", 0).ok_or(BtfError::NoField {
                        name: "percpu_counter",
                        field: "count",
                    })?;
                Ok((base + count / 8, counter.size() as u32))
            }
            // Before: struct mm_rss_stat { atomic_long_t count[NR_MM_COUNTERS]; }.
            Type::Struct(stat) => {
                let count =
                    find_member(btf, &stat.members, "count", 0).ok_or(BtfError::NoField {
                        name: "mm_rss_stat",
                        field: "count",
                    })?;
                Ok((base + count / 8, 8))
            }
            _ => Err(BtfError::Shape(
                "mm_struct.rss_stat is neither an array nor struct mm_rss_stat",
            )),
        };
    }
    Err(BtfError::NoField {
        name: "mm_struct",
        field: "rss_stat",
    })
}

/// Parameters of the function type behind tracepoint typedef `name`
/// (`btf_trace_X`: the first is the tracepoint's private data).
fn tracepoint_params(btf: &Btf, name: &'static str) -> Result<usize, BtfError> {
    let types = btf.resolve_types_by_name(name).map_err(no_type(name))?;
    for t in types {
        let Type::Typedef(td) = t else { continue };
        let Ok(Type::Ptr(ptr)) = btf.resolve_chained_type(&td) else {
            continue;
        };
        if let Ok(Type::FuncProto(fp)) = btf.resolve_chained_type(&ptr) {
            return Ok(fp.parameters.len());
        }
    }
    Err(BtfError::NotTracepoint(name))
}

/// The type of member `field` of a struct, looking through anonymous
/// struct/union members (typedefs and qualifiers looked through).
fn member_type(btf: &Btf, members: &[btf_rs::Member], field: &str) -> Option<Type> {
    for m in members {
        let name = btf.resolve_name(m).unwrap_or_default();
        if name == field {
            let mut t = btf.resolve_chained_type(m).ok()?;
            loop {
                t = match t {
                    Type::Typedef(ref x) => btf.resolve_chained_type(x).ok()?,
                    Type::Volatile(ref x) | Type::Const(ref x) => {
                        btf.resolve_chained_type(x).ok()?
                    }
                    other => return Some(other),
                };
            }
        }
        if name.is_empty() {
            let inner = match btf.resolve_chained_type(m).ok()? {
                Type::Struct(s) => s.members,
                Type::Union(u) => u.members,
                _ => continue,
            };
            if let Some(found) = member_type(btf, &inner, field) {
                return Some(found);
            }
        }
    }
    None
}

/// Value of `member` in `enum name`.
fn enum_value(btf: &Btf, name: &'static str, member: &'static str) -> Result<u32, BtfError> {
    let types = btf.resolve_types_by_name(name).map_err(no_type(name))?;
    for t in types {
        if let Type::Enum(e) = t {
            for m in &e.members {
                if btf.resolve_name(m).ok().as_deref() == Some(member) {
                    return Ok(m.val());
                }
            }
        }
    }
    Err(BtfError::NoEnumMember { name, member })
}

/// Resolves every offset in `btf`; an error names the first missing field.
pub fn resolve(btf: &Btf) -> Result<TaskOffsets, BtfError> {
    let task = |f: &'static str| field_offset(btf, "task_struct", f);
    let signal = |f: &'static str| field_offset(btf, "signal_struct", f);
    Ok(TaskOffsets {
        valid: 1,
        start_boottime: task("start_boottime")?,
        min_flt: task("min_flt")?,
        maj_flt: task("maj_flt")?,
        signal: task("signal")?,
        signal_min_flt: signal("min_flt")?,
        signal_maj_flt: signal("maj_flt")?,
        group_leader: task("group_leader")?,
        real_parent: task("real_parent")?,
        tgid: task("tgid")?,
        comm: task("comm")?,
        signal_live: signal("live")?,
        mm: task("mm")?,
        mm_brk: field_offset(btf, "mm_struct", "brk")?,
        flags: task("flags")?,
        pid: task("pid")?,
    })
}

/// True when `trace_signal_generate` takes what the raw kill program reads:
/// (sig, info, task, group, result).
pub fn signal_generate_is_raw_readable(btf: &Btf) -> Result<(), BtfError> {
    match tracepoint_params(btf, "btf_trace_signal_generate")? {
        6 => Ok(()),
        n => Err(BtfError::Arguments {
            tracepoint: "trace_signal_generate",
            got: n.saturating_sub(1),
            want: "(sig, info, task, group, result)",
        }),
    }
}

/// What the OOM programs read: the page counters of a memcg and its
/// ancestors (`mem_cgroup.{css,memory,memsw}`, `page_counter.{usage,max}`,
/// `cgroup_subsys_state.parent`; `memsw` only where the kernel has it) and,
/// for the `oom_constraint` kprobe, `oom_control.{memcg,constraint}` with
/// `enum oom_constraint` checked against the values userspace decodes
/// (`oc_valid` 0 when those fail: the page counters still decide).
pub fn resolve_oom(btf: &Btf) -> Result<OomOffsets, BtfError> {
    let memsw = field_offset(btf, "mem_cgroup", "memsw").ok();
    let mut out = OomOffsets {
        valid: 1,
        memcg_css: field_offset(btf, "mem_cgroup", "css")?,
        memcg_memory: field_offset(btf, "mem_cgroup", "memory")?,
        memsw_valid: u32::from(memsw.is_some()),
        memcg_memsw: memsw.unwrap_or(0),
        counter_usage: field_offset(btf, "page_counter", "usage")?,
        counter_max: field_offset(btf, "page_counter", "max")?,
        css_parent: field_offset(btf, "cgroup_subsys_state", "parent")?,
        ..OomOffsets::unknown()
    };
    match resolve_oom_control(btf) {
        Ok((memcg, constraint)) => {
            (out.oc_memcg, out.oc_constraint, out.oc_valid) = (memcg, constraint, 1);
        }
        Err(e) => tracing::info!("the oom_constraint probe will not read oom_control: {e}"),
    }
    Ok(out)
}

/// `oom_control.{memcg,constraint}`, with `enum oom_constraint` as memmon
/// decodes it.
fn resolve_oom_control(btf: &Btf) -> Result<(u32, u32), BtfError> {
    use memmon_common::events::constraint;
    for (name, want) in [
        ("CONSTRAINT_NONE", constraint::NONE),
        ("CONSTRAINT_CPUSET", constraint::CPUSET),
        ("CONSTRAINT_MEMORY_POLICY", constraint::MEMORY_POLICY),
        ("CONSTRAINT_MEMCG", constraint::MEMCG),
    ] {
        let got = enum_value(btf, "oom_constraint", name)?;
        if got != want {
            return Err(BtfError::EnumValue { name, got, want });
        }
    }
    Ok((
        field_offset(btf, "oom_control", "memcg")?,
        field_offset(btf, "oom_control", "constraint")?,
    ))
}

/// Byte offset of `field` in `struct name`, looking through anonymous
/// struct/union members (task_struct keeps most fields in one).
fn field_offset(btf: &Btf, name: &'static str, field: &'static str) -> Result<u32, BtfError> {
    let types = btf.resolve_types_by_name(name).map_err(no_type(name))?;
    for t in types {
        if let Type::Struct(s) = t
            && let Some(bits) = find_member(btf, &s.members, field, 0)
        {
            return Ok(bits / 8);
        }
    }
    Err(BtfError::NoField { name, field })
}

/// A missing type, with what the BTF reader said.
fn no_type<E: std::fmt::Display>(name: &'static str) -> impl Fn(E) -> BtfError {
    move |e| BtfError::NoType {
        name,
        reason: e.to_string(),
    }
}

fn find_member(btf: &Btf, members: &[btf_rs::Member], field: &str, base_bits: u32) -> Option<u32> {
    for m in members {
        let name = btf.resolve_name(m).unwrap_or_default();
        let bits = base_bits + m.bit_offset();
        if name == field {
            return Some(bits);
        }
        if name.is_empty() {
            let inner = match btf.resolve_chained_type(m).ok()? {
                Type::Struct(s) => s.members,
                Type::Union(u) => u.members,
                _ => continue,
            };
            if let Some(found) = find_member(btf, &inner, field, bits) {
                return Some(found);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The running kernel's BTF (absent: the test says so and passes, as
    /// there is nothing to read).
    fn btf() -> Option<Btf> {
        match kernel_btf() {
            Ok(b) => Some(b),
            Err(e) => {
                eprintln!("no kernel BTF here: {e}");
                None
            }
        }
    }

    #[test]
    fn the_running_kernel_gives_the_oom_and_kill_offsets() {
        let Some(btf) = btf() else { return };
        let oom = resolve_oom(&btf).expect("mem_cgroup and page_counter offsets");
        assert_eq!(oom.valid, 1);
        assert_eq!(oom.memcg_css, 0, "css is mem_cgroup's first member");
        assert_eq!(
            oom.oc_valid, 1,
            "oom_control and enum oom_constraint as decoded"
        );
        assert_ne!(oom.counter_max, oom.counter_usage);
        signal_generate_is_raw_readable(&btf).expect("trace_signal_generate's arguments");
        assert_ne!(resolve(&btf).expect("task offsets").pid, 0);
    }
}
