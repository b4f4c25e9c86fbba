//! Optional per-layer timing for benchmarks: off by default, one atomic load per layer when off.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

static ENABLED: AtomicBool = AtomicBool::new(false);
static TOTALS: Mutex<BTreeMap<String, (Duration, u64)>> = Mutex::new(BTreeMap::new());

/// Turns recording on or off and clears what was recorded.
pub fn enable(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
    TOTALS.lock().expect("profile lock").clear();
}

/// A timing scope: records its lifetime under a name when dropped, if recording was on when it
/// began (the name is only built then).
pub struct Scope(Option<(String, Instant)>);

/// Starts a timing scope named by `name`.
pub fn scope(name: impl FnOnce() -> String) -> Scope {
    Scope(ENABLED.load(Ordering::Relaxed).then(|| (name(), Instant::now())))
}

impl Drop for Scope {
    fn drop(&mut self) {
        if let Some((name, start)) = self.0.take() {
            let mut t = TOTALS.lock().expect("profile lock");
            let e = t.entry(name).or_default();
            e.0 += start.elapsed();
            e.1 += 1;
        }
    }
}

/// What was recorded: name, total time, calls.
pub fn report() -> Vec<(String, Duration, u64)> {
    TOTALS.lock().expect("profile lock").iter().map(|(k, (d, n))| (k.clone(), *d, *n)).collect()
}
