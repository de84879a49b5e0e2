//! `memmon-workload`: processes with a known memory footprint, for the
//! integration tests and `cargo xtask bench`.
//!
//! Protocol: prints `ready PID` on stdout, waits for one line on stdin, does
//! its work, prints one JSON line with what it did (and its own
//! /proc/self/stat fault deltas around the work), then waits for stdin to
//! close before exiting (so the caller can still read its /proc files).
//! `--no-wait` skips both waits.

use std::{
    io::{BufRead as _, Write as _},
    process::ExitCode,
};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("memmon-workload: {e}");
            ExitCode::from(2)
        }
    }
}

const USAGE: &str = "usage: memmon-workload [--no-wait] COMMAND [ARGS]
commands:
  touch PAGES          mmap PAGES fresh anonymous pages and write one byte in each
  cow PAGES            touch PAGES, fork; the child writes every page (reports the child)
  read-file PATH       mmap PATH read-only and read one byte per page
  spawn COUNT          fork COUNT short-lived children, each touching 16 pages
  hostile PAGES        rename itself to a hostile comm (quotes, backslash,
                       newline, control byte, invalid UTF-8), touch PAGES
  brk COUNT            grow the program break COUNT times by one page (sbrk)
  open-files COUNT     open and close /dev/null COUNT times
  share MIB            touch a MIB shared anonymous mapping, fork a child that
                       shares it (reports the child); both wait for stdin EOF
  grow MIB MS          touch MIB of fresh memory, 1 MiB every MS milliseconds (wall-clock schedule)
  idle COUNT           fork COUNT children that sleep until stdin closes
  threads COUNT PAGES  start COUNT threads that each touch PAGES fresh pages; the
                       odd ones exit at once (their faults go to the process's
                       reaped-thread totals), the even ones stay until stdin closes
  mmap-storm PAIRS     PAIRS mmap/munmap pairs of 64 KiB; prints ns per pair
  fault-storm MIB ROUNDS  touch MIB of fresh memory per round; prints ns per fault
  fault-storm-for MIB SECONDS  the same, rounds until SECONDS have passed (as many
                       as the machine's speed allows)
  swap-cycle MIB       touch MIB of fresh memory (report), wait for a second line,
                       read it all back (report); under a memcg limit it swaps
  thrash MIB           touch MIB of fresh memory (report), then write every page
                       again and again until stdin closes: under a memcg limit
                       with swap on, it swaps and stalls in reclaim all along
  compact              write 1 to /proc/sys/vm/compact_memory (root): the kernel
                       compacts every zone, migrating pages in this task
  stacks GAMMA DELTA   touch GAMMA MiB in touch_gamma, then DELTA MiB in touch_delta
                       (named frames for `memmon profile`; built with frame pointers)
  leaks LEAK CHURN     malloc LEAK MiB in 4 KiB blocks in leak_alpha and keep them, then
                       malloc and free CHURN MiB in 4 KiB blocks in churn_beta
  growth PAGES KEEP CHURN  grow the break PAGES pages in brk_theta; mmap KEEP MiB (1 MiB
                       each) in map_zeta and keep it; mmap and munmap CHURN MiB in map_eta
                       (raw syscalls, so the caller's frame is the sampled one)
  many-stacks N        malloc and keep N 64-byte blocks, block i from its own call path
                       (path_zero/path_one chosen by the bits of i, 14 levels, then
                       leak_leaf): N distinct user stacks, N <= 16384
  malloc-storm PAIRS   PAIRS malloc/free pairs of mixed sizes (16 B..64 KiB), keeping
                       one block in 64; prints ns per pair and the bytes kept
  step FROM TO         touch FROM MiB (report), wait for a second line, touch up
                       to TO MiB in all (report): RSS steps at a moment the
                       caller chooses
  oom MIB              touch MIB of fresh memory (killed by the OOM killer when
                       its memcg limit is lower); reports only if it survives";

fn run(args: &[String]) -> Result<(), String> {
    let (wait, args) = match args.first().map(String::as_str) {
        Some("--no-wait") => (false, &args[1..]),
        _ => (true, args),
    };
    let cmd = args.first().ok_or(USAGE)?;
    let num = |i: usize| -> Result<u64, String> {
        args.get(i)
            .ok_or_else(|| format!("{cmd}: missing argument\n{USAGE}"))?
            .parse::<u64>()
            .map_err(|e| format!("{cmd}: bad number: {e}"))
    };
    let pid = std::process::id();
    println!("ready {pid}");
    flush();
    if wait {
        read_line();
    }
    let before = own_faults();
    let extra = match cmd.as_str() {
        "stacks" => {
            let (gamma, delta) = (num(1)?, num(2)?);
            touch_gamma(map_anon(gamma * 256)?, gamma * 256);
            touch_delta(map_anon(delta * 256)?, delta * 256);
            format!(
                "\"gamma_pages\":{},\"delta_pages\":{}",
                gamma * 256,
                delta * 256
            )
        }
        "leaks" => {
            let (leak, churn) = (num(1)?, num(2)?);
            let kept = leak_alpha(leak * 256);
            churn_beta(churn * 256);
            format!("\"leaked_bytes\":{kept}")
        }
        "growth" => {
            let grown = brk_theta(num(1)?);
            let kept = map_zeta(num(2)?);
            let churned = map_eta(num(3)?);
            format!("\"brk_grow_bytes\":{grown},\"kept_bytes\":{kept},\"churned_bytes\":{churned}")
        }
        "many-stacks" => {
            let n = num(1)?;
            if n > 1 << PATH_BITS {
                return Err(format!("many-stacks: at most {} paths", 1u64 << PATH_BITS));
            }
            let kept: u64 = (0..n).map(|i| path_step(i, PATH_BITS)).sum();
            format!("\"stacks\":{n},\"kept_bytes\":{kept}")
        }
        "malloc-storm" => {
            let (ns, kept) = malloc_storm(num(1)?);
            format!("\"ns_per_pair\":{ns:.1},\"kept_bytes\":{kept}")
        }
        "touch" => {
            let pages = num(1)?;
            touch_fresh(pages)?;
            format!("\"pages\":{pages}")
        }
        "cow" => return cow(num(1)?, wait),
        "read-file" => {
            let path = args.get(1).ok_or(USAGE)?;
            let pages = read_file(path)?;
            format!("\"pages\":{pages}")
        }
        "pingpong" => {
            let ns = pingpong(num(1)?)?;
            format!("\"ns_per_round_trip\":{ns:.1}")
        }
        "spawn" => {
            let start = std::time::Instant::now();
            let children = spawn(num(1)?)?;
            let ns = start.elapsed().as_nanos() as f64 / children.len().max(1) as f64;
            let pids: Vec<String> = children.iter().map(|(p, _)| p.to_string()).collect();
            let minflts: Vec<String> = children.iter().map(|(_, m)| m.to_string()).collect();
            format!(
                "\"ns_per_spawn\":{ns:.1},\"pids\":[{}],\"minflts\":[{}]",
                pids.join(","),
                minflts.join(",")
            )
        }
        "hostile" => {
            // Quotes, backslash, newline, a control byte, invalid UTF-8.
            let name: &[u8] = b"q\"b\\n\nc\x01\xff\xfez\0";
            // SAFETY: PR_SET_NAME reads a NUL-terminated string of <= 16 bytes.
            unsafe { libc::prctl(libc::PR_SET_NAME, name.as_ptr()) };
            touch_fresh(num(1)?)?;
            "\"renamed\":true".to_string()
        }
        "brk" => {
            let grown = grow_brk(num(1)?)?;
            format!("\"brk_grow_bytes\":{grown}")
        }
        "open-files" => {
            open_files(num(1)?)?;
            "\"opened\":true".to_string()
        }
        "share" => {
            let child = share(num(1)?)?;
            format!("\"child\":{child}")
        }
        "grow" => {
            grow(num(1)?, num(2)?)?;
            "\"grown\":true".to_string()
        }
        "threads" => {
            let (count, pages) = (num(1)?, num(2)?);
            threads(count, pages)?;
            format!("\"threads\":{count}")
        }
        "idle" => {
            let pids = idle(num(1)?)?;
            let list: Vec<String> = pids.iter().map(u32::to_string).collect();
            format!("\"pids\":[{}]", list.join(","))
        }
        "mmap-storm" => {
            let ns = mmap_storm(num(1)?)?;
            format!("\"ns_per_pair\":{ns:.1}")
        }
        "fault-storm" | "fault-storm-for" => {
            let (rounds, at_least) = if cmd == "fault-storm" {
                (num(2)?, 0)
            } else {
                (1, num(2)?)
            };
            let ns = fault_storm(num(1)?, rounds, std::time::Duration::from_secs(at_least))?;
            let list: Vec<String> = ns.iter().map(|n| format!("{n:.1}")).collect();
            format!("\"ns_per_fault\":[{}]", list.join(","))
        }
        "compact" => {
            std::fs::write("/proc/sys/vm/compact_memory", "1")
                .map_err(|e| format!("write /proc/sys/vm/compact_memory (needs root): {e}"))?;
            "\"compacted\":true".to_string()
        }
        "swap-cycle" => return swap_cycle(pid, num(1)?, wait),
        "step" => return step(pid, num(1)?, num(2)?, wait),
        "thrash" => return thrash(pid, num(1)?),
        "oom" => {
            let pages = num(1)? * 1024 * 1024 / PAGE as u64;
            touch_fresh(pages)?;
            format!("\"pages\":{pages},\"survived\":true")
        }
        other => return Err(format!("unknown command {other}\n{USAGE}")),
    };
    report(pid, before, &extra);
    if wait {
        wait_for_eof();
    }
    Ok(())
}

fn flush() {
    let _ = std::io::stdout().flush();
}

fn read_line() {
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
}

fn wait_for_eof() {
    let mut sink = String::new();
    let stdin = std::io::stdin();
    while stdin
        .lock()
        .read_line(&mut sink)
        .map(|n| n > 0)
        .unwrap_or(false)
    {
        sink.clear();
    }
}

/// (minflt, majflt) of this process from /proc/self/stat.
fn own_faults() -> (u64, u64) {
    // Bytes, not a String: comm may be any bytes (see `hostile`).
    let raw = std::fs::read("/proc/self/stat").unwrap_or_default();
    let stat = String::from_utf8_lossy(&raw);
    let after_comm = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    // Fields after comm start at field 3 (state); minflt is 10, majflt 12.
    let get = |n: usize| fields.get(n - 3).and_then(|v| v.parse().ok()).unwrap_or(0);
    (get(10), get(12))
}

fn report(pid: u32, before: (u64, u64), extra: &str) {
    let after = own_faults();
    println!(
        "{{\"pid\":{pid},\"minflt\":{},\"majflt\":{},{extra}}}",
        after.0.saturating_sub(before.0),
        after.1.saturating_sub(before.1)
    );
    flush();
}

const PAGE: usize = 4096;

fn map_anon(pages: u64) -> Result<*mut u8, String> {
    let len = pages as usize * PAGE;
    // SAFETY: anonymous private mapping, no file, checked result.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(format!(
            "mmap {len} bytes: {}",
            std::io::Error::last_os_error()
        ));
    }
    // Keep THP from folding 512 faults into one.
    // SAFETY: advising our own fresh mapping.
    unsafe { libc::madvise(p, len, libc::MADV_NOHUGEPAGE) };
    Ok(p.cast())
}

