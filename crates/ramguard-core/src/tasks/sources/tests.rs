//! Tests of the task sources: literal inputs in, task lists out.

use super::*;

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

fn t(args: &[&str]) -> Template {
    Template::parse(&s(args)).unwrap()
}

fn argvs(tasks: &[TaskDef]) -> Vec<Vec<String>> {
    tasks.iter().map(|t| t.argv.clone()).collect()
}

#[test]
fn split_lists_like_gnu_parallel() {
    let (tpl, lists) = split_lists(&s(&["echo", "{1}", ":::", "a", "b", ":::", "c"]));
    assert_eq!(tpl, s(&["echo", "{1}"]));
    assert_eq!(lists, vec![s(&["a", "b"]), s(&["c"])]);
    let (tpl, lists) = split_lists(&s(&["echo", "x"]));
    assert_eq!(tpl, s(&["echo", "x"]));
    assert!(lists.is_empty());
    let (_, lists) = split_lists(&s(&["echo", ":::"]));
    assert_eq!(lists, vec![Vec::<String>::new()]);
}

#[test]
fn cartesian_first_list_varies_slowest() {
    let tasks = cartesian(
        &t(&["echo", "{1}-{2}", "{#}"]),
        &[s(&["a", "b"]), s(&["x", "y"])],
        false,
    )
    .unwrap();
    assert_eq!(
        argvs(&tasks),
        vec![
            s(&["echo", "a-x", "1"]),
            s(&["echo", "a-y", "2"]),
            s(&["echo", "b-x", "3"]),
            s(&["echo", "b-y", "4"]),
        ]
    );
    assert_eq!(tasks[1].key, r#"{"1":"a","2":"y"}"#);
}

#[test]
fn cartesian_appends_without_placeholders() {
    let tasks = cartesian(&t(&["python", "x.py"]), &[s(&["1", "2"]), s(&["z"])], false).unwrap();
    assert_eq!(
        argvs(&tasks),
        vec![
            s(&["python", "x.py", "1", "z"]),
            s(&["python", "x.py", "2", "z"])
        ]
    );
    let tasks = cartesian(&t(&["echo", "{}"]), &[s(&["only"])], false).unwrap();
    assert_eq!(argvs(&tasks), vec![s(&["echo", "only"])]);
}

#[test]
fn cartesian_refuses_empty_and_huge() {
    let tpl = t(&["echo"]);
    assert_eq!(
        cartesian(&tpl, &[], false).unwrap_err().to_string(),
        "no tasks: no ::: lists were given"
    );
    let err = cartesian(&tpl, &[s(&["a"]), vec![]], false).unwrap_err();
    assert!(err.to_string().contains("::: list 2 is empty"), "{err}");
    let big: Vec<String> = (0..1001).map(|i| i.to_string()).collect();
    let err = cartesian(&tpl, &[big.clone(), big], false).unwrap_err();
    assert!(err.to_string().contains("1002001 tasks"), "{err}");
    let err = cartesian(&t(&["echo", "{3}"]), &[s(&["a"])], false).unwrap_err();
    assert_eq!(
        err.to_string(),
        "unknown placeholder {3} in template (params: 1)"
    );
}

#[test]
fn ranges_without_float_noise() {
    assert_eq!(
        parse_range("3.0..3.3:0.1").unwrap(),
        s(&["3.0", "3.1", "3.2", "3.3"])
    );
    assert_eq!(parse_range("1..5:2").unwrap(), s(&["1", "3", "5"]));
    assert_eq!(parse_range("1..4").unwrap(), s(&["1", "2", "3", "4"]));
    assert_eq!(parse_range("1..6:2").unwrap(), s(&["1", "3", "5"]));
    assert_eq!(parse_range("5..1:-2").unwrap(), s(&["5", "3", "1"]));
    assert_eq!(
        parse_range("0..1:0.25").unwrap(),
        s(&["0", "0.25", "0.5", "0.75", "1"])
    );
    assert_eq!(
        parse_range("0.1..0.3:0.1").unwrap(),
        s(&["0.1", "0.2", "0.3"])
    );
    assert_eq!(
        parse_range("-0.2..0:0.1").unwrap(),
        s(&["-0.2", "-0.1", "0.0"])
    );
    assert_eq!(
        parse_range("1e-3..3e-3:1e-3").unwrap(),
        s(&["0.001", "0.002", "0.003"])
    );
}

#[test]
fn bad_ranges_say_why() {
    for (text, why) in [
        ("1..5:0", "the step must not be 0"),
        ("5..1", "the range is empty"),
        ("1..x", "STOP 'x' is not a number"),
        ("1..5:q", "STEP 'q' is not a number"),
    ] {
        let msg = parse_range(text).unwrap_err().to_string();
        assert!(msg.starts_with(&format!("invalid range '{text}'")), "{msg}");
        assert!(msg.contains(why), "{msg}");
    }
    let err = parse_range("0..10000000").unwrap_err().to_string();
    assert!(
        err.starts_with("too many tasks: the range '0..10000000'"),
        "{err}"
    );
    let err = parse_range("0..1:0.0000001").unwrap_err().to_string();
    assert!(err.starts_with("too many tasks"), "{err}");
}

#[test]
fn grid_specs() {
    assert_eq!(
        parse_grid("lam=0,1e-10, 1e-8").unwrap(),
        ("lam".to_string(), s(&["0", "1e-10", "1e-8"]))
    );
    assert_eq!(
        parse_grid("beta=3.0..3.3:0.1").unwrap().1,
        s(&["3.0", "3.1", "3.2", "3.3"])
    );
    assert_eq!(parse_grid("data=../x").unwrap().1, s(&["../x"]));
    assert_eq!(
        parse_grid("x=1..").unwrap_err().to_string(),
        "invalid --grid 'x=1..': expected NAME=V1,V2 or NAME=START..STOP:STEP (STOP '' is not a number)"
    );
    for bad in ["lam", "=1,2", "lam=", "lam=1,,2", "a b=1", "#=1"] {
        let msg = parse_grid(bad).unwrap_err().to_string();
        assert!(msg.starts_with(&format!("invalid --grid '{bad}'")), "{msg}");
    }
}

#[test]
fn grid_in_flag_order() {
    let axes = vec![
        parse_grid("lam=0,1e-10").unwrap(),
        parse_grid("beta=3.0..3.1:0.1").unwrap(),
    ];
    let tpl = t(&["python", "t3b.py", "--lam", "{lam}", "--beta", "{beta}"]);
    let tasks = grid(&tpl, &axes, false).unwrap();
    assert_eq!(tasks.len(), 4);
    assert_eq!(
        tasks[1].argv,
        s(&["python", "t3b.py", "--lam", "0", "--beta", "3.1"])
    );
    assert_eq!(
        tasks[1].params,
        vec![("lam".into(), "0".into()), ("beta".into(), "3.1".into())]
    );
    assert_eq!(tasks[1].key, r#"{"beta":"3.1","lam":"0"}"#);
}

#[test]
fn grid_errors() {
    let tpl = t(&["x", "{lam}"]);
    let err = grid(
        &tpl,
        &[("lam".into(), s(&["1"])), ("lam".into(), s(&["2"]))],
        false,
    )
    .unwrap_err();
    assert_eq!(err.to_string(), "parameter 'lam' is given twice");
    let err = grid(&t(&["x", "{beta}"]), &[("lam".into(), s(&["1"]))], false).unwrap_err();
    assert_eq!(
        err.to_string(),
        "unknown placeholder {beta} in template (params: lam)"
    );
    let err = grid(&t(&["x"]), &[("lam".into(), s(&["1"]))], false).unwrap_err();
    assert!(
        err.to_string()
            .contains("put {lam} where the value belongs (params: lam)"),
        "{err}"
    );
    assert!(grid(&tpl, &[], false)
        .unwrap_err()
        .to_string()
        .starts_with("no tasks"));
}

#[test]
fn lines_of_commands() {
    let text = "# sweep\n\npython bt.py --years 1\n  python bt.py --name 'a b' --x '$HOME'\n";
    let tasks = from_lines(text, None, false).unwrap();
    assert_eq!(
        argvs(&tasks),
        vec![
            s(&["python", "bt.py", "--years", "1"]),
            s(&["python", "bt.py", "--name", "a b", "--x", "$HOME"]),
        ]
    );
    assert!(tasks[0].params.is_empty());
    assert_eq!(tasks[0].key, r#"["python","bt.py","--years","1"]"#);
}

#[test]
fn lines_of_json_params() {
    let tpl = t(&["python", "t.py", "--lam", "{lam}", "--beta", "{beta}"]);
    let text = "{\"lam\": 1e-10, \"beta\": \"3.0\"}\n{\"beta\": 3.5, \"lam\": 0}\n";
    let tasks = from_lines(text, Some(&tpl), false).unwrap();
    assert_eq!(
        tasks[0].argv,
        s(&["python", "t.py", "--lam", "1e-10", "--beta", "3.0"])
    );
    assert_eq!(
        tasks[1].params,
        vec![("beta".into(), "3.5".into()), ("lam".into(), "0".into())]
    );
}

#[test]
fn lines_as_values_with_a_template() {
    let tasks = from_lines("a b\nc\n", Some(&t(&["echo", "{}"])), false).unwrap();
    assert_eq!(argvs(&tasks), vec![s(&["echo", "a b"]), s(&["echo", "c"])]);
}

#[test]
fn line_errors_name_the_line() {
    let cases: [(&str, Option<Template>, &str); 6] = [
        ("ok\n\n# c\npython 'x\n", None, "line 4: unterminated quote"),
        (
            "{\"lam\": 1}\n",
            None,
            "line 1: a JSON params line needs a command template",
        ),
        (
            "\n{\"lam\": \n",
            Some(t(&["x", "{lam}"])),
            "line 2: invalid JSON params",
        ),
        (
            "{\"lam\": [1]}",
            Some(t(&["x", "{lam}"])),
            "line 1: param 'lam' must be a string",
        ),
        (
            "{\"lam\": 1}\n{\"beta\": 2}",
            Some(t(&["x", "{lam}"])),
            "line 2: unknown placeholder {lam} in template (params: beta)",
        ),
        ("# only\n\n", None, "no tasks: the task list has no lines"),
    ];
    for (text, tpl, want) in cases {
        let msg = from_lines(text, tpl.as_ref(), false)
            .unwrap_err()
            .to_string();
        assert!(msg.starts_with(want), "{msg:?} should start with {want:?}");
    }
}

#[test]
fn repeat_numbers_tasks() {
    let tasks = repeat(&t(&["python", "trial.py", "--seed", "{#}"]), 3, false).unwrap();
    assert_eq!(tasks[2].argv, s(&["python", "trial.py", "--seed", "3"]));
    assert_eq!(tasks[2].key, r##"{"#":"3"}"##);
    assert_eq!(tasks[0].params, vec![("#".into(), "1".into())]);
    assert_eq!(
        repeat(&t(&["x"]), 0, false).unwrap_err().to_string(),
        "no tasks: --repeat 0"
    );
    assert!(repeat(&t(&["x"]), MAX_TASKS + 1, false).is_err());
}

#[test]
fn shell_mode_for_every_source() {
    let tasks = cartesian(&t(&["echo {} > out.txt"]), &[s(&["a b"])], true).unwrap();
    assert_eq!(tasks[0].argv, s(&["sh", "-c", "echo 'a b' > out.txt"]));
    let tasks = from_lines("echo $HOME | wc\n", None, true).unwrap();
    assert_eq!(tasks[0].argv, s(&["sh", "-c", "echo $HOME | wc"]));
}

#[test]
fn a_task_line_with_shell_syntax_runs_through_sh_without_shell_mode() {
    // Regression: `echo a > f` ran as `echo` with the words "a", ">", "f".
    let text = "echo a > f\ncat x | wc -l\necho \"$HOME\"\nls *.csv\ncd ~/x\npython t.py --n 3\necho 'a > b' \"c;d\" e\\|f\n";
    let tasks = from_lines(text, None, false).unwrap();
    let via_sh: Vec<bool> = tasks.iter().map(|t| t.argv[0] == "sh").collect();
    assert_eq!(via_sh, [true, true, true, true, true, false, false]);
    assert_eq!(tasks[0].argv, s(&["sh", "-c", "echo a > f"]));
    assert_eq!(tasks[6].argv, s(&["echo", "a > b", "c;d", "e|f"]));
    assert!(!needs_shell("a~b --x=~"));
}
