//! Sweep files as a user writes them: a good file loads into the tasks and options they
//! expect, and each kind of mistake is one line naming the file, the line and the key.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use ramguard::sweep_file::{self, SweepOptions};
use ramguard_core::{Bytes, SizeSpec};

/// Writes `text` to a temporary `sweep.toml` and returns its directory and path.
fn write(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sweep.toml");
    let mut f = std::fs::File::create(&path).unwrap();
    f.write_all(text.as_bytes()).unwrap();
    (dir, path)
}

/// Loads `text` and returns the error line, with the temp dir masked as `DIR`.
fn load_err(text: &str) -> String {
    let (dir, path) = write(text);
    let err = sweep_file::load(&path).expect_err("the file should be refused");
    format!("{err:#}").replace(&dir.path().display().to_string(), "DIR")
}

fn argvs(file: &sweep_file::SweepFile) -> Vec<String> {
    file.tasks.iter().map(|t| t.argv.join(" ")).collect()
}

const GOOD: &str = r#"
name = "t3b-lambda"
command = ["python", "t3b.py", "--lam", "{lam}", "--beta", "{beta}"]

[grid]
lam = [0, 1e-10, 1e-8]
beta = "3.0..3.3:0.1"

[options]
jobs = 4
mem = "4G"
reserve = "10%"
estimate = "500M"
task_mem = "3G"
timeout = "1h"
grace = "10s"
retries = 1
threads = 1
"#;

