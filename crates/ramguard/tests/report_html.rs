//! The HTML report in a real headless Chromium: it renders with no console error, its charts
//! are there, it makes no request, and a screenshot shows the charts' colours. A 100,000-task
//! sweep's page stays small and still opens.
//!
//! Chromium comes from Debian's packages (`.ci/chromium.sh`, run by `.ci/run`); where it is
//! missing these tests say so on stderr and pass without checking the browser half.

mod common;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{memhog, stderr, Work};

fn chromium() -> Option<PathBuf> {
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .find_map(|name| {
            std::env::var_os("PATH").and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|d| d.join(name))
                    .find(|p| p.is_file())
            })
        })
}

/// What one headless Chromium run saw.
struct Browsed {
    dom: String,
    /// Console messages (errors included) Chromium logged.
    console: Vec<String>,
    /// Requests a page started (not the browser's own background requests).
    page_requests: Vec<String>,
}

/// Opens `page` in a fresh headless Chromium; `extra` adds `--screenshot=...` and the like.
fn browse(bin: &Path, dir: &Path, page: &Path, extra: &[String]) -> Browsed {
    let profile = tempfile::tempdir_in(dir).unwrap();
    let netlog = dir.join(format!(
        "net-{}.json",
        page.file_stem().unwrap().to_string_lossy()
    ));
    let stem = page.file_stem().unwrap().to_string_lossy().into_owned();
    let out_path = dir.join(format!("chromium-{stem}.out"));
    let err_path = dir.join(format!("chromium-{stem}.err"));
    let mut cmd = Command::new(bin);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        "--enable-logging=stderr",
        "--v=0",
        "--virtual-time-budget=5000",
    ])
    .arg(format!("--user-data-dir={}", profile.path().display()))
    .arg(format!("--log-net-log={}", netlog.display()))
    .args(extra)
    .arg(format!("file://{}", page.display()))
    .current_dir(dir)
    .stdin(Stdio::null())
    // Files, not pipes: a large DOM would fill a pipe nobody reads until chromium exits.
    .stdout(std::fs::File::create(&out_path).unwrap())
    .stderr(std::fs::File::create(&err_path).unwrap())
    .process_group(0);
    let child = cmd.spawn().expect("start chromium");
    let mut guard = common::ChildGuard(child);
    let pid = guard.0.id();
    // Chromium exits by itself once the page is dumped or shot; bound it anyway.
    let deadline = Instant::now() + Duration::from_secs(120);
    while !matches!(guard.0.try_wait(), Ok(Some(_))) {
        assert!(
            Instant::now() < deadline,
            "chromium did not finish in 120 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Its helpers (renderer, GPU, zygote) are in the process group we gave it.
    if let Some(p) = rustix::process::Pid::from_raw(pid as i32) {
        let _ = rustix::process::kill_process_group(p, rustix::process::Signal::KILL);
    }
    drop(guard);
    let out = (
        std::fs::read_to_string(&out_path).unwrap(),
        std::fs::read_to_string(&err_path).unwrap_or_default(),
    );
    let (dom, err) = out;
    let console = err
        .lines()
        .filter(|l| l.contains(":CONSOLE") || l.contains("Uncaught"))
        .map(str::to_string)
        .collect();
    Browsed {
        dom,
        console,
        page_requests: page_requests(&netlog),
    }
}

/// URLs whose request a page started: Chromium's own background requests carry the
/// initiator "not an origin"; a page's carry its origin ("null" for file://).
fn page_requests(netlog: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(netlog).expect("chromium wrote its net log");
    // A log cut short at exit lacks its closing brackets.
    let v: serde_json::Value = serde_json::from_str(&text)
        .or_else(|_| serde_json::from_str(&format!("{}]}}", text.trim_end().trim_end_matches(','))))
        .expect("net log is JSON");
    let start_job = v["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
        .as_u64()
        .expect("net log constants");
    v["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"].as_u64() == Some(start_job))
        .filter(|e| {
            e["params"]["initiator"]
                .as_str()
                .is_some_and(|i| i != "not an origin")
        })
        .map(|e| e["params"]["url"].as_str().unwrap_or("?").to_string())
        .collect()
}

/// Counts screenshot pixels within a small distance of an RGB colour.
fn count_colour(png_path: &Path, rgb: (u8, u8, u8)) -> (usize, (u32, u32)) {
    let decoder = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(png_path).expect("a screenshot"),
    ));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = match info.color_type {
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        other => panic!("unexpected screenshot colour type {other:?}"),
    };
    let near = |a: u8, b: u8| a.abs_diff(b) <= 10;
    let n = buf[..info.buffer_size()]
        .chunks(channels)
        .filter(|p| near(p[0], rgb.0) && near(p[1], rgb.1) && near(p[2], rgb.2))
        .count();
    (n, (info.width, info.height))
}