fn touch(p: *mut u8, pages: u64) {
    for i in 0..pages as usize {
        // SAFETY: within the mapping.
        unsafe { std::ptr::write_volatile(p.add(i * PAGE), 1) };
    }
}

/// Writes one byte per page: the frame `memmon profile` must credit with
/// most of the sampled faults.
#[inline(never)]
fn touch_gamma(p: *mut u8, pages: u64) {
    touch(std::hint::black_box(p), pages);
}

/// The same, for the small share.
#[inline(never)]
fn touch_delta(p: *mut u8, pages: u64) {
    touch(std::hint::black_box(p), pages);
}

const BLOCK: usize = 4096;

/// Mallocs `blocks` 4 KiB blocks and never frees them (written, so they
/// are real); returns the bytes kept. Calls libc's malloc itself so that
/// the allocation's return address is in this frame.
#[inline(never)]
fn leak_alpha(blocks: u64) -> u64 {
    let mut kept = 0;
    for _ in 0..blocks {
        // SAFETY: plain malloc; the block is written within its size.
        let p = unsafe { libc::malloc(std::hint::black_box(BLOCK)) };
        if !p.is_null() {
            // SAFETY: p has BLOCK bytes.
            unsafe { std::ptr::write_volatile(p.cast::<u8>(), 1) };
            kept += BLOCK as u64;
        }
    }
    kept
}

