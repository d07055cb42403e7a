//! The `portcullis` binary: see `portcullis --help` and `docs/cli.md`.

/// mimalloc in place of glibc's allocator: glibc's malloc and free were about an eighth of
/// the server's CPU under refresh load (`perf`); see docs/architecture.md, "mimalloc". Built
/// without transparent huge pages (`no_thp`), which took start-up from 56 to 114 ms and idle
/// memory from 21 to 48 MiB.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc's `mi_option_t` (v3 `include/mimalloc.h`), which the
/// bindings do not name.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

fn main() -> std::process::ExitCode {
    // Memory freed goes back to the system at once. By default mimalloc returns it one second
    // later, on a later call into the allocator, which an idle server does not make: idle
    // memory was 41 MiB instead of 23.
    // SAFETY: sets a plain integer option; mimalloc reads options atomically.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0) };
    portcullis::cli::run()
}
