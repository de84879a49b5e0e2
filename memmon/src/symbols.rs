//! Names for sampled addresses (a reader: it opens ELF files): user frames
//! through blazesym's process source, which reads each mapping through
//! `/proc/PID/map_files` (so binaries inside another mount namespace, a
//! container, resolve), with ELF symbols and DWARF, PIE and shared
//! libraries; kernel frames from /proc/kallsyms. A frame that has no symbol
//! shows `module+0xoffset` (file offset), or its raw address when not even
//! its mapping is known. A process that is gone is named from the files of
//! the executable mappings its caller kept ([`Symbols::name_with`]).

use std::{collections::HashMap, sync::Arc};

use blazesym::{
    Pid,
    normalize::{Normalizer, UserMeta},
    symbolize::{
        Input, Symbolized, Symbolizer,
        source::{Elf, Kernel, Process, Source},
    },
};

use crate::sample::stacks::{Frame, Mapping, NamedSample, RawSample};

/// Symbolizes stacks, caching each address's name per process.
pub struct Symbols {
    symbolizer: Symbolizer,
    normalizer: Normalizer,
    user: HashMap<(u32, u64), Frame>,
    kernel: HashMap<u64, Frame>,
}

impl Default for Symbols {
    fn default() -> Self {
        Self::new()
    }
}

impl Symbols {
    /// A symbolizer with empty caches.
    pub fn new() -> Self {
        Symbols {
            symbolizer: Symbolizer::new(),
            normalizer: Normalizer::new(),
            user: HashMap::new(),
            kernel: HashMap::new(),
        }
    }

    /// Forgets the names cached for processes `keep` says no to (a
    /// long-running caller, the daemon, drops those gone from its window,
    /// so the cache stays bounded and a reused pid is named afresh).
    pub fn retain_processes(&mut self, keep: impl Fn(u32) -> bool) {
        self.user.retain(|(pid, _), _| keep(*pid));
    }

    /// Names every frame of `samples` (innermost first: kernel frames, then
    /// user frames).
    pub fn name(&mut self, samples: &[RawSample]) -> Vec<NamedSample> {
        self.name_with(samples, &HashMap::new())
    }

    /// [`Symbols::name`], with the executable mappings `gone` kept of
    /// processes that may have exited: their frames are named from the
    /// files (the process's own view of them is gone with it).
    pub fn name_with(
        &mut self,
        samples: &[RawSample],
        gone: &HashMap<u32, Arc<[Mapping]>>,
    ) -> Vec<NamedSample> {
        let mut by_pid: HashMap<u32, Vec<u64>> = HashMap::new();
        let mut kernel_addrs = Vec::new();
        for s in samples {
            by_pid.entry(s.stack.tgid).or_default().extend(
                s.stack
                    .user
                    .iter()
                    .filter(|a| !self.user.contains_key(&(s.stack.tgid, **a))),
            );
            kernel_addrs.extend(
                s.stack
                    .kernel
                    .iter()
                    .filter(|a| !self.kernel.contains_key(*a)),
            );
        }
        for (pid, mut addrs) in by_pid {
            addrs.sort_unstable();
            addrs.dedup();
            if !addrs.is_empty() {
                self.resolve_user(pid, &addrs, gone.get(&pid).map(|m| &**m));
            }
        }
        kernel_addrs.sort_unstable();
        kernel_addrs.dedup();
        if !kernel_addrs.is_empty() {
            self.resolve_kernel(&kernel_addrs);
        }
        samples
            .iter()
            .map(|s| {
                let tgid = s.stack.tgid;
                let frames = s
                    .stack
                    .kernel
                    .iter()
                    .map(|a| self.kernel.get(a).cloned().unwrap_or_else(|| raw(*a, true)))
                    .chain(s.stack.user.iter().map(|a| {
                        self.user
                            .get(&(tgid, *a))
                            .cloned()
                            .unwrap_or_else(|| raw(*a, false))
                    }))
                    .collect();
                NamedSample {
                    event: s.event,
                    tgid,
                    frames,
                    weight: s.weight,
                    count: s.count,
                    growth: s.growth,
                }
            })
            .collect()
    }