/// Mallocs and frees `blocks` 4 KiB blocks, 64 live at a time.
#[inline(never)]
fn churn_beta(blocks: u64) {
    let mut live = [std::ptr::null_mut::<libc::c_void>(); 64];
    for i in 0..blocks as usize {
        let slot = &mut live[i % 64];
        // SAFETY: free of a pointer this loop malloc'ed (or null).
        unsafe { libc::free(*slot) };
        // SAFETY: plain malloc.
        *slot = unsafe { libc::malloc(std::hint::black_box(BLOCK)) };
        if !slot.is_null() {
            // SAFETY: BLOCK bytes.
            unsafe { std::ptr::write_volatile(slot.cast::<u8>(), 1) };
        }
    }
    for p in live {
        // SAFETY: malloc'ed above (or null).
        unsafe { libc::free(p) };
    }
}

/// A raw system call from this frame (x86-64), so the sampled user stack
/// starts here rather than in libc (which has no frame pointers).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn raw_syscall(nr: i64, a: [u64; 6]) -> i64 {
    let ret: i64;
    // SAFETY: a plain system call; rcx and r11 are clobbered by `syscall`.
    unsafe {
        std::arch::asm!(
            "syscall",
            inlateout("rax") nr => ret,
            in("rdi") a[0], in("rsi") a[1], in("rdx") a[2],
            in("r10") a[3], in("r8") a[4], in("r9") a[5],
            lateout("rcx") _, lateout("r11") _,
            options(nostack),
        );
    }
    ret
}

