//! `stevedore://` references in Kubernetes YAML: finding them and replacing them in the text.
//!
//! The YAML is never parsed into values and written out again: the scanner walks the text
//! just far enough to know where each scalar (plain, single- or double-quoted) starts and
//! ends, and what is a comment, so every byte it does not replace stays as it was.
//!
//! What counts, as in ko's `ko://`: a scalar whose whole value is `stevedore://`,
//! `stevedore://PACKAGE` or `stevedore://PACKAGE/BIN`. Not replaced: text in comments, a
//! `stevedore://` in the middle of a longer string (`--image=stevedore://x`), and block scalars
//! (`|`, `>`), which hold text rather than a value. A scalar that starts with `stevedore://`
//! but is no such reference (`stevedore://app:1.0`) is an error, so that nothing is deployed
//! with a reference left unresolved by mistake. For the same reason a reference YAML would read
//! differently from its bytes is refused, naming its line: one under a tag that makes it no
//! string (`!!binary`), one spelled with escapes (`"stevedore:\/\/x"`), one that YAML continues
//! on the next line. Anchors and string tags are fine (`&img !!str stevedore://x`), and an
//! alias (`*img`) names whatever its anchor's value becomes.
//!
//! The scanner never panics, whatever the text (the `resolve` fuzz target checks it).

use std::ops::Range;

use crate::text::printable;

/// The prefix that marks a reference.
pub const SCHEME: &str = "stevedore://";

/// What a reference names: a workspace member and one of its binaries, each defaulting to
/// what a plain `cargo stevedore build` would pick.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Target {
    /// The package; `None`: the current one.
    pub package: Option<String>,
    /// The binary; `None`: the package's only one (or its `default-run`).
    pub bin: Option<String>,
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(SCHEME)?;
        if let Some(package) = &self.package {
            f.write_str(package)?;
        }
        if let Some(bin) = &self.bin {
            write!(f, "/{bin}")?;
        }
        Ok(())
    }
}

/// One reference found: where its value is in the text, and what it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The byte range of the value (inside the quotes, for a quoted scalar).
    pub span: Range<usize>,
    /// What it names.
    pub target: Target,
}

/// A scalar starting with `stevedore://` that stevedore cannot resolve.
#[derive(Debug, thiserror::Error)]
pub enum BadReference {
    /// It names no package and binary.
    #[error(
        "line {line}: `{}` is not a reference stevedore can resolve: write \
         `stevedore://PACKAGE/BIN`, `stevedore://PACKAGE` or `stevedore://` (the current package) \
         as the whole value",
        printable(value)
    )]
    NotATarget {
        /// 1-based line number.
        line: usize,
        /// The scalar as written.
        value: String,
    },
    /// It is written with escapes (`"stevedore:\\/\\/x"`, `'it''s'`): its bytes are not the
    /// reference, so they cannot be replaced as one.
    #[error(
        "line {line}: `{}` is a reference written with escapes: write it as plain text \
         (`stevedore://PACKAGE/BIN`)",
        printable(written)
    )]
    Escaped {
        /// 1-based line number.
        line: usize,
        /// The scalar as written, escapes and all.
        written: String,
    },
    /// It carries a YAML tag that makes it something other than a string (`!!binary`, `!foo`),
    /// which a digest put in its place would not be.
    #[error(
        "line {line}: `{} {}` is a reference with the tag `{}`, which makes it something other \
         than a string: remove the tag (or write `!!str`)",
        printable(tag),
        printable(value),
        printable(tag)
    )]
    Tagged {
        /// 1-based line number.
        line: usize,
        /// The tag as written.
        tag: String,
        /// The scalar as written.
        value: String,
    },
    /// A carriage return that is not part of a CRLF: YAML reads it as a line break, which the
    /// scanner does not follow, so the document is refused rather than misread.
    #[error(
        "line {line}: a carriage return (\\r) ends a line alone here: write LF or CRLF line \
         ends (e.g. `dos2unix` or `tr '\\r' '\\n'`)"
    )]
    LoneCarriageReturn {
        /// 1-based line number (counted by LF).
        line: usize,
    },
}

