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
//! with a reference left unresolved by mistake.

use std::ops::Range;

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

/// A scalar starting with `stevedore://` that is not a reference.
#[derive(Debug, thiserror::Error)]
#[error(
    "line {line}: `{value}` is not a reference stevedore can resolve: write \
     `stevedore://PACKAGE/BIN`, `stevedore://PACKAGE` or `stevedore://` (the current package) \
     as the whole value"
)]
pub struct BadReference {
    /// 1-based line number.
    pub line: usize,
    /// The scalar as written.
    pub value: String,
}

/// Every reference in `text`, in order.
pub fn find(text: &str) -> Result<Vec<Found>, BadReference> {
    let mut found = Vec::new();
    for (span, value) in scalars(text) {
        if !value.starts_with(SCHEME) {
            continue;
        }
        match parse_target(&value) {
            Some(target) => found.push(Found { span, target }),
            None => {
                return Err(BadReference {
                    line: text[..span.start].matches('\n').count() + 1,
                    value,
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

/// The scalars of a YAML text that can be values: their spans and values (quotes removed).
fn scalars(text: &str) -> Vec<(Range<usize>, String)> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut flow = 0usize; // depth of [ ] and { }
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        match c {
            b'#' if i == 0 || b[i - 1].is_ascii_whitespace() => i = line_end(b, i),
            b' ' | b'\t' | b'\r' | b'\n' => i += 1,
            b'[' | b'{' => {
                flow += 1;
                i += 1
            }
            b']' | b'}' => {
                flow = flow.saturating_sub(1);
                i += 1
            }
            b',' => i += 1,
            b'-' | b':' | b'?' if next_is_space(b, i + 1) => i += 1,
            b'"' | b'\'' => {
                let end = quoted_end(b, i);
                let content = (i + 1)..end.saturating_sub(1).max(i + 1);
                let value = match c {
                    b'\'' => text[content.clone()].replace("''", "'"),
                    _ => text[content.clone()].to_owned(),
                };
                out.push((content, value));
                i = end;
            }
            b'|' | b'>' if block_header(b, i) => i = block_end(b, i),
            _ => {
                let end = plain_end(b, i, flow > 0);
                out.push((i..end, text[i..end].to_owned()));
                i = end.max(i + 1);
            }
        }
    }
    out
}

fn line_end(b: &[u8], i: usize) -> usize {
    b[i..]
        .iter()
        .position(|&c| c == b'\n')
        .map_or(b.len(), |p| i + p)
}

fn next_is_space(b: &[u8], i: usize) -> bool {
    b.get(i).is_none_or(|c| c.is_ascii_whitespace())
}

/// The index just past the closing quote (or the end of the text if it is never closed).
fn quoted_end(b: &[u8], start: usize) -> usize {
    let quote = b[start];
    let mut i = start + 1;
    while i < b.len() {
        match b[i] {
            b'\\' if quote == b'"' => i += 2,
            b'\'' if quote == b'\'' && b.get(i + 1) == Some(&b'\'') => i += 2,
            c if c == quote => return i + 1,
            _ => i += 1,
        }
    }
    b.len()
}

/// A plain scalar ends at ` #`, at `: ` (a key), at the end of the line, and in flow
/// collections also at `,`, `]` and `}`; trailing blanks are not part of it.
fn plain_end(b: &[u8], start: usize, in_flow: bool) -> usize {
    let mut i = start;
    while i < b.len() {
        match b[i] {
            b'\n' | b'\r' => break,
            b'#' if i > start && b[i - 1].is_ascii_whitespace() => break,
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

/// The end of a block scalar: the first non-blank line indented no deeper than the line
/// holding its header.
fn block_end(b: &[u8], header: usize) -> usize {
    let line_start = b[..header]
        .iter()
        .rposition(|&c| c == b'\n')
        .map_or(0, |p| p + 1);
    let parent = indent(b, line_start);
    let mut i = line_end(b, header);
    while i < b.len() {
        let next = i + 1;
        let end = line_end(b, next.min(b.len()));
        let blank = b[next.min(b.len())..end]
            .iter()
            .all(|c| c.is_ascii_whitespace());
        if !blank && indent(b, next) <= parent {
            return next;
        }
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
        assert_eq!(err.line, 2);
        assert_eq!(err.value, "stevedore://hello:1.0");
        assert!(find("x: 'stevedore://a/b/c'").is_err());
        assert!(find("x: stevedore://a b").is_err());
    }

    #[test]
    fn targets_print_as_written() {
        for text in ["stevedore://", "stevedore://p", "stevedore://p/b"] {
            assert_eq!(parse_target(text).unwrap().to_string(), text);
        }
    }
}
