//! Command templates: an argv whose elements may hold `{}`, `{1}`, `{name}` and `{#}`, and
//! GNU parallel's path forms of the value placeholders: `{.}` (without extension), `{/}`
//! (basename), `{//}` (dirname), `{/.}` (basename without extension), also as `{1.}`,
//! `{2/}`, `{name//}`, `{name/.}`.
//!
//! A template is parsed once, up front, so that a stray brace is reported before any task
//! exists. Rendering substitutes values into argv *elements*: a value never passes through
//! a shell, so `$(rm -rf x)` stays the literal text of one argument. `--shell` mode is the
//! one opt-in exception: the elements are joined with spaces as shell text, every
//! substituted value is quoted for POSIX sh, and the argv becomes `sh -c TEXT`.
//!
//! Braces: `{{` and `}}` are literal braces; any other `{`/`}` must form a placeholder.
//! This is stricter than GNU parallel (which leaves unknown braces alone) on purpose: a
//! typo such as `{lamb}` is reported instead of being passed to the program verbatim.

use std::borrow::Cow;

use super::TaskError;

/// The parameter name `{#}` refers to: the task's 1-based sequence number.
pub const SEQ: &str = "#";

/// How a placeholder changes its value, as GNU parallel's replacement strings do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PathPart {
    /// The value as it is.
    All,
    /// `{.}`: without its extension (`a/b.tar.gz` → `a/b.tar`).
    NoExt,
    /// `{/}`: its basename (`a/b.jpg` → `b.jpg`).
    Base,
    /// `{//}`: its dirname (`a/b.jpg` → `a`, `b.jpg` → `.`).
    Dir,
    /// `{/.}`: its basename without extension (`a/b.jpg` → `b`).
    BaseNoExt,
}

impl PathPart {
    /// The suffixes after a name or position, longest first so `//` is not read as `/`.
    const SUFFIXES: [(&'static str, PathPart); 4] = [
        ("/.", PathPart::BaseNoExt),
        ("//", PathPart::Dir),
        ("/", PathPart::Base),
        (".", PathPart::NoExt),
    ];

    /// Applies the transform exactly as GNU parallel does (its regexes and Perl's
    /// `File::Basename::dirname`).
    fn apply(self, v: &str) -> Cow<'_, str> {
        match self {
            PathPart::All => Cow::Borrowed(v),
            PathPart::NoExt => Cow::Borrowed(strip_ext(v)),
            PathPart::Base => Cow::Borrowed(basename(v)),
            PathPart::Dir => Cow::Owned(dirname(v)),
            PathPart::BaseNoExt => Cow::Borrowed(strip_ext(basename(v))),
        }
    }
}

/// `s:\.[^/.]*$::`: drops the last `.` after the last `/` and what follows it.
fn strip_ext(v: &str) -> &str {
    match v.rfind('.') {
        Some(i) if !v[i + 1..].contains('/') => &v[..i],
        _ => v,
    }
}

/// `s:^.*/::`: everything after the last `/` (empty for `dir/`).
fn basename(v: &str) -> &str {
    v.rfind('/').map_or(v, |i| &v[i + 1..])
}

/// Perl's `dirname` on Unix: `.` without a slash, `/` at the root, trailing slashes ignored.
fn dirname(v: &str) -> String {
    let trimmed = v.trim_end_matches('/');
    if trimmed.is_empty() {
        return if v.is_empty() { ".".into() } else { "/".into() };
    }
    match trimmed.rfind('/') {
        None => ".".into(),
        Some(i) => {
            let dir = trimmed[..i].trim_end_matches('/');
            if dir.is_empty() {
                "/".into()
            } else {
                dir.into()
            }
        }
    }
}

/// One placeholder inside a template element.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Placeholder {
    /// `{}`, `{.}`, `{/}`, `{//}`, `{/.}`: the single parameter's value.
    Whole(PathPart),
    /// `{#}`: the task's 1-based sequence number.
    Seq,
    /// `{1}`, `{lam}`, `{1.}`, `{lam/}`: a parameter by name (positional lists are named
    /// "1", "2", ..). `{x.}` means the parameter `x.` if the task has one, else `{x}`
    /// without its extension (`.` may appear in names).
    Name(String, PathPart),
}