    fn resolve_user(&mut self, pid: u32, addrs: &[u64], kept: Option<&[Mapping]>) {
        if let Some(maps) = kept
            && !std::path::Path::new(&format!("/proc/{pid}/maps")).exists()
        {
            self.resolve_from_files(pid, addrs, maps);
            return;
        }
        let src = Source::Process(Process::new(Pid::from(pid)));
        // Return addresses point after the call: look up addr - 1 so a call
        // at a function's end is not named after the next function. The
        // innermost frame is exact, but one byte back stays inside it.
        let lookup: Vec<u64> = addrs.iter().map(|a| a.saturating_sub(1)).collect();
        let names = match self.symbolizer.symbolize(&src, Input::AbsAddr(&lookup)) {
            Ok(n) => n,
            Err(e) => {
                tracing::debug!("symbolizing pid {pid}: {e}");
                Vec::new()
            }
        };
        let modules = self
            .normalizer
            .normalize_user_addrs(Pid::from(pid), addrs)
            .ok();
        for (i, addr) in addrs.iter().enumerate() {
            let module = modules.as_ref().and_then(|m| {
                let (offset, meta) = m.outputs.get(i)?;
                match m.meta.get(*meta)? {
                    UserMeta::Elf(elf) => Some((elf.path.display().to_string(), *offset)),
                    _ => None,
                }
            });
            let frame = match names.get(i) {
                Some(Symbolized::Sym(sym)) => Frame {
                    name: sym.name.to_string(),
                    module: module.as_ref().map(|(m, _)| m.clone()),
                    kernel: false,
                    symbolized: true,
                },
                _ => match &module {
                    Some((path, offset)) => Frame {
                        name: format!("{}+{offset:#x}", basename(path)),
                        module: Some(path.clone()),
                        kernel: false,
                        symbolized: false,
                    },
                    None => raw(*addr, false),
                },
            };
            self.user.insert((pid, *addr), frame);
        }
    }

    /// Names the addresses of a process that is gone from the files its
    /// kept mappings say they were in (`module+0xoffset` without a symbol,
    /// the raw address outside every mapping).
    fn resolve_from_files(&mut self, pid: u32, addrs: &[u64], maps: &[Mapping]) {
        let mut by_file: HashMap<&std::path::Path, Vec<(u64, u64)>> = HashMap::new();
        for &addr in addrs {
            match Mapping::find(maps, addr) {
                // As above: a return address names the call before it.
                Some((m, offset)) => by_file
                    .entry(m.path.as_path())
                    .or_default()
                    .push((addr, offset)),
                None => {
                    self.user.insert((pid, addr), raw(addr, false));
                }
            }
        }
        for (path, hits) in by_file {
            let offsets: Vec<u64> = hits.iter().map(|(_, o)| o.saturating_sub(1)).collect();
            let src = Source::Elf(Elf::new(path));
            let names = match self.symbolizer.symbolize(&src, Input::FileOffset(&offsets)) {
                Ok(n) => n,
                Err(e) => {
                    tracing::debug!("symbolizing {} (pid {pid}, gone): {e}", path.display());
                    Vec::new()
                }
            };
            let module = path.display().to_string();
            for (i, (addr, offset)) in hits.iter().enumerate() {
                let frame = match names.get(i) {
                    Some(Symbolized::Sym(sym)) => Frame {
                        name: sym.name.to_string(),
                        module: Some(module.clone()),
                        kernel: false,
                        symbolized: true,
                    },
                    _ => Frame {
                        name: format!("{}+{offset:#x}", basename(&module)),
                        module: Some(module.clone()),
                        kernel: false,
                        symbolized: false,
                    },
                };
                self.user.insert((pid, *addr), frame);
            }
        }
    }

    fn resolve_kernel(&mut self, addrs: &[u64]) {
        let src = Source::Kernel(Kernel::default());
        let names = self
            .symbolizer
            .symbolize(&src, Input::AbsAddr(addrs))
            .unwrap_or_default();
        for (i, addr) in addrs.iter().enumerate() {
            let frame = match names.get(i) {
                Some(Symbolized::Sym(sym)) => Frame {
                    name: sym.name.to_string(),
                    module: None,
                    kernel: true,
                    symbolized: true,
                },
                _ => raw(*addr, true),
            };
            self.kernel.insert(*addr, frame);
        }
    }
}

/// A frame known only by its address.
fn raw(addr: u64, kernel: bool) -> Frame {
    Frame {
        name: format!("{addr:#x}"),
        module: None,
        kernel,
        symbolized: false,
    }
}

fn basename(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}
