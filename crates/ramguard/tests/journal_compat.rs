//! Journals ramguard did not write this run: a newer schema, garbage and foreign databases
//! (refused untouched), and the v1 fixture, which must open, migrate and resume forever.

mod journal_api;

use journal_api::*;

use std::path::{Path, PathBuf};

use ramguard::journal::{Journal, MemSample, NewTask, SCHEMA_VERSION};
use serde_json::json;

#[test]
fn a_journal_from_a_newer_ramguard_is_refused() {
    let (_d, path) = tmp();
    drop(Journal::open(&path).unwrap());
    let c = rusqlite::Connection::open(&path).unwrap();
    c.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
        .unwrap();
    drop(c);
    let before = std::fs::read(&path).unwrap();
    for msg in [
        err_of(Journal::open(&path)),
        err_of(Journal::open_existing(&path)),
    ] {
        assert!(msg.contains("newer ramguard"), "{msg}");
        assert!(msg.contains(&format!("v{}", SCHEMA_VERSION + 1)), "{msg}");
    }
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

#[test]
fn garbage_and_foreign_databases_are_refused_untouched() {
    let d = tempfile::tempdir().unwrap();
    let garbage = d.path().join("garbage.db");
    std::fs::write(
        &garbage,
        b"this is not a database at all, just text\n".repeat(200),
    )
    .unwrap();
    let before = std::fs::read(&garbage).unwrap();
    let msg = err_of(Journal::open(&garbage));
    assert!(msg.contains("garbage.db"), "{msg}");
    assert_eq!(std::fs::read(&garbage).unwrap(), before);

    // A real journal cut in half: refused by the writer too, before any write.
    let (_d2, good) = tmp();
    {
        let mut j = Journal::open(&good).unwrap();
        let sw = j.begin_sweep(&spec("s", "cmd"), false).unwrap();
        j.sync_tasks(&sw, &tasks(2000)).unwrap();
    }
    let bytes = std::fs::read(&good).unwrap();
    let truncated = d.path().join("truncated.db");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let msg = err_of(Journal::open(&truncated).and_then(|mut j| {
        let sw = j.begin_sweep(&spec("s", "cmd"), false)?;
        j.sync_tasks(&sw, &tasks(3000))
    }));
    assert!(msg.contains("truncated.db"), "{msg}");
    assert_eq!(
        std::fs::read(&truncated).unwrap(),
        &bytes[..bytes.len() / 2]
    );

    let foreign = d.path().join("foreign.db");
    let c = rusqlite::Connection::open(&foreign).unwrap();
    c.execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1);")
        .unwrap();
    drop(c);
    let before = std::fs::read(&foreign).unwrap();
    let msg = err_of(Journal::open(&foreign));
    assert!(msg.contains("not a ramguard journal"), "{msg}");
    assert_eq!(std::fs::read(&foreign).unwrap(), before);
}

fn fixture_v1() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/journals/v1.db")
}

/// Builds the content of the committed v1 fixture.
fn write_v1_content(path: &Path) {
    let mut j = Journal::open(path).unwrap();
    let sw = j
        .begin_sweep(
            &spec("lam-sweep", "python t3b.py --lam {lam} --beta {beta}"),
            false,
        )
        .unwrap();
    let ts: Vec<NewTask> = [
        ("0", "3.0"),
        ("1e-10", "3.0"),
        ("0", "3.1"),
        ("1e-10", "3.1"),
    ]
    .iter()
    .map(|(l, b)| NewTask {
        key: format!("beta={b} lam={l}"),
        params: json!({"lam": l, "beta": b}),
        argv: vec![
            "python".into(),
            "t3b.py".into(),
            "--lam".into(),
            l.to_string(),
            "--beta".into(),
            b.to_string(),
        ],
    })
    .collect();
    j.sync_tasks(&sw, &ts).unwrap();
    let t0 = 1_763_900_000_000;
    let a = j.attempt_started(&sw, &ts[0].key, 1, 1001, t0).unwrap();
    j.add_samples(
        a,
        &[
            MemSample {
                t_ms: 100,
                rss: 100 << 20,
                pss: Some(90 << 20),
                ..Default::default()
            },
            MemSample {
                t_ms: 200,
                rss: 234 << 20,
                pss: Some(200 << 20),
                ..Default::default()
            },
        ],
    )
    .unwrap();
    let mut e = end(
        "done",
        234 << 20,
        false,
        Some(r#"{"sharpe": 1.25, "trades": 40}"#),
    );
    e.peak_pss = Some(200 << 20);
    j.attempt_finished(a, &e).unwrap();
    let b = j.attempt_started(&sw, &ts[1].key, 1, 1002, t0).unwrap();
    j.attempt_finished(b, &end("braked", 2 << 30, true, None))
        .unwrap();
    let c = j.attempt_started(&sw, &ts[2].key, 1, 1003, t0).unwrap();
    j.attempt_finished(c, &end("failed", 50 << 20, false, Some("not json")))
        .unwrap();
    j.event(
        &sw,
        t0 + 5,
        "brake",
        &json!({"task": ts[1].key, "available": 300 << 20}),
    )
    .unwrap();
    j.event(&sw, t0 + 6, "learned_peak", &json!({"bytes": 300u64 << 20}))
        .unwrap();
    j.commit().unwrap();
}

/// Regenerates `tests/fixtures/journals/v1.db`. Only for when the fixture is first made:
/// a released fixture is never regenerated.
#[test]
#[ignore = "writes the committed fixture"]
fn generate_v1_fixture() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("v1.db");
    write_v1_content(&p);
    let out = fixture_v1();
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    assert!(!out.exists(), "the v1 fixture exists; never regenerate it");
    std::fs::copy(&p, &out).unwrap();
}

/// The schema v1 fixture must open with every future ramguard (pueue keeps old journals).
#[test]
fn the_v1_fixture_journal_opens_forever() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("v1.db");
    std::fs::copy(fixture_v1(), &p).expect("tests/fixtures/journals/v1.db is committed");
    let r = Journal::open_existing(&p).unwrap();
    let sweep = r.resolve_sweep(None).unwrap();
    assert_eq!(sweep.name, "lam-sweep");
    assert_eq!(
        (sweep.counts.done, sweep.counts.queued, sweep.counts.failed),
        (1, 2, 1)
    );
    let st = r.status(&sweep).unwrap();
    assert_eq!(st.learned_peak, Some(300 << 20));
    drop(r);
    // A writer migrates it and resumes it.
    let mut j = Journal::open(&p).unwrap();
    let sw = j
        .begin_sweep(
            &spec("lam-sweep", "python t3b.py --lam {lam} --beta {beta}"),
            false,
        )
        .unwrap();
    assert!(j.recover_interrupted(&sw).unwrap().is_empty());
    let hist: Vec<(String, u64)> = j
        .learned_history(&sw)
        .unwrap()
        .into_iter()
        .map(|l| (l.key, l.peak))
        .collect();
    // Its keys were migrated to today's identity (canonical JSON of the params).
    assert_eq!(
        hist,
        vec![(r#"{"beta":"3.0","lam":"0"}"#.to_string(), 200 << 20)]
    );
}