#[cfg(not(target_arch = "x86_64"))]
fn raw_syscall(nr: i64, a: [u64; 6]) -> i64 {
    // SAFETY: the same call through libc (frames of libc may be lost).
    unsafe { libc::syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]) }
}

/// Grows the break `pages` pages with brk(2) itself; returns the bytes.
#[inline(never)]
fn brk_theta(pages: u64) -> u64 {
    let start = raw_syscall(libc::SYS_brk, [0; 6]) as u64;
    let mut cur = start;
    for _ in 0..pages {
        let want = cur + PAGE as u64;
        let got = raw_syscall(libc::SYS_brk, [want, 0, 0, 0, 0, 0]) as u64;
        if got != want {
            break;
        }
        cur = got;
    }
    std::hint::black_box(cur - start)
}

fn mmap_mib() -> i64 {
    raw_syscall(
        libc::SYS_mmap,
        [
            0,
            1 << 20,
            (libc::PROT_READ | libc::PROT_WRITE) as u64,
            (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS) as u64,
            u64::MAX,
            0,
        ],
    )
}

/// Maps `mib` MiB, 1 MiB per mmap, and keeps them; returns the bytes.
#[inline(never)]
fn map_zeta(mib: u64) -> u64 {
    let mut kept = 0;
    for _ in 0..mib {
        if mmap_mib() > 0 {
            kept += 1 << 20;
        }
    }
    std::hint::black_box(kept)
}

/// Maps and unmaps `mib` MiB, 1 MiB at a time; returns the bytes.
#[inline(never)]
fn map_eta(mib: u64) -> u64 {
    let mut churned = 0;
    for _ in 0..mib {
        let p = mmap_mib();
        if p > 0 {
            raw_syscall(libc::SYS_munmap, [p as u64, 1 << 20, 0, 0, 0, 0]);
            churned += 1 << 20;
        }
    }
    std::hint::black_box(churned)
}

/// Levels of `many-stacks`' call paths (2^14 distinct paths).
const PATH_BITS: u32 = 14;

/// One level of path `i`: into `path_one` or `path_zero` by bit `level - 1`
/// of `i`, or the leaf at level 0.
#[inline(always)]
fn path_step(i: u64, level: u32) -> u64 {
    if level == 0 {
        leak_leaf()
    } else if (i >> (level - 1)) & 1 == 1 {
        path_one(i, level - 1)
    } else {
        path_zero(i, level - 1)
    }
}

