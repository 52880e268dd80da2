//! The host's page size as a captured tree states it (a watchdog's `min-memory` is a
//! count of pages).

use super::Root;

/// The page size a captured tree states: `KernelPageSize` in `proc/self/smaps`, or
/// `AT_PAGESZ` in `proc/self/auxv`; `None` when it says neither.
pub fn tree_page_size(root: &Root) -> Option<u64> {
    if let Ok(t) = std::fs::read_to_string(root.path("/proc/self/smaps")) {
        if let Some(kib) = t.lines().find_map(|l| {
            let rest = l.strip_prefix("KernelPageSize:")?;
            rest.split_whitespace().next()?.parse::<u64>().ok()
        }) {
            return Some(kib * 1024);
        }
    }
    let auxv = std::fs::read(root.path("/proc/self/auxv")).ok()?;
    auxv_page_size(&auxv)
}

/// Finds `AT_PAGESZ` (6) in a native-endian 64-bit auxiliary vector.
pub fn auxv_page_size(bytes: &[u8]) -> Option<u64> {
    const AT_PAGESZ: u64 = 6;
    let word = |c: &[u8]| u64::from_ne_bytes(c.try_into().unwrap_or([0; 8]));
    bytes
        .chunks_exact(16)
        .map(|p| (word(&p[..8]), word(&p[8..])))
        .take_while(|(k, _)| *k != 0)
        .find(|(k, _)| *k == AT_PAGESZ)
        .map(|(_, v)| v)
}