/// Where the first `\r` not followed by `\n` is (found by the `resolve` fuzz target: the
/// scanner reads lines by LF, so old-Mac line ends made it see another document than YAML).
fn lone_carriage_return(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    bytes
        .iter()
        .enumerate()
        .find(|&(i, &b)| b == b'\r' && bytes.get(i + 1) != Some(&b'\n'))
        .map(|(i, _)| i)
}

/// The tags a reference may carry: they make a scalar a string, as a digest is. `!` alone is
/// YAML's non-specific tag, which for a quoted scalar means a string too.
const STRING_TAGS: [&str; 3] = ["!!str", "!<tag:yaml.org,2002:str>", "!"];

/// Every reference in `text`, in order.
pub fn find(text: &str) -> Result<Vec<Found>, BadReference> {
    if let Some(at) = lone_carriage_return(text) {
        let line = text[..at].matches('\n').count() + 1;
        return Err(BadReference::LoneCarriageReturn { line });
    }
    let mut found = Vec::new();
    // Line numbers counted on from the last reference's, so a long text is read once.
    let (mut counted, mut lines) = (0, 0);
    for scalar in scalars(text) {
        if !scalar.value.starts_with(SCHEME) {
            continue;
        }
        lines += text[counted..scalar.span.start].matches('\n').count();
        counted = scalar.span.start;
        let line = lines + 1;
        if let Some(tag) = scalar.tag.map(|t| &text[t]) {
            if !STRING_TAGS.contains(&tag) {
                return Err(BadReference::Tagged {
                    line,
                    tag: tag.to_owned(),
                    value: scalar.value,
                });
            }
        }
        let written = &text[scalar.span.clone()];
        if written != scalar.value {
            return Err(BadReference::Escaped {
                line,
                written: written.to_owned(),
            });
        }
        match parse_target(&scalar.value) {
            Some(target) => found.push(Found {
                span: scalar.span,
                target,
            }),
            None => {
                return Err(BadReference::NotATarget {
                    line,
                    value: scalar.value,
                })
            }
        }
    }
    Ok(found)
}

/// `text` with each found reference replaced by what `resolved` gives for its target.
pub fn replace(text: &str, found: &[Found], resolved: impl Fn(&Target) -> String) -> String {
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for f in found {
        out.push_str(&text[at..f.span.start]);
        out.push_str(&resolved(&f.target));
        at = f.span.end;
    }
    out.push_str(&text[at..]);
    out
}

fn parse_target(value: &str) -> Option<Target> {
    let rest = value.strip_prefix(SCHEME)?;
    let name = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    match rest.split_once('/') {
        None if rest.is_empty() => Some(Target {
            package: None,
            bin: None,
        }),
        None if name(rest) => Some(Target {
            package: Some(rest.to_owned()),
            bin: None,
        }),
        Some((package, bin)) if name(package) && name(bin) => Some(Target {
            package: Some(package.to_owned()),
            bin: Some(bin.to_owned()),
        }),
        _ => None,
    }
}

/// A scalar that can be a value: where its value is, the value (quotes removed, escapes
/// decoded), and the tag written before it, if any.
struct Scalar {
    span: Range<usize>,
    value: String,
    tag: Option<Range<usize>>,
}

/// The scalars of a YAML text that can be values. Every index the scan stops at is the start of
/// a character: it moves past ASCII bytes it has matched, or to the next one it looks for.
fn scalars(text: &str) -> Vec<Scalar> {
    let mut scan = Scan {
        text,
        b: text.as_bytes(),
        out: Vec::new(),
        flow: 0,
        tag: None,
        parent: None,
        line: (0, 0),
    };
    let mut i = 0;
    while i < scan.b.len() {
        i = scan.token(i);
    }
    scan.out
}