/// A frame of a `many-stacks` path for a 0 bit (the add after the call
/// keeps it from being a tail call, so the frame stays on the stack).
#[inline(never)]
fn path_zero(i: u64, level: u32) -> u64 {
    std::hint::black_box(path_step(i, level)) + std::hint::black_box(0)
}

/// A frame of a `many-stacks` path for a 1 bit (a body unlike
/// `path_zero`'s, so the two are never merged into one function).
#[inline(never)]
fn path_one(i: u64, level: u32) -> u64 {
    std::hint::black_box(path_step(i, level)) ^ std::hint::black_box(0)
}

/// Mallocs one 64-byte block and keeps it; returns its size.
#[inline(never)]
fn leak_leaf() -> u64 {
    // SAFETY: plain malloc; the block is written within its size.
    let p = unsafe { libc::malloc(std::hint::black_box(64)) };
    if p.is_null() {
        return 0;
    }
    // SAFETY: p has 64 bytes.
    unsafe { std::ptr::write_volatile(p.cast::<u8>(), 1) };
    64
}

/// `pairs` malloc/free pairs of mixed sizes; one block in 64 is kept (a
/// known outstanding total). Returns (ns per pair, bytes kept).
#[inline(never)]
fn malloc_storm(pairs: u64) -> (f64, u64) {
    const SIZES: [usize; 8] = [16, 48, 128, 256, 1024, 4096, 16384, 65536];
    let start = std::time::Instant::now();
    let mut kept = 0u64;
    for i in 0..pairs as usize {
        let size = SIZES[i % SIZES.len()];
        // SAFETY: plain malloc, written within its size, freed once.
        let p = unsafe { libc::malloc(std::hint::black_box(size)) };
        if p.is_null() {
            continue;
        }
        // SAFETY: size bytes.
        unsafe { std::ptr::write_volatile(p.cast::<u8>(), 1) };
        if i % 64 == 63 {
            kept += size as u64;
        } else {
            // SAFETY: malloc'ed above.
            unsafe { libc::free(p) };
        }
    }
    let ns = start.elapsed().as_nanos() as f64 / pairs.max(1) as f64;
    (ns, kept)
}

fn touch_fresh(pages: u64) -> Result<(), String> {
    let p = map_anon(pages)?;
    touch(p, pages);
    Ok(())
}

fn cow(pages: u64, wait: bool) -> Result<(), String> {
    let p = map_anon(pages)?;
    touch(p, pages);
    // SAFETY: single-threaded program; the child only touches memory,
    // prints and exits.
    let child = unsafe { libc::fork() };
    if child < 0 {
        return Err(format!("fork: {}", std::io::Error::last_os_error()));
    }
    if child == 0 {
        let before = own_faults();
        for i in 0..pages as usize {
            // SAFETY: inherited mapping.
            unsafe { std::ptr::write_volatile(p.add(i * PAGE), 2) };
        }
        report(
            std::process::id(),
            before,
            &format!("\"pages\":{pages},\"role\":\"child\""),
        );
        if wait {
            wait_for_eof();
        }
        // SAFETY: leave without running the parent's atexit handlers.
        unsafe { libc::_exit(0) };
    }
    let mut status = 0;
    // SAFETY: waiting for our own child.
    unsafe { libc::waitpid(child, &mut status, 0) };
    Ok(())
}

fn read_file(path: &str) -> Result<u64, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("open {path}: {e}"))?;
    let len = file
        .metadata()
        .map_err(|e| format!("stat {path}: {e}"))?
        .len() as usize;
    if len == 0 {
        return Err(format!("{path} is empty"));
    }
    use std::os::fd::AsRawFd as _;
    // SAFETY: read-only private mapping of an open file, checked result.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_PRIVATE,
            file.as_raw_fd(),
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(format!("mmap {path}: {}", std::io::Error::last_os_error()));
    }
    // No readahead: one major fault per page.
    // SAFETY: advising our own mapping.
    unsafe { libc::madvise(p, len, libc::MADV_RANDOM) };
    let pages = len.div_ceil(PAGE);
    let mut sum = 0u64;
    for i in 0..pages {
        // SAFETY: within the mapping.
        sum += u64::from(unsafe { std::ptr::read_volatile(p.cast::<u8>().add(i * PAGE)) });
    }
    std::hint::black_box(sum);
    Ok(pages as u64)
}