/// A sweep with done, leaking and over-cap tasks.
fn sweep(work: &Work) {
    let hog = memhog();
    let out = work.run(&[
        "run",
        "--mem",
        "1G",
        "-j",
        "3",
        "--estimate",
        "150M",
        "--task-mem",
        "250M",
        "--progress",
        "none",
        "--",
        hog.to_str().unwrap(),
        "--peak",
        "{1}",
        "--ramp",
        "200ms",
        "--hold",
        "5s",
        "--leak",
        "{2}",
        ":::",
        "48M",
        "96M",
        "300M",
        ":::",
        "0",
        "30M",
    ]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "over-cap tasks fail: {}",
        stderr(&out)
    );
}

#[test]
fn the_html_report_renders_in_chromium_with_charts_no_errors_and_no_requests() {
    let work = Work::new();
    sweep(&work);
    let page = work.path().join("report.html");
    let out = work.run(&["report", "--html", "report.html"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let html = std::fs::read_to_string(&page).unwrap();
    // Self-contained: nothing to fetch.
    for bad in [
        "http://", "https://", "<script", "<link", " src=", "url(", "@import",
    ] {
        assert!(!html.contains(bad), "the page refers to {bad}");
    }
    for want in [
        "id=\"gantt\"",
        "id=\"memory\"",
        "class=\"bar done\"",
        "class=\"bar over_cap\"",
        "data-kind=\"leak\"",
        "class=\"budget\"",
        "class=\"leakline\"",
        "id=\"available\"",
        "Peak against each parameter",
        // Three lanes (-j 3, all fit): each is named, the middle one too.
        ">lane 1</text>",
        ">lane 2</text>",
        ">lane 3</text>",
    ] {
        assert!(html.contains(want), "page lacks {want}");
    }

    let Some(bin) = chromium() else {
        eprintln!(
            "SKIPPED the browser half: chromium is not installed (bash .ci/chromium.sh installs it)"
        );
        return;
    };
    // The detectors work: a page with a console error and a request is caught.
    let control = work.path().join("control.html");
    std::fs::write(
        &control,
        "<!DOCTYPE html><html><body><img src=\"http://127.0.0.1:9/x.png\">\
         <script>console.error('boom')</script></body></html>",
    )
    .unwrap();
    let c = browse(&bin, work.path(), &control, &["--dump-dom".into()]);
    assert!(
        c.console.iter().any(|l| l.contains("boom")),
        "console capture: {:?}",
        c.console
    );
    assert!(
        c.page_requests.iter().any(|u| u.contains("127.0.0.1:9")),
        "request capture: {:?}",
        c.page_requests
    );

    let b = browse(&bin, work.path(), &page, &["--dump-dom".into()]);
    assert!(b.console.is_empty(), "console: {:?}", b.console);
    assert!(
        b.page_requests.is_empty(),
        "requests: {:?}",
        b.page_requests
    );
    assert!(
        b.dom.contains("id=\"gantt\""),
        "rendered DOM lacks the Gantt"
    );
    assert!(b.dom.contains("id=\"memory\""));
    assert!(b.dom.matches("class=\"bar ").count() >= 3);

    let shot = work.path().join("shot.png");
    browse(
        &bin,
        work.path(),
        &page,
        &[
            format!("--screenshot={}", shot.display()),
            "--window-size=1200,1700".into(),
        ],
    );
    let (green, size) = count_colour(&shot, (0x4c, 0x9a, 0x2a));
    assert_eq!(size, (1200, 1700));
    let (purple, _) = count_colour(&shot, (0x94, 0x67, 0xbd));
    let (lane_blue, _) = count_colour(&shot, (0x4e, 0x79, 0xa7));
    let (red, _) = count_colour(&shot, (0xd6, 0x27, 0x28));
    assert!(green > 300, "done bars: {green} px");
    assert!(purple > 30, "over-cap bars: {purple} px");
    assert!(lane_blue > 1000, "stacked memory: {lane_blue} px");
    assert!(red > 100, "budget line and findings: {red} px");
}

/// Adds `n` finished tasks, each with a small timeline, to the journal's only sweep.
fn add_tasks(journal: &Path, n: usize) {
    let mut db = rusqlite::Connection::open(journal).unwrap();
    let tx = db.transaction().unwrap();
    let sweep: i64 = tx
        .query_row("SELECT id FROM sweeps", [], |r| r.get(0))
        .unwrap();
    // Right after the real task, so the sweep's span is the synthetic one's.
    let t0: i64 = tx
        .query_row("SELECT max(ended_unix_ms) FROM attempts", [], |r| r.get(0))
        .unwrap();
    let lanes = 8;
    for i in 0..n {
        let lane = (i % lanes) as i64;
        let start = t0 + (i / lanes) as i64 * 400 + lane * 7;
        let dur = 380 + (i % 13) as i64;
        let peak = ((64 + (i % 50) * 4) as i64) << 20;
        let class = match i % 97 {
            0 => "braked",
            1 => "failed",
            _ => "done",
        };
        let key = format!("[\"task\",\"{i}\"]");
        tx.execute(
            "INSERT INTO tasks (sweep_id, key, seq, params, argv, state, attempts, peak)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 1, ?7)",
            rusqlite::params![
                sweep,
                key,
                i as i64 + 1,
                format!("{{\"size\":\"{}M\"}}", 64 + (i % 50) * 4),
                format!("[\"work\",\"{i}\"]"),
                if class == "failed" { "failed" } else { "done" },
                peak
            ],
        )
        .unwrap();
        let task = tx.last_insert_rowid();
        tx.execute(
            "INSERT INTO attempts (sweep_id, task_id, attempt, pid, supervisor_pid, started_unix_ms,
                 ended_unix_ms, duration_ms, peak_rss, peak_pss, class, reason, requeued)
             VALUES (?1, ?2, 1, 1, 1, ?3, ?4, ?5, ?6, ?6, ?7, '', ?8)",
            rusqlite::params![
                sweep,
                task,
                start,
                start + dur,
                dur,
                peak,
                class,
                (class == "braked") as i64
            ],
        )
        .unwrap();
        let attempt = tx.last_insert_rowid();
        tx.execute(
            "UPDATE tasks SET last_attempt_id = ?1 WHERE id = ?2",
            [attempt, task],
        )
        .unwrap();
        for k in 0..8i64 {
            tx.execute(
                "INSERT INTO samples (attempt_id, t_ms, rss, pss) VALUES (?1, ?2, ?3, ?3)",
                [attempt, k * 50, peak * (k + 1) / 8],
            )
            .unwrap();
        }
    }
    tx.commit().unwrap();
}

#[test]
fn a_hundred_thousand_task_sweep_gives_a_small_page_that_still_opens() {
    let work = Work::new();
    let hog = memhog();
    let out = work.run(&[
        "run",
        "--name",
        "big",
        "--progress",
        "none",
        "--",
        hog.to_str().unwrap(),
        "--peak",
        "4M",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    add_tasks(&work.journal(), 100_000);
    let started = Instant::now();
    let out = work.run(&["report", "big", "--html", "big.html"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let took = started.elapsed();
    let page = work.path().join("big.html");
    let size = std::fs::metadata(&page).unwrap().len();
    assert!(size < 6 << 20, "page is {} MiB", size >> 20);
    assert!(took < Duration::from_secs(90), "report took {took:?}");
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(
        html.contains("100001 from") || html.contains("100001 —"),
        "all tasks counted"
    );

    let Some(bin) = chromium() else {
        eprintln!(
            "SKIPPED the browser half: chromium is not installed (bash .ci/chromium.sh installs it)"
        );
        return;
    };
    let b = browse(&bin, work.path(), &page, &["--dump-dom".into()]);
    assert!(b.console.is_empty(), "console: {:?}", b.console);
    assert!(b.dom.contains("id=\"gantt\"") && b.dom.contains("id=\"memory\""));
}