/// The scanner's state between tokens.
struct Scan<'t> {
    text: &'t str,
    b: &'t [u8],
    out: Vec<Scalar>,
    /// The depth of `[ ]` and `{ }`.
    flow: usize,
    /// The tag of the node that comes next; an indicator or a scalar ends it.
    tag: Option<Range<usize>>,
    /// The column of the key or `-` the next block value belongs to (`None`: the document's).
    parent: Option<usize>,
    /// Where the scan last asked for a column, and the start of that line: columns are asked
    /// in text order, so each byte is looked at once (a long line of `- - -` stays linear).
    line: (usize, usize),
}

impl Scan<'_> {
    /// Reads the token at `i`; returns where the next one may start.
    fn token(&mut self, i: usize) -> usize {
        let b = self.b;
        let c = b[i];
        match c {
            b'#' if i == 0 || white(b[i - 1]) => line_end(b, i),
            b' ' | b'\t' | b'\r' | b'\n' => i + 1,
            b'-' | b'.' if document_marker(b, i) => {
                (self.flow, self.tag, self.parent) = (0, None, None);
                i + 3
            }
            b'[' | b'{' | b']' | b'}' | b',' => {
                self.flow = match c {
                    b'[' | b'{' => self.flow + 1,
                    b']' | b'}' => self.flow.saturating_sub(1),
                    _ => self.flow,
                };
                self.tag = None;
                i + 1
            }
            b'-' | b':' | b'?' if next_is_space(b, i + 1) => {
                if c == b'-' && self.flow == 0 {
                    self.parent = Some(self.column(i));
                }
                self.tag = None;
                i + 1
            }
            b'!' => {
                let end = property_end(b, i, self.flow > 0);
                self.tag = Some(i..end);
                end
            }
            // An anchor leaves the node after it a value (resolving it resolves its aliases
            // too); an alias holds no text of its own.
            b'&' | b'*' => property_end(b, i, self.flow > 0),
            b'"' | b'\'' => {
                let (content, end) = quoted(b, i);
                let raw = &self.text[content.clone()];
                let value = match c {
                    b'\'' => raw.replace("''", "'"),
                    _ => unescape(raw),
                };
                self.push(i, content, value, end);
                end
            }
            b'|' | b'>' if block_header(b, i) => {
                self.tag = None;
                block_end(b, i, self.parent)
            }
            _ => {
                // Any plain scalar, not only a reference: a reference on the next line may be
                // the end of a longer value.
                let end = plain_end(b, i, self.flow > 0);
                let end = continued_end(b, end, self.parent, self.flow > 0);
                self.push(i, i..end, self.text[i..end].to_owned(), end);
                // `end` is past `i` for any text that reaches here; were it not, the next
                // character (not byte) is where to go on.
                end.max(i + self.text[i..].chars().next().map_or(1, char::len_utf8))
            }
        }
    }

    /// The column of `i`, at or after any index asked before.
    fn column(&mut self, i: usize) -> usize {
        let (seen, start) = match self.line {
            (seen, start) if seen <= i => (seen, start),
            _ => (0, 0),
        };
        let start = self.b[seen..i]
            .iter()
            .rposition(|&c| c == b'\n')
            .map_or(start, |p| seen + p + 1);
        self.line = (i, start);
        i - start
    }

    /// A scalar starting at `start` (its quote, if quoted) whose text ends before `end`; a key
    /// when a `:` follows, which its block value then belongs to.
    fn push(&mut self, start: usize, span: Range<usize>, value: String, end: usize) {
        if self.flow == 0 && is_key(self.b, end) {
            self.parent = Some(self.column(start));
        }
        let tag = self.tag.take();
        self.out.push(Scalar { span, value, tag });
    }
}

/// `---` or `...` at the start of a line, then a blank or the end: a document starts or ends.
fn document_marker(b: &[u8], i: usize) -> bool {
    let marker = &b[i..b.len().min(i + 3)];
    (marker == b"---" || marker == b"...")
        && (i == 0 || b[i - 1] == b'\n')
        && next_is_space(b, i + 3)
}

