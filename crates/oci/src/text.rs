//! Text that strangers wrote, made safe to print. A registry's error message, a header, a layer's
//! file name or a YAML document can hold terminal control sequences (an OSC that sets the window
//! title, a clear-screen, a cursor move that hides the line before it): printed raw they act on
//! the user's terminal or forge log lines. Every such string passes through [`printable`] on its
//! way into an error, a log line or a report.

use std::borrow::Cow;
use std::fmt::Write as _;

/// `s` with every control character (C0, DEL, C1) and the Unicode characters that reorder or
/// hide text (bidi controls, zero-width marks) written as a visible escape (`\u{1b}`, `\n`,
/// `\t`…); anything else is unchanged. Borrowed when there is nothing to escape.
pub fn printable(s: &str) -> Cow<'_, str> {
    if !s.chars().any(unsafe_char) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            c if !unsafe_char(c) => out.push(c),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
        }
    }
    Cow::Owned(out)
}

/// Like [`printable`] for bytes that may not be UTF-8 (a tar entry's name): invalid sequences
/// become U+FFFD first.
pub fn printable_bytes(bytes: &[u8]) -> String {
    printable(&String::from_utf8_lossy(bytes)).into_owned()
}

/// A character that changes what a terminal shows instead of showing itself.
fn unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{200b}'..='\u{200f}' // zero-width space/joiners, LRM/RLM
            | '\u{2028}'..='\u{202e}' // line/paragraph separators, bidi embeddings/overrides
            | '\u{2060}'..='\u{2064}' // word joiner, invisible operators
            | '\u{2066}'..='\u{2069}' // bidi isolates
            | '\u{feff}' // zero-width no-break space (BOM)
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_borrowed_unchanged() {
        let s = "manifest unknown: é ü 日本 (sha256:abc)";
        assert!(matches!(printable(s), Cow::Borrowed(t) if t == s));
    }

    #[test]
    fn terminal_sequences_are_escaped() {
        let hostile = "denied\x1b]0;pwned\x07\x1b[2J\x1b[1A\r\nfake: ok\u{9b}31m\u{202e}";
        let shown = printable(hostile);
        assert!(
            !shown.chars().any(unsafe_char),
            "nothing a terminal acts on is left: {shown}"
        );
        assert_eq!(
            shown,
            "denied\\u{1b}]0;pwned\\u{7}\\u{1b}[2J\\u{1b}[1A\\r\\nfake: ok\\u{9b}31m\\u{202e}"
        );
    }

    #[test]
    fn invalid_utf8_is_replaced_then_escaped() {
        assert_eq!(printable_bytes(b"etc/\xff\x1bx"), "etc/\u{fffd}\\u{1b}x");
    }
}