/// Forks `count` children one after the other, each touching 16 pages
/// and exiting; each child's pid and its minor faults as the kernel
/// counted them to its end (the rusage wait4 reaps it with).
fn spawn(count: u64) -> Result<Vec<(u32, u64)>, String> {
    let mut pids = Vec::with_capacity(count as usize);
    for _ in 0..count {
        // SAFETY: the child only touches memory and calls _exit.
        let child = unsafe { libc::fork() };
        if child < 0 {
            return Err(format!("fork: {}", std::io::Error::last_os_error()));
        }
        if child == 0 {
            if let Ok(p) = map_anon(16) {
                touch(p, 16);
            }
            // SAFETY: immediate exit of the child.
            unsafe { libc::_exit(0) };
        }
        let mut status = 0;
        // SAFETY: reaping our own child into a zeroed rusage.
        let minflt = unsafe {
            let mut usage: libc::rusage = std::mem::zeroed();
            libc::wait4(child, &mut status, 0, &mut usage);
            usage.ru_minflt as u64
        };
        pids.push((child as u32, minflt));
    }
    Ok(pids)
}

/// A child and this process pass a byte back and forth over two pipes
/// `count` times (each round trip: two wake-ups and, on an idle machine,
/// four context switches); ns per round trip.
fn pingpong(count: u64) -> Result<f64, String> {
    let pipe = || -> Result<[libc::c_int; 2], String> {
        let mut fds = [0; 2];
        // SAFETY: pipe writes two descriptors into the array.
        if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
            return Err(format!("pipe: {}", std::io::Error::last_os_error()));
        }
        Ok(fds)
    };
    let (there, back) = (pipe()?, pipe()?);
    let mut byte = [0u8; 1];
    // SAFETY: the child only reads and writes its pipes, then exits.
    let child = unsafe { libc::fork() };
    if child < 0 {
        return Err(format!("fork: {}", std::io::Error::last_os_error()));
    }
    if child == 0 {
        for _ in 0..count {
            // SAFETY: one byte through descriptors the parent made.
            unsafe {
                if libc::read(there[0], byte.as_mut_ptr().cast(), 1) != 1
                    || libc::write(back[1], byte.as_ptr().cast(), 1) != 1
                {
                    libc::_exit(1);
                }
            }
        }
        // SAFETY: immediate exit of the child.
        unsafe { libc::_exit(0) };
    }
    let start = std::time::Instant::now();
    for _ in 0..count {
        // SAFETY: as in the child.
        let ok = unsafe {
            libc::write(there[1], byte.as_ptr().cast(), 1) == 1
                && libc::read(back[0], byte.as_mut_ptr().cast(), 1) == 1
        };
        if !ok {
            return Err(format!("pingpong: {}", std::io::Error::last_os_error()));
        }
    }
    let ns = start.elapsed().as_nanos() as f64 / count.max(1) as f64;
    let mut status = 0;
    // SAFETY: reaping our own child; closing our descriptors.
    unsafe {
        libc::waitpid(child, &mut status, 0);
        for fd in there.iter().chain(back.iter()) {
            libc::close(*fd);
        }
    }
    Ok(ns)
}

/// Grows the break `count` times by a page; returns the total growth.
fn grow_brk(count: u64) -> Result<u64, String> {
    // SAFETY: sbrk(0) only reads the current break.
    let start = unsafe { libc::sbrk(0) } as usize;
    for _ in 0..count {
        // SAFETY: grows the heap by one page; nothing else uses that space.
        if unsafe { libc::sbrk(PAGE as libc::intptr_t) } as isize == -1 {
            return Err(format!("sbrk: {}", std::io::Error::last_os_error()));
        }
    }
    // SAFETY: as above.
    let end = unsafe { libc::sbrk(0) } as usize;
    Ok((end - start) as u64)
}

/// Opens and closes /dev/null `count` times.
fn open_files(count: u64) -> Result<(), String> {
    for _ in 0..count {
        let f = std::fs::File::open("/dev/null").map_err(|e| format!("open /dev/null: {e}"))?;
        drop(f);
    }
    Ok(())
}

