//! Properties of task sources a user relies on: identities survive reordering the input,
//! and values reach the program verbatim unless `--shell` was asked for.

use std::collections::BTreeSet;

use proptest::prelude::*;
use ramguard_core::tasks::{self, TaskDef, Template};

fn tpl(args: &[&str]) -> Template {
    Template::parse(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
}

fn keys(tasks: &[TaskDef]) -> BTreeSet<String> {
    tasks.iter().map(|t| t.key.clone()).collect()
}

/// Distinct values for one axis, as a user might type them.
fn axis_values() -> impl Strategy<Value = Vec<String>> {
    prop::collection::btree_set("[a-z0-9.$ ;'\"-]{1,8}", 1..5).prop_map(|s| s.into_iter().collect())
}

proptest! {
    /// Shuffling each axis's values, or the axis order, keeps the same set of identities.
    #[test]
    fn grid_keys_do_not_depend_on_order(
        a in axis_values(),
        b in axis_values(),
        seed in any::<u64>(),
    ) {
        let t = tpl(&["run", "--a={a}", "--b={b}"]);
        let forward = tasks::grid(&t, &[("a".into(), a.clone()), ("b".into(), b.clone())], false).unwrap();
        let mut a2 = a.clone();
        let mut b2 = b.clone();
        // A cheap deterministic shuffle driven by the seed.
        let n = a2.len();
        a2.rotate_left((seed as usize) % n);
        b2.reverse();
        let swapped = tasks::grid(&t, &[("b".into(), b2), ("a".into(), a2)], false).unwrap();
        prop_assert_eq!(keys(&forward), keys(&swapped));
        prop_assert_eq!(keys(&forward).len(), forward.len());
        // The same task renders the same argv wherever it sits.
        for task in &swapped {
            let twin = forward.iter().find(|f| f.key == task.key).unwrap();
            prop_assert_eq!(&twin.argv, &task.argv);
        }
    }

    /// Shuffling the lines of a task file keeps the same set of identities.
    #[test]
    fn line_keys_do_not_depend_on_order(
        (lines, moved) in prop::collection::btree_set(0u32..10_000, 1..20)
            .prop_map(|vs| vs.into_iter().collect::<Vec<_>>())
            .prop_flat_map(|vs| (Just(vs.clone()), Just(vs).prop_shuffle())),
        json in any::<bool>(),
    ) {
        let render = |vs: &[u32]| -> Vec<String> {
            vs.iter()
                .map(|v| if json {
                    format!("{{\"n\": {v}, \"s\": \"x{v}\"}}")
                } else {
                    format!("python bt.py --years {v}")
                })
                .collect()
        };
        let t = tpl(&["python", "x.py", "{n}", "{s}"]);
        let template = json.then_some(&t);
        let a = tasks::from_lines(&render(&lines).join("\n"), template, false).unwrap();
        let text = format!("# shuffled\n\n{}\n", render(&moved).join("\n"));
        let b = tasks::from_lines(&text, template, false).unwrap();
        prop_assert_eq!(keys(&a), keys(&b));
        prop_assert_eq!(tasks::first_duplicate(&a), None);
        for task in &b {
            let twin = a.iter().find(|x| x.key == task.key).unwrap();
            prop_assert_eq!(&twin.argv, &task.argv);
        }
    }

    /// Shuffling the values of each ::: list keeps the same set of identities.
    #[test]
    fn list_keys_do_not_depend_on_order(
        (a, a2) in axis_values().prop_flat_map(|v| (Just(v.clone()), Just(v).prop_shuffle())),
        (b, b2) in axis_values().prop_flat_map(|v| (Just(v.clone()), Just(v).prop_shuffle())),
    ) {
        let t = tpl(&["run", "{1}", "{2}"]);
        let one = tasks::cartesian(&t, &[a, b], false).unwrap();
        let two = tasks::cartesian(&t, &[a2, b2], false).unwrap();
        prop_assert_eq!(keys(&one), keys(&two));
        prop_assert_eq!(keys(&one).len(), one.len());
    }

    /// Linked lists (`:::+`) permuted in tandem keep the same pairs, so the same identities;
    /// and every pair is the values at one index, cut at the shortest list.
    #[test]
    fn linked_pairs_do_not_depend_on_order(
        a in axis_values(),
        b in axis_values(),
        seed in any::<u64>(),
    ) {
        let list = |values: Vec<String>, linked: bool| tasks::ValueList {
            values,
            linked,
            origin: "::: list".into(),
        };
        let t = tpl(&["run", "{1}", "{2}"]);
        let n = a.len().min(b.len());
        let one = tasks::linked_product(&t, &[list(a.clone(), false), list(b.clone(), true)], false)
            .unwrap();
        prop_assert_eq!(one.len(), n);
        for (i, task) in one.iter().enumerate() {
            prop_assert_eq!(&task.argv[1..], &[a[i].clone(), b[i].clone()][..]);
        }
        // The same permutation of the first n indexes applied to both lists.
        let mut idx: Vec<usize> = (0..n).collect();
        idx.rotate_left((seed as usize) % n);
        let a2: Vec<String> = idx.iter().map(|&i| a[i].clone()).collect();
        let b2: Vec<String> = idx.iter().map(|&i| b[i].clone()).collect();
        let two = tasks::linked_product(&t, &[list(a2, false), list(b2, true)], false).unwrap();
        prop_assert_eq!(keys(&one), keys(&two));
    }

    /// Without --shell a value is one argv element, byte for byte, whatever it contains.
    #[test]
    fn values_never_pass_through_a_shell(value in "[ -~]{0,30}") {
        let hostile = format!("$(rm -rf x); echo {value}");
        let t = tpl(&["python", "x.py", "--v", "{v}", "--w={v}"]);
        let tasks = tasks::grid(&t, &[("v".into(), vec![hostile.clone()])], false).unwrap();
        let argv = &tasks[0].argv;
        prop_assert_eq!(argv.len(), 5);
        prop_assert_eq!(&argv[3], &hostile);
        prop_assert_eq!(&argv[4], &format!("--w={hostile}"));
        prop_assert_ne!(&argv[0], "sh");

        let tasks = tasks::cartesian(&tpl(&["echo"]), &[vec![hostile.clone()]], false).unwrap();
        prop_assert_eq!(&tasks[0].argv, &vec!["echo".to_string(), hostile.clone()]);
    }

    /// With --shell the value is quoted so that sh would hand it back as one word.
    #[test]
    fn shell_mode_quotes_so_sh_sees_one_word(value in "[ -~]{0,30}") {
        let t = tpl(&["printf %s {v}"]);
        let tasks = tasks::grid(&t, &[("v".into(), vec![value.clone()])], true).unwrap();
        let argv = &tasks[0].argv;
        prop_assert_eq!(&argv[..2], &["sh".to_string(), "-c".to_string()][..]);
        let words = shell_words_split(&argv[2]);
        prop_assert_eq!(words, vec!["printf".to_string(), "%s".to_string(), value]);
    }
}

/// Splits like sh would (the same crate the core uses, re-exported through a task line).
fn shell_words_split(text: &str) -> Vec<String> {
    tasks::from_lines(text, None, false).unwrap()[0]
        .argv
        .clone()
}

#[test]
fn hostile_value_appears_verbatim() {
    let hostile = "$(rm -rf x); echo";
    let t = tpl(&["python", "t.py", "--lam", "{lam}"]);
    let tasks = tasks::grid(&t, &[("lam".into(), vec![hostile.into()])], false).unwrap();
    assert_eq!(tasks[0].argv, ["python", "t.py", "--lam", hostile]);
    let tasks = tasks::grid(&t, &[("lam".into(), vec![hostile.into()])], true).unwrap();
    assert_eq!(
        tasks[0].argv,
        ["sh", "-c", "python t.py --lam '$(rm -rf x); echo'"]
    );
}
