//! Randomized differential send/receive: seeded operations in a subvolume, read-only snapshots
//! at random points, the first sent in full and each later one incrementally against the one
//! before, all received on another filesystem and compared with their sources. A failure is
//! shrunk to a minimal list of operations, kept as the seed with the list of indices and as a
//! shell script that reproduces it by hand.
//!
//! The parts: `soak` (the case's loop over seeds), `chain` (one list's snapshots, sends,
//! receives and comparisons), `noise` (what runs beside a chain in the concurrent variant),
//! `keep` (shrinking a failure and keeping it), `script` (the standalone reproducer), and
//! `ops` (with `wide`, the wider generator's operations), `shrink` and `known` beneath them.

mod breakage;
mod chain;
mod compression;
pub mod fstests;
mod keep;
pub mod known;
mod noise;
pub mod ops;
mod parents;
mod receive;
mod refusal;
mod replay;
pub mod reshape;
mod script;
pub mod shrink;
mod soak;
pub mod staged;
pub mod stream_sign;
mod verbosity;
pub mod wide;

pub use chain::{what_differs, ChainFailure, Chains, Checked, Verdict, FAILED_DUMP, FAILED_STREAM};
pub use compression::Compression;
pub use keep::{shrink_and_keep, Found};
pub use known::{KnownBug, Replay, Sends};
pub use ops::{Falloc, Op, Sharing};
pub use parents::Parents;
pub use receive::Receive;
pub use replay::{replay, Protocol, FSTESTS_TEST};
pub use script::{script, ScriptOptions};
pub use soak::{run_seeds, seeds_ran, Setup, DEFAULT_OPS, DEFAULT_SNAPSHOTS};
pub use stream_sign::StreamSign;
pub use verbosity::Verbosity;