impl Placeholder {
    /// Reads the text between the braces.
    fn parse(inner: &str) -> Option<Placeholder> {
        match inner {
            SEQ => return Some(Placeholder::Seq),
            "" => return Some(Placeholder::Whole(PathPart::All)),
            _ => {}
        }
        if let Some(&(_, part)) = PathPart::SUFFIXES.iter().find(|(s, _)| *s == inner) {
            return Some(Placeholder::Whole(part));
        }
        if is_valid_name(inner) {
            return Some(Placeholder::Name(inner.to_string(), PathPart::All));
        }
        for (suffix, part) in PathPart::SUFFIXES {
            if let Some(name) = inner.strip_suffix(suffix) {
                if is_valid_name(name) {
                    return Some(Placeholder::Name(name.to_string(), part));
                }
            }
        }
        None
    }
}

/// A literal run of text or a placeholder.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Lit(String),
    Ph(Placeholder),
}

/// A parsed argv template; render it with a task's parameters to get the argv to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    /// The elements as the user wrote them (for display and fingerprints).
    raw: Vec<String>,
    /// Each element split into literal text and placeholders.
    args: Vec<Vec<Piece>>,
}

/// Returns true if and only if `c` may appear in a placeholder name.
fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.'
}

/// Returns true if and only if `name` is usable as a parameter name in `{name}`.
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(is_name_char)
}

fn parse_arg(arg: &str) -> Result<Vec<Piece>, TaskError> {
    let brace = |reason: String| TaskError::Brace {
        arg: arg.to_string(),
        reason,
    };
    let mut pieces = Vec::new();
    let mut lit = String::new();
    let mut chars = arg.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '{' if chars.peek().map(|&(_, n)| n) == Some('{') => {
                chars.next();
                lit.push('{');
            }
            '}' if chars.peek().map(|&(_, n)| n) == Some('}') => {
                chars.next();
                lit.push('}');
            }
            '}' => return Err(brace(format!("unmatched '}}' at byte {i}"))),
            '{' => {
                let rest = &arg[i + 1..];
                let Some(end) = rest.find('}') else {
                    return Err(brace(format!("unterminated placeholder at byte {i}")));
                };
                let inner = &rest[..end];
                let Some(ph) = Placeholder::parse(inner) else {
                    return Err(brace(format!(
                        "'{{{inner}}}' is not a placeholder (names use letters, digits, _ - .; \
                         path forms are {{.}} {{/}} {{//}} {{/.}} and {{1.}} {{1/}} {{1//}} {{1/.}})"
                    )));
                };
                // Skip the placeholder's text; `end` is a byte offset into `rest`.
                while chars.peek().is_some_and(|&(j, _)| j <= i + 1 + end) {
                    chars.next();
                }
                if !lit.is_empty() {
                    pieces.push(Piece::Lit(std::mem::take(&mut lit)));
                }
                pieces.push(Piece::Ph(ph));
            }
            c => lit.push(c),
        }
    }
    if !lit.is_empty() || pieces.is_empty() {
        pieces.push(Piece::Lit(lit));
    }
    Ok(pieces)
}

/// Quotes an element for display only when a reader would need the quotes.
fn display_word(w: &str) -> Cow<'_, str> {
    let plain = !w.is_empty()
        && w.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-+=/.,:@%{}#^~".contains(c));
    if plain {
        Cow::Borrowed(w)
    } else {
        shell_words::quote(w)
    }
}