/// Whether a `:` and a blank (or the end) follow `end`, past blanks.
fn is_key(b: &[u8], end: usize) -> bool {
    let mut j = end;
    while j < b.len() && (b[j] == b' ' || b[j] == b'\t') {
        j += 1;
    }
    j < b.len() && b[j] == b':' && next_is_space(b, j + 1)
}

/// Where a plain scalar that ends its line at `end` really ends: YAML continues it on each
/// following line, past blank lines, until a comment or a document marker; in a block, only on
/// lines indented deeper than its key or `-` (`parent`); in a flow collection, until a `,`, `:`,
/// `]` or `}`. `image: stevedore://x` followed by a deeper `more` is the value
/// `stevedore://x more`, no reference; so is `[stevedore://x` followed by `more]`.
fn continued_end(b: &[u8], end: usize, parent: Option<usize>, in_flow: bool) -> usize {
    let mut end = end;
    loop {
        let mut after = end;
        while after < b.len() && (b[after] == b' ' || b[after] == b'\t') {
            after += 1;
        }
        if after < b.len() && !matches!(b[after], b'\n' | b'\r') {
            return end; // a comment or a `:` ended it, not the line
        }
        let Some(first) = (after..b.len()).find(|&k| !white(b[k])) else {
            return end;
        };
        // `after` is at the line break, so the line's start is found among blanks.
        let line_start = b[after..first]
            .iter()
            .rposition(|&c| c == b'\n')
            .map_or(after, |p| after + p + 1);
        let deeper = in_flow || parent.is_none_or(|p| first - line_start > p);
        let flow_ends = in_flow && matches!(b[first], b',' | b':' | b']' | b'}');
        if !deeper || flow_ends || b[first] == b'#' || document_marker(b, first) {
            return end;
        }
        end = plain_end(b, first, in_flow).max(first);
    }
}

/// A double-quoted scalar's value: YAML's escapes (`\\n`, `\\/`, `\\x41`, `\\u00e9`…)
/// decoded; one YAML does not know stays as written. Line folding is not done: a reference
/// holds no line break either way.
fn unescape(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(at) = rest.find('\\') {
        out.push_str(&rest[..at]);
        let escape = &rest[at + 1..];
        let Some(e) = escape.chars().next() else {
            out.push('\\');
            return out;
        };
        let simple = match e {
            '0' => Some('\0'),
            'a' => Some('\u{7}'),
            'b' => Some('\u{8}'),
            't' | '\t' => Some('\t'),
            'n' => Some('\n'),
            'v' => Some('\u{b}'),
            'f' => Some('\u{c}'),
            'r' => Some('\r'),
            'e' => Some('\u{1b}'),
            ' ' | '"' | '/' | '\\' => Some(e),
            'N' => Some('\u{85}'),
            '_' => Some('\u{a0}'),
            'L' => Some('\u{2028}'),
            'P' => Some('\u{2029}'),
            _ => None,
        };
        let digits = match e {
            'x' => 2,
            'u' => 4,
            'U' => 8,
            _ => 0,
        };
        let hex = escape
            .get(1..1 + digits)
            .filter(|h| digits > 0 && h.bytes().all(|d| d.is_ascii_hexdigit()))
            .and_then(|h| char::from_u32(u32::from_str_radix(h, 16).ok()?));
        rest = match (simple, hex) {
            (Some(c), _) => {
                out.push(c);
                &escape[e.len_utf8()..]
            }
            (None, Some(c)) => {
                out.push(c);
                &escape[1 + digits..]
            }
            (None, None) => {
                out.push('\\');
                escape
            }
        };
    }
    out.push_str(rest);
    out
}

/// The end of a tag, anchor or alias: the next blank, or in a flow collection its `,`, `]`, `}`.
fn property_end(b: &[u8], start: usize, in_flow: bool) -> usize {
    let mut i = start + 1;
    while i < b.len() {
        match b[i] {
            b' ' | b'\t' | b'\r' | b'\n' => break,
            b',' | b']' | b'}' | b'[' | b'{' if in_flow => break,
            _ => i += 1,
        }
    }
    i
}

