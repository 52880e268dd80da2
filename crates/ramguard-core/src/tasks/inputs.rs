//! GNU parallel's input sources after the command: `::: a b` (values), `:::: FILE...`
//! (values from files, one a line; `-` is stdin), and their linked forms `:::+` and
//! `::::+`, which pair a source with the one before it instead of multiplying.
//!
//! Sources combine as GNU parallel combines them: a run of linked sources advances
//! together and stops at the shortest (its manual: "values do not wrap"), and the runs are
//! multiplied, the first varying slowest. Values are named by position, `{1}`, `{2}`, ..,
//! one per source. Reading files is the binary's job: [`split_inputs`] says which to read,
//! [`values_of_text`] turns their text into values.

use super::sources::{for_each_combination, product_len};
use super::{TaskDef, TaskError, Template};

/// Where one input source's values come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputSource {
    /// `::: a b c`: the values as typed.
    Values(Vec<String>),
    /// `:::: FILE`: one value a line of FILE (`-` for stdin).
    File(String),
}

/// One input source, as typed after the command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    /// Its values, or the file holding them.
    pub source: InputSource,
    /// Written `:::+`/`::::+`: paired with the previous source, not multiplied with it.
    pub linked: bool,
}

/// One input source with its values read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueList {
    /// The values, in order.
    pub values: Vec<String>,
    /// Paired with the previous list (see [`Input::linked`]).
    pub linked: bool,
    /// How the user wrote it, for errors: `::: list 2`, `input file a.txt`, `stdin`.
    pub origin: String,
}

/// Returns true if and only if `arg` separates the command from an input source.
pub fn is_separator(arg: &str) -> bool {
    matches!(arg, ":::" | ":::+" | "::::" | "::::+")
}

/// Splits `CMD ARGS ::: a b :::+ 1 2 :::: f.txt` into the template and the input sources;
/// every file after `::::` is a source of its own, as in GNU parallel.
pub fn split_inputs(args: &[String]) -> Result<(Vec<String>, Vec<Input>), TaskError> {
    let first = args
        .iter()
        .position(|a| is_separator(a))
        .unwrap_or(args.len());
    let template = args[..first].to_vec();
    let mut inputs = Vec::new();
    let mut i = first;
    while i < args.len() {
        let sep = args[i].as_str();
        let end = args[i + 1..]
            .iter()
            .position(|a| is_separator(a))
            .map_or(args.len(), |p| i + 1 + p);
        let words = &args[i + 1..end];
        let linked = sep.ends_with('+');
        if sep.starts_with("::::") {
            if words.is_empty() {
                return Err(TaskError::Empty(format!(
                    "`{sep}` needs a file to read values from (`-` for stdin)"
                )));
            }
            inputs.extend(words.iter().map(|w| Input {
                source: InputSource::File(w.clone()),
                linked,
            }));
        } else {
            inputs.push(Input {
                source: InputSource::Values(words.to_vec()),
                linked,
            });
        }
        i = end;
    }
    Ok((template, inputs))
}

/// The values of a file or stdin: one a line, as GNU parallel reads them (an empty line is
/// an empty value; a last line without a newline counts; `\r\n` endings are stripped).
pub fn values_of_text(text: &str) -> Vec<String> {
    text.lines().map(str::to_string).collect()
}