impl Template {
    /// Parses an argv template, refusing an empty command and any stray brace.
    pub fn parse(argv: &[String]) -> Result<Template, TaskError> {
        if argv.is_empty() {
            return Err(TaskError::EmptyTemplate);
        }
        let args = argv
            .iter()
            .map(|a| parse_arg(a))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Template {
            raw: argv.to_vec(),
            args,
        })
    }

    /// Distinct placeholder names in order of first use: `""` for `{}`, `"#"` for `{#}`.
    pub fn placeholders(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for piece in self.args.iter().flatten() {
            let name = match piece {
                Piece::Lit(_) => continue,
                Piece::Ph(Placeholder::Whole(_)) => "",
                Piece::Ph(Placeholder::Seq) => SEQ,
                Piece::Ph(Placeholder::Name(n, _)) => n.as_str(),
            };
            if !out.iter().any(|o| o == name) {
                out.push(name.to_string());
            }
        }
        out
    }

    /// Returns true if and only if the template holds at least one placeholder.
    pub fn has_placeholders(&self) -> bool {
        self.args
            .iter()
            .flatten()
            .any(|p| matches!(p, Piece::Ph(_)))
    }

    /// The template as one line for humans and for the sweep fingerprint.
    pub fn display(&self) -> String {
        self.raw
            .iter()
            .map(|w| display_word(w))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The elements exactly as the user wrote them.
    pub fn raw(&self) -> &[String] {
        &self.raw
    }

    /// Renders the argv for one task; `seq` is the task's 1-based number for `{#}`.
    pub fn render(
        &self,
        params: &[(String, String)],
        seq: usize,
        shell: bool,
    ) -> Result<Vec<String>, TaskError> {
        self.render_inner(params, seq, shell, false)
    }

    /// Renders like [`Template::render`], appending every non-`#` value as a last argument
    /// when the template has no placeholder at all (GNU parallel's convention for `:::`).
    pub fn render_appending(
        &self,
        params: &[(String, String)],
        seq: usize,
        shell: bool,
    ) -> Result<Vec<String>, TaskError> {
        self.render_inner(params, seq, shell, !self.has_placeholders())
    }

    fn render_inner(
        &self,
        params: &[(String, String)],
        seq: usize,
        shell: bool,
        append: bool,
    ) -> Result<Vec<String>, TaskError> {
        let seq_text = seq.to_string();
        let values: Vec<&(String, String)> = params.iter().filter(|(k, _)| k != SEQ).collect();
        let find = |n: &str| values.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
        let lookup = |ph: &Placeholder| -> Result<Cow<'_, str>, TaskError> {
            match ph {
                Placeholder::Seq => Ok(Cow::Borrowed(seq_text.as_str())),
                Placeholder::Whole(part) => match values.as_slice() {
                    [(_, v)] => Ok(part.apply(v)),
                    _ => Err(TaskError::AmbiguousWhole {
                        params: name_list(params),
                    }),
                },
                Placeholder::Name(n, part) => {
                    let found = match (find(n), n.strip_suffix('.')) {
                        (Some(v), _) => Some(part.apply(v)),
                        (None, Some(stem)) if *part == PathPart::All => {
                            find(stem).map(|v| PathPart::NoExt.apply(v))
                        }
                        (None, _) => None,
                    };
                    found.ok_or_else(|| TaskError::UnknownPlaceholder {
                        name: n.clone(),
                        params: name_list(params),
                    })
                }
            }
        };
        let mut out = Vec::with_capacity(self.args.len() + values.len());
        for arg in &self.args {
            let mut s = String::new();
            for piece in arg {
                match piece {
                    Piece::Lit(l) => s.push_str(l),
                    Piece::Ph(ph) => {
                        let v = lookup(ph)?;
                        if shell {
                            s.push_str(&shell_words::quote(&v));
                        } else {
                            s.push_str(&v);
                        }
                    }
                }
            }
            out.push(s);
        }
        if append {
            for (_, v) in &values {
                out.push(if shell {
                    shell_words::quote(v).into_owned()
                } else {
                    v.clone()
                });
            }
        }
        if shell {
            return Ok(vec!["sh".into(), "-c".into(), out.join(" ")]);
        }
        Ok(out)
    }
}