#[test]
fn good_file_loads_tasks_and_options() {
    let (_dir, path) = write(GOOD);
    let file = sweep_file::load(&path).unwrap();
    assert_eq!(file.name.as_deref(), Some("t3b-lambda"));
    assert_eq!(
        file.template.display(),
        "python t3b.py --lam {lam} --beta {beta}"
    );
    assert!(!file.shell);
    assert_eq!(file.tasks.len(), 12);
    let argv = argvs(&file);
    // Axes in file order (lam slowest), numbers exactly as written.
    assert_eq!(argv[0], "python t3b.py --lam 0 --beta 3.0");
    assert_eq!(argv[3], "python t3b.py --lam 0 --beta 3.3");
    assert_eq!(argv[4], "python t3b.py --lam 1e-10 --beta 3.0");
    assert_eq!(argv[11], "python t3b.py --lam 1e-8 --beta 3.3");
    assert_eq!(file.tasks[4].key, r#"{"beta":"3.0","lam":"1e-10"}"#);
    assert_eq!(
        file.options,
        SweepOptions {
            jobs: Some(4),
            mem: Some(SizeSpec::Absolute(Bytes(4 << 30))),
            reserve: Some(SizeSpec::Percent(10.0)),
            estimate: Some(Bytes(500 << 20)),
            task_mem: Some(Bytes(3 << 30)),
            timeout: Some(Duration::from_secs(3600)),
            grace: Some(Duration::from_secs(10)),
            retries: Some(1),
            threads: Some(1),
            ..SweepOptions::default()
        }
    );
}

#[test]
fn grid_keeps_file_order_even_against_the_alphabet() {
    let (_dir, path) =
        write("command = \"run --z {z} --a {a}\"\n[grid]\nz = [2, 1]\na = [\"x\", \"y\"]\n");
    let file = sweep_file::load(&path).unwrap();
    assert_eq!(
        argvs(&file),
        [
            "run --z 2 --a x",
            "run --z 2 --a y",
            "run --z 1 --a x",
            "run --z 1 --a y"
        ]
    );
    assert_eq!(
        file.tasks[0].params,
        vec![("z".into(), "2".into()), ("a".into(), "x".into())]
    );
}

#[test]
fn number_forms_become_values_as_written() {
    let (_dir, path) = write(
        "command = [\"x\", \"{v}\"]\n[grid]\nv = [1e-10, 2.50, -3, +4, 1_000, 0x10, 1.5e3, true, \"s p\"]\n",
    );
    let file = sweep_file::load(&path).unwrap();
    let values: Vec<&str> = file.tasks.iter().map(|t| t.argv[1].as_str()).collect();
    assert_eq!(
        values,
        ["1e-10", "2.50", "-3", "4", "1000", "16", "1.5e3", "true", "s p"]
    );
}

#[test]
fn explicit_task_list_and_string_command() {
    let (_dir, path) = write(
        r#"
command = "python t3b.py --lam {lam} --beta {beta} --tag '{tag}'"
tasks = [
  { lam = 0, beta = 3.0, tag = "a b" },
  { beta = 3.5, lam = 1e-10, tag = "$(rm -rf x)" },
]
"#,
    );
    let file = sweep_file::load(&path).unwrap();
    assert_eq!(file.tasks.len(), 2);
    assert_eq!(
        file.tasks[1].argv,
        [
            "python",
            "t3b.py",
            "--lam",
            "1e-10",
            "--beta",
            "3.5",
            "--tag",
            "$(rm -rf x)"
        ]
    );
    assert_eq!(file.tasks[0].key, r#"{"beta":"3.0","lam":"0","tag":"a b"}"#);
}

#[test]
fn array_of_tables_task_list() {
    let (_dir, path) = write("command = [\"x\", \"{n}\"]\n[[tasks]]\nn = 1\n[[tasks]]\nn = 2\n");
    let file = sweep_file::load(&path).unwrap();
    assert_eq!(argvs(&file), ["x 1", "x 2"]);
    assert_eq!(file.options, SweepOptions::default());
}

#[test]
fn repeat_and_shell() {
    let (_dir, path) = write(
        "command = \"python trial.py --name 'a b' > out_{#}.log\"\nshell = true\nrepeat = 3\n[options]\ntimeout = 90\n",
    );
    let file = sweep_file::load(&path).unwrap();
    assert!(file.shell);
    assert_eq!(
        file.tasks[2].argv,
        ["sh", "-c", "python trial.py --name 'a b' > out_3.log"]
    );
    assert_eq!(file.tasks[2].key, r##"{"#":"3"}"##);
    assert_eq!(file.options.timeout, Some(Duration::from_secs(90)));
}

#[test]
fn shell_text_command_as_one_element() {
    let (_dir, path) = write(
        "command = [\"python trial.py --v {v} > out_{#}.log\"]\nshell = true\n[grid]\nv = [\"a b\"]\n",
    );
    let file = sweep_file::load(&path).unwrap();
    assert_eq!(
        file.tasks[0].argv,
        ["sh", "-c", "python trial.py --v 'a b' > out_1.log"]
    );
}

#[test]
fn errors_name_file_line_and_key() {
    let cases: &[(&str, &str)] = &[
        // TOML syntax.
        (
            "command = [\"x\"]\nrepeat = \n",
            "DIR/sweep.toml: line 2: ",
        ),
        // An unknown key, top level and in [options].
        (
            "command = [\"x\"]\nrepeat = 2\nnmae = \"y\"\n",
            "DIR/sweep.toml: line 3: unknown field `nmae`",
        ),
        (
            "command = [\"x\"]\nrepeat = 2\n[options]\njobs = 2\nmemory = \"4G\"\n",
            "DIR/sweep.toml: line 5: unknown field `memory`",
        ),
        // Bad sizes and durations name the key and the value.
        (
            "command = [\"x\"]\nrepeat = 2\n[options]\nmem = \"4Q\"\n",
            "DIR/sweep.toml: line 4: options.mem = \"4Q\": invalid size '4Q'",
        ),
        (
            "command = [\"x\"]\nrepeat = 2\n[options]\ntask_mem = \"50%\"\n",
            "DIR/sweep.toml: line 4: options.task_mem = \"50%\": invalid size",
        ),
        (
            "command = [\"x\"]\nrepeat = 2\n[options]\ntimeout = \"soon\"\n",
            "DIR/sweep.toml: line 4: options.timeout = \"soon\": invalid duration 'soon'",
        ),
        (
            "command = [\"x\"]\nrepeat = 2\n[options]\njobs = 0\n",
            "DIR/sweep.toml: line 4: options.jobs = 0: must be at least 1",
        ),
        (
            "command = [\"x\"]\nrepeat = 2\n[options]\njobs = \"four\"\n",
            "DIR/sweep.toml: line 4: options.jobs = \"four\": expected a whole number, like jobs = 1",
        ),
        // The task source: none, two, empty, malformed.
        ("command = [\"x\"]\n", "DIR/sweep.toml: give exactly one task source"),
        (
            "command = [\"x\", \"{a}\"]\nrepeat = 2\n[grid]\na = [1]\n",
            "not both [grid] and repeat",
        ),
        (
            "command = [\"x\", \"{a}\"]\n[grid]\na = []\n",
            "DIR/sweep.toml: line 3: grid.a is empty",
        ),
        (
            "command = [\"x\", \"{a}\"]\n[grid]\na = \"1..5:0\"\n",
            "DIR/sweep.toml: line 3: grid.a: invalid range '1..5:0': the step must not be 0",
        ),
        (
            "command = [\"x\", \"{a}\"]\n[grid]\na = [[1, 2]]\n",
            "DIR/sweep.toml: line 3: grid.a: a value must be a string, number or boolean, not array",
        ),
        (
            "command = [\"x\"]\nrepeat = 0\n",
            "DIR/sweep.toml: line 2: repeat = 0: must be at least 1",
        ),
        // The command and its placeholders.
        (
            "command = \"python 'x.py\"\nrepeat = 1\n",
            "DIR/sweep.toml: line 1: command: unterminated quote",
        ),
        ("command = []\nrepeat = 1\n", "DIR/sweep.toml: line 1: command is empty"),
        (
            "command = [\"x\", \"{lam\"]\nrepeat = 1\n",
            "DIR/sweep.toml: line 1: command: invalid template argument '{lam'",
        ),
        (
            "command = [\"x\", \"{beta}\"]\n[grid]\nlam = [1, 2]\n",
            "DIR/sweep.toml: line 1: unknown placeholder {beta} in template (params: lam)",
        ),
        (
            "command = [\"x\", \"{lam}\"]\ntasks = [\n  { lam = 1 },\n  { beta = 2 },\n]\n",
            "DIR/sweep.toml: line 4: task 2: unknown placeholder {lam} in template (params: beta)",
        ),
        (
            "command = [\"x\"]\n[grid]\nlam = [1, 2]\n",
            "DIR/sweep.toml: line 1: the command uses no placeholder",
        ),
        (
            "repeat = 2\n",
            "missing field `command`; hint: add command = [\"program\", \"arg\", \"{param}\"]",
        ),
    ];
    for (text, want) in cases {
        let got = load_err(text);
        assert!(
            got.contains(want),
            "for file:\n{text}\ngot:  {got}\nwant: {want}"
        );
        assert!(!got.contains('\n'), "one line: {got}");
    }
}

#[test]
fn missing_file_names_the_path() {
    let err = sweep_file::load(std::path::Path::new("/nonexistent/sweep.toml")).unwrap_err();
    assert!(
        format!("{err:#}").starts_with("cannot read sweep file /nonexistent/sweep.toml:"),
        "{err:#}"
    );
}
