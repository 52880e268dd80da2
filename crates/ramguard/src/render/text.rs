//! User-supplied text (parameter values, command lines, names) made safe for one line of
//! ramguard's output: a value with a newline or an escape sequence must not be able to fake
//! a `done` line or repaint the terminal.

/// The text with every control character escaped (`\n`, `\r`, `\t`, `\u{1b}`, ...); other
/// characters, non-ASCII included, are kept as they are.
pub fn escape(s: &str) -> String {
    if !s.chars().any(needs_escape) {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if needs_escape(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Control characters, and the bidirectional overrides that reorder what a terminal shows.
fn needs_escape(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_the_rest_kept() {
        assert_eq!(escape("a b"), "a b");
        assert_eq!(escape("x\ndone    #2"), "x\\ndone    #2");
        assert_eq!(escape("\r\t\u{1b}[2J"), "\\r\\t\\u{1b}[2J");
        assert_eq!(escape("λ=1e-10"), "λ=1e-10");
        assert!(!escape("a\u{202e}b").contains('\u{202e}'));
    }
}