/// The parameter names (without `#`) for error messages: "lam, beta" or "none".
pub(crate) fn name_list(params: &[(String, String)]) -> String {
    let names: Vec<&str> = params
        .iter()
        .map(|(k, _)| k.as_str())
        .filter(|k| *k != SEQ)
        .collect();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(args: &[&str]) -> Template {
        Template::parse(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    fn p(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn substitutes_inside_elements() {
        let tpl = t(&[
            "python",
            "t3b.py",
            "--lam={lam}",
            "--beta",
            "{beta}",
            "out_{#}.csv",
        ]);
        let argv = tpl
            .render(&p(&[("lam", "1e-10"), ("beta", "3.0")]), 7, false)
            .unwrap();
        assert_eq!(
            argv,
            [
                "python",
                "t3b.py",
                "--lam=1e-10",
                "--beta",
                "3.0",
                "out_7.csv"
            ]
        );
        assert_eq!(tpl.placeholders(), ["lam", "beta", "#"]);
    }

    #[test]
    fn whole_and_positional() {
        let tpl = t(&["echo", "{}", "{1}"]);
        assert_eq!(
            tpl.render(&p(&[("1", "a")]), 1, false).unwrap(),
            ["echo", "a", "a"]
        );
        let err = tpl
            .render(&p(&[("1", "a"), ("2", "b")]), 1, false)
            .unwrap_err();
        assert!(err.to_string().contains("params: 1, 2"), "{err}");
    }

    #[test]
    fn literal_braces() {
        let tpl = t(&["awk", "{{print $1}}", "{{x}}{x}"]);
        assert!(!tpl.placeholders().is_empty());
        assert_eq!(
            tpl.render(&p(&[("x", "5")]), 1, false).unwrap(),
            ["awk", "{print $1}", "{x}5"]
        );
        assert!(!t(&["echo", "{{}}"]).has_placeholders());
    }

    #[test]
    fn stray_braces_are_errors_naming_the_argument() {
        for bad in ["{lam", "lam}", "{print $1}", "a{b{c}"] {
            let err = Template::parse(&["echo".into(), bad.into()]).unwrap_err();
            let msg = err.to_string();
            assert!(msg.contains(bad), "{msg}");
            assert!(msg.contains("{{"), "{msg} should hint at escaping");
        }
        assert_eq!(
            Template::parse(&[]).unwrap_err().to_string(),
            "empty command: give the command to run after --"
        );
    }

    #[test]
    fn unknown_placeholder_names_it_and_the_params() {
        let tpl = t(&["x", "{beta}"]);
        let err = tpl.render(&p(&[("lam", "1")]), 1, false).unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown placeholder {beta} in template (params: lam)"
        );
    }

    #[test]
    fn shell_mode_quotes_values() {
        let tpl = t(&["python x.py {v} > out_{#}.txt"]);
        let argv = tpl.render(&p(&[("v", "a b; rm -rf /")]), 2, true).unwrap();
        assert_eq!(
            argv,
            ["sh", "-c", "python x.py 'a b; rm -rf /' > out_2.txt"]
        );
    }

    #[test]
    fn appending_without_placeholders() {
        let tpl = t(&["echo", "x"]);
        let argv = tpl
            .render_appending(&p(&[("1", "a"), ("2", "b c")]), 1, false)
            .unwrap();
        assert_eq!(argv, ["echo", "x", "a", "b c"]);
        let argv = tpl.render_appending(&p(&[("1", "b c")]), 1, true).unwrap();
        assert_eq!(argv, ["sh", "-c", "echo x 'b c'"]);
    }

    /// The rows GNU parallel 20221122 prints for
    /// `parallel -k echo {} {.} {/} {//} {/.} ::: foo.jpg subdir/foo.jpg ...` (the manual's
    /// examples for each replacement string, plus the edge cases its regexes decide).
    #[test]
    fn path_placeholders_match_gnu_parallel() {
        let tpl = t(&["echo", "{}", "{.}", "{/}", "{//}", "{/.}"]);
        let rows = [
            ["foo.jpg", "foo", "foo.jpg", ".", "foo"],
            ["subdir/foo.jpg", "subdir/foo", "foo.jpg", "subdir", "foo"],
            [
                "sub.dir/foo.jpg",
                "sub.dir/foo",
                "foo.jpg",
                "sub.dir",
                "foo",
            ],
            ["sub.dir/bar", "sub.dir/bar", "bar", "sub.dir", "bar"],
            ["/a/b.tar.gz", "/a/b.tar", "b.tar.gz", "/a", "b.tar"],
            [".bashrc", "", ".bashrc", ".", ""],
            ["dir/", "dir/", "", ".", ""],
            ["foo.", "foo", "foo.", ".", "foo"],
            ["/x", "/x", "x", "/", "x"],
            ["a//b", "a//b", "b", "a", "b"],
        ];
        for row in rows {
            let argv = tpl.render(&p(&[("1", row[0])]), 1, false).unwrap();
            assert_eq!(argv[1..], row, "input {}", row[0]);
        }
    }

    /// `parallel echo {1.} {2/} {2//} {2/.} ::: a.b ::: c/d.e` prints `a d.e c d`.
    #[test]
    fn positional_and_named_path_placeholders() {
        let tpl = t(&["echo", "{1.}", "{2/}", "{2//}", "{2/.}"]);
        let argv = tpl
            .render(&p(&[("1", "a.b"), ("2", "c/d.e")]), 1, false)
            .unwrap();
        assert_eq!(argv, ["echo", "a", "d.e", "c", "d"]);
        let tpl = t(&["conv", "{img}", "out/{img/.}.png", "{v.}"]);
        let argv = tpl
            .render(&p(&[("img", "raw/cat.jpg"), ("v.", "literal")]), 1, false)
            .unwrap();
        assert_eq!(argv, ["conv", "raw/cat.jpg", "out/cat.png", "literal"]);
        let err = Template::parse(&["x".into(), "{a/b}".into()]).unwrap_err();
        assert!(err.to_string().contains("path forms are {.}"), "{err}");
    }

    #[test]
    fn display_quotes_only_when_needed() {
        let tpl = t(&["python", "t3b.py", "--lam", "{lam}", "a b"]);
        assert_eq!(tpl.display(), "python t3b.py --lam {lam} 'a b'");
    }
}
