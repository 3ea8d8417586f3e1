//! The C allocator (glibc malloc, which Rust's `System` allocator is on Linux): two settings
//! that bound pfd-host's resident memory without touching the request path.
//!
//! pfd-host's own allocations are request bodies (a `/predict` body is 1 MB, a batch 130 MB),
//! ONNX Runtime's buffers and, once, Cranelift's compile of the component. glibc serves threads
//! from per-thread arenas and keeps freed memory in them; both choices suit small allocations
//! spread over many threads, and both leave a server like this one holding memory it is done
//! with. Every figure below was measured on 2 cores with `scripts/load_bench.py`'s body and wrk.

/// Caps glibc's malloc arenas at the number of cores, unless `MALLOC_ARENA_MAX` is set (then
/// glibc reads that itself). Call first thing in `main`, before any thread allocates.
///
/// Why: glibc creates up to 8 arenas per core as threads contend, and memory freed in one arena
/// is never reused by another. Under load, tokio's workers, wasmtime's fibers and ONNX Runtime's
/// calls spread 1 MB bodies over many arenas, each keeping its high-water mark: `/predict` at
/// 64 concurrent clients peaked at 379–397 MiB RSS; with one arena per core, 242–250 MiB (and 161
/// against 233–237 MiB at 16 clients), at the same CPU per request (3.38–3.41 ms against
/// 3.37–3.38 ms) and throughput. One arena per core is glibc's own sizing for
/// `MALLOC_ARENA_MAX`-tuned servers: threads that run at once rarely contend.
pub fn limit_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let cores = libc::c_int::try_from(cores).unwrap_or(libc::c_int::MAX);
        // SAFETY: mallopt only sets an allocator parameter; M_ARENA_MAX takes any positive count.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, cores);
        }
    }
}

/// Hands the allocator's free memory back to the OS (`malloc_trim`).
///
/// Why after loading the component: compiling it (a cache miss: a container's first start, a
/// new build) peaks at hundreds of MB of Cranelift heap, all freed by the time it finishes, but
/// kept by glibc — a server that had compiled at startup sat at ~600 MiB RSS for its whole life,
/// against ~111 MiB when it loaded the cached artifact (164 MiB with this call and the runtime
/// serving the stored artifact instead of the compiled one). It walks the free lists once, at
/// startup, never on the request path.
pub fn release_free_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim has no preconditions; it only returns free pages to the kernel.
    unsafe {
        libc::malloc_trim(0);
    }
}
