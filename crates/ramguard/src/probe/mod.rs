//! The probe: reads facts about the host and about processes, and never decides anything.
//!
//! Every number it returns says where it came from (meminfo, cgroup v1, cgroup v2, PSI).
//! All reads go through a [`Root`] so tests point it at captured fixture trees. Parsing and
//! the arithmetic of limits live in `ramguard-core`; this module only opens files.

pub mod daemons;
pub mod host;
pub mod killers;
pub mod pages;
pub mod process;
mod root;
pub mod shm;

pub use host::{report, HostReport, MemoryWatch};
pub use root::Root;