fn line_end(b: &[u8], i: usize) -> usize {
    b[i..]
        .iter()
        .position(|&c| c == b'\n')
        .map_or(b.len(), |p| i + p)
}

/// YAML's white space and line breaks: a form feed or a vertical tab is text to YAML, as in
/// `image: stevedore://x:\x0c` (one value).
fn white(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n')
}

fn next_is_space(b: &[u8], i: usize) -> bool {
    b.get(i).is_none_or(|&c| white(c))
}

/// A quoted scalar starting at `start`: its content and the index just past the closing
/// quote. One never closed (not YAML) runs to the end of the text.
fn quoted(b: &[u8], start: usize) -> (Range<usize>, usize) {
    let quote = b[start];
    let mut i = start + 1;
    while i < b.len() {
        match b[i] {
            b'\\' if quote == b'"' => i += 2,
            b'\'' if quote == b'\'' && b.get(i + 1) == Some(&b'\'') => i += 2,
            c if c == quote => return (start + 1..i, i + 1),
            _ => i += 1,
        }
    }
    (start + 1..b.len(), b.len())
}

/// A plain scalar ends at ` #`, at `: ` (a key), at the end of the line, and in flow
/// collections also at `,`, `]` and `}`; trailing blanks are not part of it.
fn plain_end(b: &[u8], start: usize, in_flow: bool) -> usize {
    let mut i = start;
    while i < b.len() {
        match b[i] {
            b'\n' | b'\r' => break,
            b'#' if i > start && white(b[i - 1]) => break,
            b':' if next_is_space(b, i + 1) => break,
            b',' | b']' | b'}' | b'[' | b'{' if in_flow => break,
            _ => i += 1,
        }
    }
    while i > start && (b[i - 1] == b' ' || b[i - 1] == b'\t') {
        i -= 1;
    }
    i
}

/// `|` or `>` with optional chomping and indentation indicators, then only blanks or a comment.
fn block_header(b: &[u8], i: usize) -> bool {
    let mut j = i + 1;
    while j < b.len() && matches!(b[j], b'-' | b'+' | b'1'..=b'9') {
        j += 1;
    }
    while j < b.len() && (b[j] == b' ' || b[j] == b'\t') {
        j += 1;
    }
    j >= b.len() || matches!(b[j], b'\n' | b'\r' | b'#')
}

/// The end of a block scalar, as YAML finds it: its first line that is not blank sets its
/// indentation, which must be deeper than its key or `-` (`parent`; `None` at the document's
/// level); it ends at the first line that is not blank and less indented, or at a document
/// marker. (From the header line's own indentation, `- run: |` let a sibling key
/// `  image: stevedore://x` be read as text.)
fn block_end(b: &[u8], header: usize, parent: Option<usize>) -> usize {
    let mut content = None; // the indentation its first line sets
    let mut i = line_end(b, header);
    while i < b.len() {
        let next = i + 1;
        let end = line_end(b, next);
        if b[next..end].iter().all(|&c| white(c)) {
            i = end;
            continue;
        }
        let indent = indent(b, next);
        let shallower = match content {
            None => parent.is_some_and(|p| indent <= p),
            Some(m) => indent < m,
        };
        if shallower || document_marker(b, next) {
            return next;
        }
        content.get_or_insert(indent);
        i = end;
    }
    b.len()
}