/// A `mib` MiB MAP_SHARED anonymous mapping, touched, then shared with a
/// forked child; returns the child's pid. Both hold it until stdin closes.
fn share(mib: u64) -> Result<u32, String> {
    let len = (mib as usize) << 20;
    // SAFETY: anonymous shared mapping, checked result.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(format!(
            "mmap shared {len} bytes: {}",
            std::io::Error::last_os_error()
        ));
    }
    touch(p.cast(), (len / PAGE) as u64);
    // SAFETY: single-threaded; the child only waits and exits.
    let child = unsafe { libc::fork() };
    if child < 0 {
        return Err(format!("fork: {}", std::io::Error::last_os_error()));
    }
    if child == 0 {
        // fork does not copy page tables of shared mappings: map every page
        // in the child too, so both processes hold all of it.
        let mut sum = 0u64;
        for i in 0..len / PAGE {
            // SAFETY: within the inherited mapping.
            sum += u64::from(unsafe { std::ptr::read_volatile(p.cast::<u8>().add(i * PAGE)) });
        }
        std::hint::black_box(sum);
        println!("{{\"child_ready\":true}}");
        flush();
        wait_for_eof();
        // SAFETY: leave without the parent's handlers.
        unsafe { libc::_exit(0) };
    }
    Ok(child as u32)
}

