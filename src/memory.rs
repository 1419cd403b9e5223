//! Allocator and memory settings of the process, applied by `main` before anything else runs
//! (and by the benchmarks that claim to measure the daemon as it runs in production).

/// Apply every setting below. Call it first thing in `main`, before other threads exist.
/// Each one leaves a setting the environment already made alone.
pub fn tune_allocators() {
    limit_malloc_arenas();
    disable_transparent_huge_pages();
    purge_freed_memory_at_once();
}

/// mimalloc keeps the pages a thread frees for `purge_delay` (1 s in v3) and purges them only
/// when that thread touches the allocator again, so what a burst (a 5 000-line batch, a
/// profiler pass) freed on threads that then go quiet stays resident. Purging at once took the
/// daemon from 230 to 166 MiB peak and 200 to 114 MiB after a 100 000-line live ingest, at the
/// same throughput. `MIMALLOC_PURGE_DELAY` in the environment still wins.
fn purge_freed_memory_at_once() {
    /// `mi_option_purge_delay`: index 15 of `mi_option_e` in mimalloc v2 and v3 (the sys crate
    /// names no constant for it).
    const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets one allocator option; any value is valid and takes effect on later
        // frees.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0) };
    }
}

/// With transparent huge pages on `always` (the default of many distributions), the kernel
/// backs mimalloc's 1 GiB arena with 2 MiB pages, so a few small allocations spread over a
/// region make whole 2 MiB pages resident: the daemon idled at 73–77 MiB RSS with 45–50 MiB of
/// it anonymous, 40–41 MiB (13–14 MiB anonymous) without. Huge pages buy a daemon of many
/// small allocations nothing measurable, so they are off for this process
/// (`PR_SET_THP_DISABLE`, an mm flag the kernel checks at every fault, so it also covers what
/// the allocator mapped before `main`). `MIMALLOC_ALLOW_THP=1` in the environment keeps them.
fn disable_transparent_huge_pages() {
    if std::env::var_os("MIMALLOC_ALLOW_THP").is_some_and(|v| v != "0") {
        return;
    }
    // SAFETY: prctl with integer arguments only; it changes one flag of this process.
    let rc = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
    if rc != 0 {
        // Kernels without THP support refuse it: nothing to disable then.
        eprintln!(
            "decnetd: could not disable transparent huge pages: {}",
            std::io::Error::last_os_error()
        );
    }
}

/// SQLite allocates through the C library's malloc, and glibc gives every thread that
/// allocates concurrently an arena of its own (up to 8 per core) that keeps what was freed in
/// it. The database runs on the blocking pool's threads, so after an API load the process held
/// 13 such arenas of 11–44 MiB each (294 MiB RSS); two arenas: 159 MiB, same req/s.
/// `MALLOC_ARENA_MAX` in the environment still wins.
#[cfg(target_env = "gnu")]
fn limit_malloc_arenas() {
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt with integer arguments, before any other thread exists.
        unsafe { libc::mallopt(libc::M_ARENA_MAX, 2) };
    }
}

#[cfg(not(target_env = "gnu"))]
fn limit_malloc_arenas() {}

/// Free bytes the C library's heap may hold before the API's 2 s beat hands them back
/// ([`release_free_heap`]).
pub const FREE_HEAP_TRIM_BYTES: usize = 8 << 20;

/// Bytes the C library's malloc holds free (in its arenas, not returned to the system).
#[cfg(target_env = "gnu")]
pub fn free_heap_bytes() -> usize {
    // SAFETY: mallinfo2 takes no argument and returns a plain struct.
    let info = unsafe { libc::mallinfo2() };
    info.fordblks.saturating_add(info.fsmblks)
}

#[cfg(not(target_env = "gnu"))]
pub fn free_heap_bytes() -> usize {
    0
}

/// Hand back what mimalloc holds freed on the calling thread. Its pages freed on a thread are
/// purged when that thread next allocates (see `purge_freed_memory_at_once`); a blocking-pool
/// thread that built a 13 MB page and then sat idle kept them until it exited (tokio lets it
/// live 10 s): RSS right after a credential-reuse load was ~140 MiB, ~75 MiB 20 s later.
pub fn release_thread_heap() {
    // SAFETY: mi_collect takes no pointer; it only returns memory the allocator holds unused.
    unsafe { libmimalloc_sys::mi_collect(false) };
}

/// Hand the C library's free heap memory back to the system. SQLite allocates with malloc
/// (sorts, statement caches, result rows, the clustering ticks' `VALUES` statements) on the
/// blocking pool's threads; glibc returns only what sits at the top of a heap on its own, so
/// after a burst the freed middle of its arenas stayed resident: after a 100 000-line live
/// ingest with the clusterers on, 158 MiB RSS before a `malloc_trim`, 73 MiB after. It walks
/// the arenas once: 1–3 ms with 100 MB free in 25 000 holes (`malloc_trim` timed from Python's
/// ctypes on this VM). Trimmed memory still counts as free in [`free_heap_bytes`], so the API's
/// beat repeats it every 2 s while that stays above [`FREE_HEAP_TRIM_BYTES`]: about 0.05 % of a
/// core in the worst case measured.
pub fn release_free_heap() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim takes no pointer and only releases memory malloc holds unused.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(all(test, target_env = "gnu"))]
mod tests {
    use super::*;

    #[test]
    fn freed_small_blocks_show_as_free_heap() {
        // 32 MiB in 4 KiB blocks; every other one is freed, so the holes cannot merge into
        // the top of the heap (which free itself returns to the system).
        let blocks: Vec<*mut libc::c_void> = (0..8192)
            // SAFETY: plain malloc; every pointer is checked and freed once below.
            .map(|_| unsafe { libc::malloc(4096) })
            .collect();
        assert!(blocks.iter().all(|b| !b.is_null()));
        let before = free_heap_bytes();
        for b in blocks.iter().step_by(2) {
            // SAFETY: from malloc above, freed once.
            unsafe { libc::free(*b) };
        }
        let after = free_heap_bytes();
        release_free_heap();
        for b in blocks.iter().skip(1).step_by(2) {
            // SAFETY: from malloc above, freed once.
            unsafe { libc::free(*b) };
        }
        assert!(
            after >= before + (8 << 20),
            "16 MiB freed in holes, free heap {before} → {after} bytes"
        );
    }
}
