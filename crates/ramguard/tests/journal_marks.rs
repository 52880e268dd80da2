//! A started attempt's task row (running, attempts + 1, last attempt) is written when its
//! group ends, or together with the attempt's end when it ends in the same group (one
//! statement per start less on sweeps of trivial tasks). Readers only ever see committed
//! groups, so what they see must not depend on where an attempt ended; a group abandoned
//! (a crash, a failed commit) must leave no trace of its starts, not even later.

mod journal_api;

use journal_api::*;

use std::path::Path;

use ramguard::journal::Journal;

/// Every task row as a reader of the file sees it: (key, state, attempts, last attempt).
fn rows(path: &Path) -> Vec<(String, String, i64, Option<i64>)> {
    let c = rusqlite::Connection::open(path).unwrap();
    let mut st = c
        .prepare("SELECT key, state, attempts, last_attempt_id FROM tasks ORDER BY seq")
        .unwrap();
    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap()
}

fn row(
    key: &str,
    state: &str,
    attempts: i64,
    last: Option<i64>,
) -> (String, String, i64, Option<i64>) {
    (key.into(), state.into(), attempts, last)
}

#[test]
fn task_rows_count_each_start_once_whichever_group_its_attempt_ends_in() {
    let (_d, path) = tmp();
    let mut j = Journal::open(&path).unwrap();
    let sw = j.begin_sweep(&spec("s", "cmd"), false).unwrap();
    j.sync_tasks(&sw, &tasks(3)).unwrap();
    j.commit().unwrap();
    // lam=0 starts and ends in one group; lam=1 starts in it and ends in the next; lam=2
    // is braked and started again within the first.
    let a0 = j.attempt_started(&sw, "lam=0", 1, 10, 0).unwrap();
    let a1 = j.attempt_started(&sw, "lam=1", 1, 11, 0).unwrap();
    j.attempt_finished(a0, &end("done", 1, false, None))
        .unwrap();
    let a2 = j.attempt_started(&sw, "lam=2", 1, 12, 0).unwrap();
    j.attempt_finished(a2, &end("braked", 1, true, None))
        .unwrap();
    let b2 = j.attempt_started(&sw, "lam=2", 2, 13, 0).unwrap();
    j.commit_for_crash().unwrap();
    assert_eq!(
        rows(&path),
        [
            row("lam=0", "done", 1, Some(a0)),
            row("lam=1", "running", 1, Some(a1)),
            row("lam=2", "running", 2, Some(b2)),
        ],
        "a committed group shows every start it holds"
    );
    j.attempt_finished(a1, &end("done", 1, false, None))
        .unwrap();
    j.attempt_finished(b2, &end("done", 1, false, None))
        .unwrap();
    j.commit().unwrap();
    assert_eq!(
        rows(&path),
        [
            row("lam=0", "done", 1, Some(a0)),
            row("lam=1", "done", 1, Some(a1)),
            row("lam=2", "done", 2, Some(b2)),
        ]
    );
}

#[test]
fn an_abandoned_group_leaves_no_start_behind_now_or_after_the_next_commit() {
    let (_d, path) = tmp();
    {
        let mut j = Journal::open(&path).unwrap();
        let sw = j.begin_sweep(&spec("s", "cmd"), false).unwrap();
        j.sync_tasks(&sw, &tasks(3)).unwrap();
        let a0 = j.attempt_started(&sw, "lam=0", 1, 10, 0).unwrap();
        j.commit_for_crash().unwrap();
        // Abandoned (as a failed commit abandons it): its start must not come back with
        // the next group.
        j.attempt_started(&sw, "lam=1", 1, 11, 0).unwrap();
        j.rollback();
        let a2 = j.attempt_started(&sw, "lam=2", 1, 12, 0).unwrap();
        j.commit().unwrap();
        assert_eq!(
            rows(&path),
            [
                row("lam=0", "running", 1, Some(a0)),
                row("lam=1", "queued", 0, None),
                row("lam=2", "running", 1, Some(a2)),
            ]
        );
        // Lost with the handle, as a crash loses an open group.
        j.attempt_finished(a2, &end("done", 1, false, None))
            .unwrap();
        j.attempt_started(&sw, "lam=1", 1, 13, 0).unwrap();
    }
    let c = rusqlite::Connection::open(&path).unwrap();
    let attempts: i64 = c
        .query_row("SELECT count(*) FROM attempts", [], |r| r.get(0))
        .unwrap();
    assert_eq!(attempts, 2, "only the committed groups' attempt rows");
    assert_eq!(
        rows(&path).iter().map(|r| r.1.as_str()).collect::<Vec<_>>(),
        ["running", "queued", "running"]
    );
}
