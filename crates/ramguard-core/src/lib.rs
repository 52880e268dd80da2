//! ramguard's pure core.
//!
//! Everything in this crate is deterministic: it parses text that the binary read from
//! `/proc` and `/sys`, computes limits and headroom from those facts, and (later) runs the
//! admission/brake policy as a state machine driven by samples and a caller-supplied clock.
//! It never opens a file, reads the clock or touches a process; the crate's dependency list
//! is how the compiler enforces that (`Cargo.toml` has no I/O crates).

pub mod findings;
pub mod limits;
pub mod parse;
pub mod policy;
pub mod profile;
pub mod tasks;
pub mod units;

pub use units::{Bytes, SizeSpec};