fn indent(b: &[u8], line_start: usize) -> usize {
    b[line_start.min(b.len())..]
        .iter()
        .take_while(|&&c| c == b' ')
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(text: &str) -> String {
        let found = find(text).unwrap();
        replace(text, &found, |t| {
            format!(
                "reg/{}@sha256:0",
                t.package.as_deref().unwrap_or("cur").to_owned()
                    + &t.bin
                        .as_deref()
                        .map(|b| format!("-{b}"))
                        .unwrap_or_default()
            )
        })
    }

    #[test]
    fn replaces_plain_and_quoted_values_and_keeps_every_other_byte() {
        let text = "# a comment: stevedore://hello\n\
                    apiVersion: v1   # trailing\n\
                    image: stevedore://hello   # the service\n\
                    other: \"stevedore://hello/server\"\n\
                    third: 'stevedore://'\n\
                    ---\n\
                    - stevedore://a_b-c\n\
                    - name: x\n  image:   stevedore://web\r\n";
        let want = "# a comment: stevedore://hello\n\
                    apiVersion: v1   # trailing\n\
                    image: reg/hello@sha256:0   # the service\n\
                    other: \"reg/hello-server@sha256:0\"\n\
                    third: 'reg/cur@sha256:0'\n\
                    ---\n\
                    - reg/a_b-c@sha256:0\n\
                    - name: x\n  image:   reg/web@sha256:0\r\n";
        assert_eq!(resolve(text), want);
    }

    #[test]
    fn flow_collections_hold_several() {
        let text = "images: [stevedore://a, \"stevedore://b\",stevedore://c/d]\n\
                    m: {image: stevedore://e, n: 1}\n";
        assert_eq!(
            resolve(text),
            "images: [reg/a@sha256:0, \"reg/b@sha256:0\",reg/c-d@sha256:0]\n\
             m: {image: reg/e@sha256:0, n: 1}\n"
        );
    }

    #[test]
    fn comments_block_scalars_and_longer_strings_stay() {
        let text = "a: x # stevedore://hello\n\
                    #stevedore://hello\n\
                    args: [\"--image=stevedore://hello\"]\n\
                    script: |\n  run stevedore://hello\n\n  more\n\
                    b: 'it''s # not a comment stevedore://'\n\
                    c: \"a # b\" # stevedore://x\n\
                    url: http://x#stevedore://y\n";
        assert_eq!(find(text).unwrap(), []);
        assert_eq!(resolve(text), text);
    }

    #[test]
    fn a_block_scalar_ends_where_the_indentation_does() {
        let text = "s: >-\n  text\nimage: stevedore://hello\n";
        assert_eq!(resolve(text), "s: >-\n  text\nimage: reg/hello@sha256:0\n");
    }

    #[test]
    fn a_value_that_only_looks_like_a_reference_is_an_error_naming_its_line() {
        let err = find("a: 1\nimage: stevedore://hello:1.0\n").unwrap_err();
        assert!(
            matches!(&err, BadReference::NotATarget { line: 2, value } if value == "stevedore://hello:1.0"),
            "{err:?}"
        );
        assert!(find("x: 'stevedore://a/b/c'").is_err());
        assert!(find("x: stevedore://a b").is_err());
    }

    #[test]
    fn targets_print_as_written() {
        for text in ["stevedore://", "stevedore://p", "stevedore://p/b"] {
            assert_eq!(parse_target(text).unwrap().to_string(), text);
        }
    }

    #[test]
    fn a_quote_never_closed_ends_the_text_and_cuts_no_character() {
        // Issue 27's reproduction: the scanner cut off the last byte, inside `é`.
        assert_eq!(find("image: \"é").unwrap(), []);
        assert_eq!(find("'é").unwrap(), []);
        assert_eq!(resolve("a: \"\\é"), "a: \"\\é");
        assert_eq!(resolve("x: 'stevedore://a"), "x: 'reg/a@sha256:0");
    }

    #[test]
    fn tags_that_keep_a_string_and_anchors_are_resolved_aliases_follow() {
        let text = "a: !!str stevedore://a\n\
                    b: &img stevedore://b\n\
                    c: *img\n\
                    d: ! 'stevedore://d'\n\
                    e: !<tag:yaml.org,2002:str> \"stevedore://e\"\n\
                    f: &x !!str stevedore://f\n\
                    g: !!str\n  stevedore://g\n\
                    h: [!!str stevedore://h, *img, &y stevedore://i]\n";
        assert_eq!(
            resolve(text),
            "a: !!str reg/a@sha256:0\n\
             b: &img reg/b@sha256:0\n\
             c: *img\n\
             d: ! 'reg/d@sha256:0'\n\
             e: !<tag:yaml.org,2002:str> \"reg/e@sha256:0\"\n\
             f: &x !!str reg/f@sha256:0\n\
             g: !!str\n  reg/g@sha256:0\n\
             h: [!!str reg/h@sha256:0, *img, &y reg/i@sha256:0]\n"
        );
    }

    #[test]
    fn a_tag_that_makes_a_reference_no_string_is_an_error_naming_its_line() {
        for (text, want) in [
            ("a: 1\nb: !!binary stevedore://a\n", "!!binary"),
            ("- !custom 'stevedore://a'", "!custom"),
            ("{k: !!int stevedore://}", "!!int"),
        ] {
            let err = find(text).unwrap_err();
            assert!(
                matches!(&err, BadReference::Tagged { tag, .. } if tag == want),
                "{text:?}: {err:?}"
            );
        }
        let err = find("a: 1\nb: !!binary stevedore://a\n").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("line 2: `!!binary stevedore://a`"),
            "{err}"
        );
        // A tag on something else is no business of the reference after it.
        assert_eq!(
            find("!!map\nk: !!int 1\nimage: stevedore://a\n")
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn what_the_yaml_said_is_printed_escaped() {
        let err = find("image: \"stevedore://a\\e]0;x\x07\"").unwrap_err();
        let shown = err.to_string();
        assert!(!shown.contains('\x07'), "{shown:?}");
        let err = find("image: \"stevedore://\x1b[2J\"").unwrap_err();
        assert!(err.to_string().contains("stevedore://\\u{1b}[2J"), "{err}");
    }

    #[test]
    fn a_reference_written_with_escapes_is_an_error_naming_its_line() {
        for text in [
            "a: 1\nimage: \"stevedore:\\/\\/app\"\n",
            "a: 1\nimage: \"\\x73tevedore://app\"\n",
            "a: 1\nimage: \"\\u0073tevedore://app\"\n",
        ] {
            let err = find(text).unwrap_err();
            assert!(
                matches!(&err, BadReference::Escaped { line: 2, .. }),
                "{text:?}: {err:?}"
            );
        }
        // Escapes elsewhere, and ones YAML does not know, change nothing.
        assert_eq!(
            resolve("a: \"x\\ty\"\nb: \"\\q\"\nc: \"stevedore://a\"\n"),
            "a: \"x\\ty\"\nb: \"\\q\"\nc: \"reg/a@sha256:0\"\n"
        );
        assert_eq!(
            unescape(r#"\x41\u00e9\U0001F600\/\\\"\N\z\"#),
            "Aé😀/\\\"\u{85}\\z\\"
        );
    }

    #[test]
    fn a_plain_reference_that_goes_on_to_a_deeper_line_is_no_reference() {
        for text in [
            "image: stevedore://app\n  more\n",
            "- stevedore://app\n\n  more\n",
            "stevedore://app\nmore\n",
            "k:\n  image: stevedore://app\n   more\n",
        ] {
            let err = find(text).unwrap_err();
            assert!(
                matches!(&err, BadReference::NotATarget { line, value } if *line == text.lines().position(|l| l.contains("stevedore")).unwrap() + 1 && value.ends_with("more")),
                "{text:?}: {err:?}"
            );
        }
        // Lines no deeper than the key or `-`, comments and document markers end it.
        let text = "containers:\n- image: stevedore://a\n  name: a\n\
                    - stevedore://b\n- image: stevedore://c\n    # a comment\n  name: c\n\
                    k: stevedore://d\n---\nstevedore://e\n...\n--- stevedore://f\n";
        assert_eq!(
            resolve(text),
            "containers:\n- image: reg/a@sha256:0\n  name: a\n\
             - reg/b@sha256:0\n- image: reg/c@sha256:0\n    # a comment\n  name: c\n\
             k: reg/d@sha256:0\n---\nreg/e@sha256:0\n...\n--- reg/f@sha256:0\n"
        );
    }

    #[test]
    fn a_plain_reference_in_a_flow_collection_that_goes_on_to_the_next_line_is_no_reference() {
        let err = find("images: [stevedore://a\n  more, stevedore://b]\n").unwrap_err();
        assert!(
            matches!(&err, BadReference::NotATarget { line: 1, value } if value == "stevedore://a\n  more"),
            "{err:?}"
        );
        let text = "images: [\n  stevedore://a,\n  stevedore://b\n]\nm: {k: stevedore://c\n}\n";
        assert_eq!(
            resolve(text),
            "images: [\n  reg/a@sha256:0,\n  reg/b@sha256:0\n]\nm: {k: reg/c@sha256:0\n}\n"
        );
    }

    #[test]
    fn a_reference_that_ends_a_longer_plain_value_stays() {
        // `run the` and `stevedore://x` are one value, `run the stevedore://x`.
        let text = "description: run the\n  stevedore://x\nargs:\n- start\n  stevedore://y\nimage: stevedore://z\n";
        assert_eq!(
            resolve(text),
            "description: run the\n  stevedore://x\nargs:\n- start\n  stevedore://y\nimage: reg/z@sha256:0\n"
        );
        // YAML's white space is blanks and line breaks: a form feed is text.
        let err = find("image: stevedore://x:\x0c//").unwrap_err();
        assert!(
            matches!(err, BadReference::NotATarget { line: 1, .. }),
            "{err:?}"
        );
    }

    #[test]
    fn a_block_scalar_ends_where_yaml_ends_it() {
        // The header on a `- key:` line: the sibling key is no text of the block.
        let text = "- run: |\n    stevedore://a\n  image: stevedore://b\n";
        assert_eq!(
            resolve(text),
            "- run: |\n    stevedore://a\n  image: reg/b@sha256:0\n"
        );
        // At the document's level its text may start in the first column, up to the next
        // document.
        let text = ">\nstevedore://a\n\nstevedore://b\n---\nt: stevedore://d\n";
        assert_eq!(
            resolve(text),
            ">\nstevedore://a\n\nstevedore://b\n---\nt: reg/d@sha256:0\n"
        );
    }

    #[test]
    fn a_long_line_and_many_references_are_read_in_one_pass() {
        // Columns and line numbers looked up from the start of the text each time made these
        // quadratic: about 10^11 bytes read for 1 MB.
        let dashes = "- ".repeat(500_000) + "stevedore://a\n";
        let references = "- stevedore://a\n".repeat(100_000);
        let started = std::time::Instant::now();
        assert_eq!(find(&dashes).unwrap().len(), 1);
        assert_eq!(find(&references).unwrap().len(), 100_000);
        let err = find(&(references + "- stevedore://a:1\n")).unwrap_err();
        assert!(
            matches!(err, BadReference::NotATarget { line: 100_001, .. }),
            "{err:?}"
        );
        let elapsed = started.elapsed();
        assert!(elapsed.as_secs() < 10, "{elapsed:?}");
    }

    /// Found by the `resolve` fuzz target: with lone `\r` line ends, a `"` early on was read
    /// as opening a quoted value that hid a tagged reference, and replacing a reference before
    /// it changed what the scanner saw. Such a document is refused, with the line.
    #[test]
    fn a_lone_carriage_return_is_refused_with_its_line() {
        let text = "a: 'stevedore://d'x\"\n\rb: ! 'stevedore://d'\n![str stevedore://e\"\n";
        let err = find(text).unwrap_err();
        assert!(
            matches!(err, BadReference::LoneCarriageReturn { line: 2 }),
            "{err:?}"
        );
        assert!(!err.to_string().chars().any(char::is_control), "{err}");
        assert_eq!(
            find("a: stevedore://x\r\nb: 1\r\n").unwrap().len(),
            1,
            "CRLF is fine"
        );
    }
}
