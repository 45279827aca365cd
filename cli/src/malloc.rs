//! The data plane's allocator setting: glibc's per-thread cache made deep
//! enough for a proxy's bursts, by starting the process again with
//! `GLIBC_TUNABLES` (glibc reads it once, before `main`; no call sets it).
//!
//! Why: each request allocates its boxed futures (under 1 KB each) and
//! frees them when its answer ends. Under load the answers end in bursts,
//! one per ready socket of an event-loop turn; glibc's thread cache keeps 7
//! freed blocks of a size, and the rest of a burst goes to the shared bins,
//! where freeing merges neighbours and allocating sorts and splits them
//! again. With room for 256, a request's blocks are the ones the last
//! answers freed: about 1,100 instructions a request fewer at 50 and 200
//! connections, and fewer cache misses (`bench/proxy.sh --cachesim`,
//! docs/PERFORMANCE.md). Other allocators (mimalloc, jemalloc) were tried
//! and cost idle memory or gained less.
//!
//! An operator's own `GLIBC_TUNABLES` that sets `tcache_count` wins (and
//! turns this off); other tunables in it are kept.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::process::Command;

const TUNABLE: &str = "glibc.malloc.tcache_count";
/// Above the connections one event-loop turn serves at the loads measured.
const COUNT: u32 = 256;

/// Starts this process again with the cache's depth set, unless it is set
/// already (as it is after the restart) or this is not a glibc build. Only
/// returns if it did not restart: nothing set, or `exec` failed (then the
/// data plane runs on glibc's defaults).
pub fn tune() {
    if !cfg!(all(target_os = "linux", target_env = "gnu")) {
        return;
    }
    let Some(value) = tunables(std::env::var_os("GLIBC_TUNABLES")) else {
        return;
    };
    // The path /proc/self/exe names (not that link itself: under valgrind
    // it is valgrind, which answers the link's reading with this binary).
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => return eprintln!("turnpike: {TUNABLE} not set, no path to this binary: {e}"),
    };
    let mut args = std::env::args_os();
    let arg0 = args.next().unwrap_or_else(|| exe.clone().into());
    let err = Command::new(&exe)
        .arg0(arg0)
        .args(args)
        .env("GLIBC_TUNABLES", value)
        .exec();
    eprintln!(
        "turnpike: could not restart with {TUNABLE} set ({err}); running on glibc's defaults"
    );
}

/// `GLIBC_TUNABLES` with the cache's depth added, or `None` if it names it.
fn tunables(current: Option<OsString>) -> Option<OsString> {
    let set = format!("{TUNABLE}={COUNT}");
    match current {
        Some(v) if v.to_string_lossy().contains(TUNABLE) => None,
        Some(v) if !v.is_empty() => {
            let mut v = v;
            v.push(":");
            v.push(set);
            Some(v)
        }
        _ => Some(set.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_depth_is_added_to_what_is_there_and_never_twice() {
        let set = "glibc.malloc.tcache_count=256";
        assert_eq!(tunables(None), Some(set.into()));
        assert_eq!(tunables(Some("".into())), Some(set.into()));
        assert_eq!(
            tunables(Some("glibc.malloc.arena_max=2".into())),
            Some(format!("glibc.malloc.arena_max=2:{set}").into())
        );
        assert_eq!(tunables(Some("glibc.malloc.tcache_count=7".into())), None);
        assert_eq!(tunables(Some(set.into())), None);
    }
}
