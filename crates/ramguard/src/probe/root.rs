//! Every file the probe reads goes through a [`Root`], so that tests and `--root` can point
//! the probe at a captured tree (`tests/fixtures/hosts/<name>/`) instead of `/`.
//!
//! Paths are always written as they are on the probed host (`/proc/meminfo`); the root
//! prefix is added here and shown in error messages, so a user sees the file that failed.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// Reads a whole file into a string with one buffer sized for /proc and /sys files.
///
/// `std::fs::read_to_string` trusts the file's size, which is 0 for procfs, and so grows
/// its buffer from 32 bytes: eight `read` calls for `/proc/meminfo`. The supervisor reads
/// such files dozens of times a second, so two calls matter.
pub fn read_text(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut buf = Vec::with_capacity(8192);
    f.read_to_end(&mut buf)?;
    String::from_utf8(buf).map_err(|e| std::io::Error::new(ErrorKind::InvalidData, e))
}

/// The directory that stands for `/` on the probed host.
#[derive(Debug, Clone)]
pub struct Root {
    base: PathBuf,
}

impl Root {
    /// The live host.
    pub fn host() -> Root {
        Root {
            base: PathBuf::from("/"),
        }
    }

    /// A captured tree; refuses a directory that does not exist.
    pub fn at(base: impl Into<PathBuf>) -> Result<Root> {
        let base = base.into();
        match std::fs::metadata(&base) {
            Ok(m) if m.is_dir() => Ok(Root { base }),
            Ok(_) => bail!("probe root '{}' is not a directory", base.display()),
            Err(e) if e.kind() == ErrorKind::NotFound => {
                bail!("probe root '{}' does not exist", base.display())
            }
            Err(e) => {
                Err(e).with_context(|| format!("cannot open probe root '{}'", base.display()))
            }
        }
    }

    /// Returns true if and only if this root is the live host's `/`.
    pub fn is_host(&self) -> bool {
        self.base == Path::new("/")
    }

    pub fn base(&self) -> &Path {
        &self.base
    }

    /// Maps a host path (`/proc/meminfo`) to the file under this root.
    pub fn path(&self, host_path: &str) -> PathBuf {
        self.base.join(host_path.trim_start_matches('/'))
    }

    /// Reads a file that must exist.
    pub fn read(&self, host_path: &str) -> Result<String> {
        let p = self.path(host_path);
        read_text(&p).with_context(|| format!("cannot read {}", p.display()))
    }

    /// Reads a file that may legitimately be absent (`None`); any other failure is an error.
    pub fn read_opt(&self, host_path: &str) -> Result<Option<String>> {
        let p = self.path(host_path);
        match read_text(&p) {
            Ok(s) => Ok(Some(s)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", p.display())),
        }
    }

    /// Reads a file whose absence or unreadability only means the fact is unknown: PSI
    /// files exist but fail with `EOPNOTSUPP` on kernels booted with `psi=0`.
    pub fn read_lenient(&self, host_path: &str) -> Option<String> {
        read_text(&self.path(host_path)).ok()
    }

    /// Parses a file with a core parser, naming the file in any error.
    pub fn parse<T, E: std::fmt::Display>(
        &self,
        host_path: &str,
        text: &str,
        parser: impl FnOnce(&str) -> Result<T, E>,
    ) -> Result<T> {
        parser(text).map_err(|e| anyhow::anyhow!("{}: {e}", self.path(host_path).display()))
    }
}