/// Touches `mib` MiB, one MiB at a time with `ms` milliseconds between:
/// a process that grows slowly enough for a sampler to watch it.
fn grow(mib: u64, ms: u64) -> Result<(), String> {
    let per = 256; // pages per MiB
    // On a wall-clock schedule (MiB i at start + i·ms), so a stalled
    // scheduler (a loaded TCG guest) is caught up and the rate holds.
    let start = std::time::Instant::now();
    for i in 0..mib {
        touch_fresh(per)?;
        let next = start + std::time::Duration::from_millis(ms * (i + 1));
        if let Some(wait) = next.checked_duration_since(std::time::Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    Ok(())
}

/// Forks `count` children that block until stdin reaches EOF (the caller
/// closes it), then exit; the parent reaps them after its own EOF wait.
fn idle(count: u64) -> Result<Vec<u32>, String> {
    let mut pids = Vec::with_capacity(count as usize);
    for _ in 0..count {
        // SAFETY: the child only reads stdin and calls _exit.
        let child = unsafe { libc::fork() };
        if child < 0 {
            return Err(format!("fork: {}", std::io::Error::last_os_error()));
        }
        if child == 0 {
            let mut buf = [0u8; 64];
            // SAFETY: reading into a local buffer until EOF or error.
            while unsafe { libc::read(0, buf.as_mut_ptr().cast(), buf.len()) } > 0 {}
            // SAFETY: immediate exit of the child.
            unsafe { libc::_exit(0) };
        }
        pids.push(child as u32);
    }
    Ok(pids)
}

/// `count` threads each touching `pages` fresh pages; odd ones are joined
/// (reaped), even ones park for the rest of the process's life.
fn threads(count: u64, pages: u64) -> Result<(), String> {
    let mut exiting = Vec::new();
    for i in 0..count {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let handle = std::thread::Builder::new()
            .spawn(move || {
                let touched = touch_fresh(pages);
                let _ = tx.send(());
                if i % 2 == 0 {
                    loop {
                        std::thread::park();
                    }
                }
                touched
            })
            .map_err(|e| format!("thread: {e}"))?;
        // Touched before the next starts: the report after them is final.
        rx.recv().map_err(|e| format!("thread {i}: {e}"))?;
        if i % 2 == 1 {
            exiting.push(handle);
        }
    }
    for h in exiting {
        h.join().map_err(|_| "a thread panicked".to_string())??;
    }
    Ok(())
}

/// `pairs` mmap/munmap pairs of 64 KiB anonymous memory, untouched; ns per
/// pair measured here.
fn mmap_storm(pairs: u64) -> Result<f64, String> {
    const LEN: usize = 64 * 1024;
    let start = std::time::Instant::now();
    for _ in 0..pairs {
        // SAFETY: anonymous mapping, checked, unmapped at once.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                LEN,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(format!("mmap: {}", std::io::Error::last_os_error()));
        }
        // SAFETY: unmapping what we just mapped.
        unsafe { libc::munmap(p, LEN) };
    }
    Ok(start.elapsed().as_nanos() as f64 / pairs.max(1) as f64)
}

/// Touches `mib` MiB of fresh memory per round, `rounds` times; returns
/// the ns per fault of each round, measured here.
/// Touches `mib` of fresh memory per round, `rounds` rounds and then more
/// until `at_least` has passed since the first: ns per fault of each.
fn fault_storm(mib: u64, rounds: u64, at_least: std::time::Duration) -> Result<Vec<f64>, String> {
    let pages = mib * 1024 * 1024 / PAGE as u64;
    let mut out = Vec::new();
    let began = std::time::Instant::now();
    while (out.len() as u64) < rounds || began.elapsed() < at_least {
        let p = map_anon(pages)?;
        let start = std::time::Instant::now();
        touch(p, pages);
        let ns = start.elapsed().as_nanos() as f64 / pages as f64;
        out.push(ns);
        // SAFETY: unmapping what map_anon returned.
        unsafe { libc::munmap(p.cast(), pages as usize * PAGE) };
    }
    Ok(out)
}

/// `VmSwap` of this process in kB (/proc/self/status), 0 when absent.
fn own_vmswap_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmSwap:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Touches `mib` MiB (report 1), waits for a line, reads every page back
/// (report 2). Each report carries its own VmSwap.
fn thrash(pid: u32, mib: u64) -> Result<(), String> {
    use std::sync::atomic::{AtomicBool, Ordering};
    static DONE: AtomicBool = AtomicBool::new(false);
    let pages = mib * 1024 * 1024 / PAGE as u64;
    let p = map_anon(pages)?;
    let before = own_faults();
    touch(p, pages);
    report(
        pid,
        before,
        &format!("\"phase\":\"touched\",\"pages\":{pages}"),
    );
    std::thread::spawn(|| {
        wait_for_eof();
        DONE.store(true, Ordering::Relaxed);
    });
    let mut round = 0u8;
    while !DONE.load(Ordering::Relaxed) {
        round = round.wrapping_add(1);
        for i in 0..pages as usize {
            // SAFETY: within the mapping.
            unsafe { std::ptr::write_volatile(p.add(i * PAGE), round) };
            if i % 4096 == 0 && DONE.load(Ordering::Relaxed) {
                break;
            }
        }
    }
    Ok(())
}

fn step(pid: u32, from_mib: u64, to_mib: u64, wait: bool) -> Result<(), String> {
    let pages = |mib: u64| mib * 1024 * 1024 / PAGE as u64;
    let first = pages(from_mib);
    let p = map_anon(first)?;
    let before = own_faults();
    touch(p, first);
    report(
        pid,
        before,
        &format!("\"phase\":\"from\",\"pages\":{first}"),
    );
    if wait {
        read_line();
    }
    let more = pages(to_mib.saturating_sub(from_mib));
    let before = own_faults();
    let q = map_anon(more)?;
    touch(q, more);
    report(pid, before, &format!("\"phase\":\"to\",\"pages\":{more}"));
    if wait {
        wait_for_eof();
    }
    Ok(())
}

fn swap_cycle(pid: u32, mib: u64, wait: bool) -> Result<(), String> {
    let pages = mib * 1024 * 1024 / PAGE as u64;
    let p = map_anon(pages)?;
    let before = own_faults();
    touch(p, pages);
    report(
        pid,
        before,
        &format!(
            "\"phase\":\"touched\",\"pages\":{pages},\"vmswap_kb\":{}",
            own_vmswap_kb()
        ),
    );
    if wait {
        read_line();
    }
    let before = own_faults();
    let mut sum = 0u64;
    for i in 0..pages as usize {
        // SAFETY: within the mapping.
        sum += u64::from(unsafe { std::ptr::read_volatile(p.add(i * PAGE)) });
    }
    report(
        pid,
        before,
        &format!(
            "\"phase\":\"read_back\",\"pages\":{pages},\"sum\":{sum},\"vmswap_kb\":{}",
            own_vmswap_kb()
        ),
    );
    if wait {
        wait_for_eof();
    }
    Ok(())
}
