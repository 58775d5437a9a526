//! `cumemlab probe`: how much can really be allocated, per strategy. Two figures each: the largest
//! single allocation (a bisection between a size verified to work and the limit, to a resolution)
//! and the cumulative maximum (chunks held at once until the first failure or the limit). Each is
//! reported beside the accounting taken just before it (`cuMemGetInfo` free/total, MemFree,
//! MemAvailable, Cached, SwapFree) and says why it stopped: at a failure
//! (`CUDA_ERROR_OUT_OF_MEMORY` is a result, any other error is an error naming its call), at the
//! safety ceiling, or at the `--max` cap.
//!
//! Safety (DESIGN.md): every attempt is checked against the ceiling re-read just before it
//! ([`crate::memory::safety::Budget`]: on unified memory MemAvailable minus the headroom, which falls as memory is taken;
//! on discrete cards the card's free memory for device-backed and managed strategies, the host's
//! MemAvailable minus the headroom for host-backed ones). The search approaches the limit from
//! below: its first guess is one resolution step under the ceiling. `--force` lifts the ceiling
//! (with a printed warning) except for managed memory on a discrete card, which never goes past
//! `cuMemGetInfo` free (more can hang the GPU). Everything is freed on every path: attempts free
//! what they took before returning, held chunks are owned by a vector whose drop frees them, and
//! Ctrl-C ends the search at the next attempt with the figure found so far (exit 130).
//!
//! The search itself ([`bisect`], [`accumulate`]) is pure over two callbacks (the limit now, one
//! attempt), so it is tested without a GPU against simulated allocators.
//!
//! Layout: `search` (the pure searches), `limits` (ceilings, caps, the sentences),
//! `options` and `row` (typed options and the row), `runner` (wired to the GPU),
//! `render` (text), `cli` (`main`).

mod cli;
mod limits;
mod options;
mod render;
mod row;
mod runner;
mod search;

pub use cli::{ProbeArgs, main};
pub use limits::{
    DEFAULT_HOST_CAP_BYTES, MaxSel, PhysicalBounds, ceiling_limit, ceiling_reason, chunk_limit,
    with_cap,
};
pub use options::{KindSel, ProbeOptions, default_strategies};
pub use render::render;
pub use row::{ProbeDoc, ProbeKind, ProbeRow, budget_of};
pub use runner::{probe_one, run, run_gpu};
pub use search::{ALIGN_BYTES, Attempt, Bound, Limit, Search, StopReason, accumulate, bisect};

use limits::stop_detail;
use search::align_down;