/// The tasks of the input sources: linked runs zipped to their shortest, runs multiplied
/// with the first varying slowest. With no placeholder in the template the values are
/// appended as last arguments, one per source.
pub fn linked_product(
    template: &Template,
    lists: &[ValueList],
    shell: bool,
) -> Result<Vec<TaskDef>, TaskError> {
    if lists.is_empty() {
        return Err(TaskError::Empty("no ::: lists were given".into()));
    }
    if let Some(l) = lists.iter().find(|l| l.values.is_empty()) {
        let hint = if l.origin.starts_with(":::") {
            " (put values after :::)"
        } else {
            " (no lines)"
        };
        return Err(TaskError::Empty(format!("{} is empty{hint}", l.origin)));
    }
    // Runs of linked lists: (first list, number of lists, rows = shortest length).
    let mut runs: Vec<(usize, usize, usize)> = Vec::new();
    for (i, l) in lists.iter().enumerate() {
        match runs.last_mut() {
            Some((_, n, rows)) if l.linked => {
                *n += 1;
                *rows = (*rows).min(l.values.len());
            }
            _ => runs.push((i, 1, l.values.len())),
        }
    }
    let lens: Vec<usize> = runs.iter().map(|r| r.2).collect();
    let count = product_len(&lens, "the ::: lists")?;
    // Each run is one axis whose "values" are row numbers.
    let axes: Vec<(String, Vec<String>)> = runs
        .iter()
        .map(|&(_, _, rows)| (String::new(), (0..rows).map(|r| r.to_string()).collect()))
        .collect();
    let mut out = Vec::with_capacity(count);
    for_each_combination(&axes, |picked| {
        let mut params = Vec::with_capacity(lists.len());
        for (&(start, n, _), (_, row)) in runs.iter().zip(&picked) {
            let row: usize = row.parse().unwrap_or(0);
            for (j, list) in lists.iter().enumerate().skip(start).take(n) {
                params.push(((j + 1).to_string(), list.values[row].clone()));
            }
        }
        let argv = template.render_appending(&params, out.len() + 1, shell)?;
        out.push(TaskDef::new(params, argv));
        Ok(())
    })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    fn t(args: &[&str]) -> Template {
        Template::parse(&s(args)).unwrap()
    }

    fn list(values: &[&str], linked: bool) -> ValueList {
        ValueList {
            values: s(values),
            linked,
            origin: "::: list".into(),
        }
    }

    fn lines(tasks: &[TaskDef]) -> Vec<String> {
        tasks.iter().map(|t| t.argv[1..].join(" ")).collect()
    }

    #[test]
    fn split_every_separator() {
        let (tpl, inputs) = split_inputs(&s(&[
            "echo", "{1}", ":::", "a", "b", ":::+", "1", "2", "::::", "f", "g", "::::+", "h",
        ]))
        .unwrap();
        assert_eq!(tpl, s(&["echo", "{1}"]));
        let want = [
            (InputSource::Values(s(&["a", "b"])), false),
            (InputSource::Values(s(&["1", "2"])), true),
            (InputSource::File("f".into()), false),
            (InputSource::File("g".into()), false),
            (InputSource::File("h".into()), true),
        ];
        let got: Vec<(InputSource, bool)> =
            inputs.into_iter().map(|i| (i.source, i.linked)).collect();
        assert_eq!(got, want);
        let err = split_inputs(&s(&["echo", "::::"])).unwrap_err();
        assert!(err.to_string().contains("`::::` needs a file"), "{err}");
        let (tpl, inputs) = split_inputs(&s(&["echo", "x"])).unwrap();
        assert_eq!((tpl.len(), inputs.len()), (2, 0));
    }

    /// `parallel echo ::: a b c :::+ 1 2 3` prints `a 1`, `b 2`, `c 3`.
    #[test]
    fn linked_lists_advance_together() {
        let tasks = linked_product(
            &t(&["echo"]),
            &[list(&["a", "b", "c"], false), list(&["1", "2", "3"], true)],
            false,
        )
        .unwrap();
        assert_eq!(lines(&tasks), ["a 1", "b 2", "c 3"]);
        assert_eq!(tasks[2].key, r#"{"1":"c","2":"3"}"#);
    }

    /// GNU parallel's manual: "values do not wrap: the shortest input source determines
    /// the length" (`::: a b c :::+ 1 2` prints `a 1`, `b 2`).
    #[test]
    fn the_shortest_linked_list_decides() {
        let tasks = linked_product(
            &t(&["echo"]),
            &[list(&["a", "b", "c"], false), list(&["1", "2"], true)],
            false,
        )
        .unwrap();
        assert_eq!(lines(&tasks), ["a 1", "b 2"]);
    }

    /// The manual's example `parallel echo ::: a b c :::+ 1 2 3 ::: X Y :::+ 11 22`.
    #[test]
    fn linked_runs_multiply() {
        let tasks = linked_product(
            &t(&["echo", "{1}", "{2}", "{3}", "{4}"]),
            &[
                list(&["a", "b", "c"], false),
                list(&["1", "2", "3"], true),
                list(&["X", "Y"], false),
                list(&["11", "22"], true),
            ],
            false,
        )
        .unwrap();
        assert_eq!(
            lines(&tasks),
            ["a 1 X 11", "a 1 Y 22", "b 2 X 11", "b 2 Y 22", "c 3 X 11", "c 3 Y 22"]
        );
    }

    /// `parallel echo {1} {2} ::: x y :::: inputs.txt` with lines `in1`, `in2`.
    #[test]
    fn file_values_mix_with_typed_ones() {
        let file = ValueList {
            values: values_of_text("in1\nin2\n"),
            linked: false,
            origin: "input file inputs.txt".into(),
        };
        let tasks = linked_product(
            &t(&["echo", "{1}", "{2}"]),
            &[list(&["x", "y"], false), file],
            false,
        )
        .unwrap();
        assert_eq!(lines(&tasks), ["x in1", "x in2", "y in1", "y in2"]);
    }

    #[test]
    fn lines_are_values_as_gnu_parallel_reads_them() {
        assert_eq!(values_of_text("a\r\n\nb c"), s(&["a", "", "b c"]));
        assert!(values_of_text("").is_empty());
        let empty = ValueList {
            values: vec![],
            linked: false,
            origin: "input file e.txt".into(),
        };
        let err = linked_product(&t(&["echo"]), &[empty], false).unwrap_err();
        assert_eq!(
            err.to_string(),
            "no tasks: input file e.txt is empty (no lines)"
        );
    }

    #[test]
    fn a_leading_link_has_nothing_to_pair_with() {
        let tasks = linked_product(&t(&["echo"]), &[list(&["a", "b"], true)], false).unwrap();
        assert_eq!(lines(&tasks), ["a", "b"]);
    }
}
