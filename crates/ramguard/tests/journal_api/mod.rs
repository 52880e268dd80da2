//! Helpers for the journal tests that drive its API (`journal.rs`, `journal_compat.rs`).

#![allow(dead_code)] // each test binary uses some of them

use std::path::PathBuf;

use ramguard::journal::{fingerprint, AttemptEnd, NewTask, SweepSpec};
use ramguard_core::policy::{Ending, ExitClass};
use serde_json::json;

pub fn spec(name: &str, template: &str) -> SweepSpec {
    let settings = json!({"jobs": 2, "threads": 1});
    SweepSpec {
        name: name.into(),
        fingerprint: fingerprint(template, &settings),
        template: template.into(),
        settings,
    }
}

pub fn tasks(n: usize) -> Vec<NewTask> {
    (0..n)
        .map(|i| NewTask {
            key: format!("lam={i}"),
            params: json!({ "lam": i }),
            argv: vec!["python".into(), "t.py".into(), format!("--lam={i}")],
        })
        .collect()
}

pub fn end(class: &str, peak: u64, requeued: bool, result: Option<&str>) -> AttemptEnd {
    AttemptEnd {
        ended_unix_ms: 1_700_000_001_000,
        duration_ms: 1000,
        peak_rss: peak,
        peak_pss: None,
        peak: None,
        peak_shm: None,
        peak_virt: None,
        shm_left: None,
        shm_removed: None,
        class: ExitClass::parse(class).expect("a known exit class"),
        ending: Some(Ending::Exited {
            code: if class == "done" { 0 } else { 1 },
        }),
        reason: format!("{class} for the test"),
        requeued,
        result: result.map(str::to_string),
    }
}

pub fn tmp() -> (tempfile::TempDir, PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join(".ramguard").join("journal.db");
    (d, p)
}

pub fn err_of<T: std::fmt::Debug>(r: anyhow::Result<T>) -> String {
    format!("{:#}", r.expect_err("expected an error"))
}
