//! Two JSON documents (configs, manifests, indexes), compared by value to the first path
//! that differs.

use std::collections::BTreeSet;
use std::fmt;

use serde_json::Value;

use super::{DiffError, Side};

/// Roughly how many characters of a JSON value a difference shows.
const EXCERPT_CHARS: usize = 80;
/// How much of the common start to keep when an excerpt has to skip to the difference.
const EXCERPT_LEAD: usize = 20;

/// The first path at which two JSON documents differ, with both values shortened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonDifference {
    /// Like `config.Env[1]`; keys that are not plain words are quoted (`annotations["a.b"]`),
    /// and the empty path is the whole document.
    pub path: String,
    /// Each side's value as compact JSON, shortened to about 80 characters around where the
    /// two differ; None when that side has nothing at this path.
    pub ours: Option<String>,
    pub theirs: Option<String>,
}

/// Compares two JSON documents (an image config or manifest) and names the first differing
/// path, e.g. `config.Env[1]` with both values (shortened to ~80 chars each), or None.
///
/// The comparison is of values: two documents that differ only in whitespace or key order
/// are equal here though their digests differ.
pub fn json(ours: &[u8], theirs: &[u8]) -> Result<Option<JsonDifference>, DiffError> {
    let ours = parse(ours, Side::Ours)?;
    let theirs = parse(theirs, Side::Theirs)?;
    Ok(first_difference(String::new(), Some(&ours), Some(&theirs)))
}

fn parse(bytes: &[u8], side: Side) -> Result<Value, DiffError> {
    serde_json::from_slice(bytes).map_err(|source| DiffError::Json { side, source })
}

fn first_difference(
    path: String,
    ours: Option<&Value>,
    theirs: Option<&Value>,
) -> Option<JsonDifference> {
    match (ours, theirs) {
        (Some(Value::Object(ours)), Some(Value::Object(theirs))) => {
            let keys: BTreeSet<&String> = ours.keys().chain(theirs.keys()).collect();
            keys.into_iter().find_map(|key| {
                first_difference(key_path(&path, key), ours.get(key), theirs.get(key))
            })
        }
        (Some(Value::Array(ours)), Some(Value::Array(theirs))) => {
            let len = ours.len().max(theirs.len());
            (0..len)
                .find_map(|i| first_difference(format!("{path}[{i}]"), ours.get(i), theirs.get(i)))
        }
        _ if ours == theirs => None,
        _ => Some(json_difference(path, ours, theirs)),
    }
}

fn key_path(path: &str, key: &str) -> String {
    let plain = !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    match (plain, path.is_empty()) {
        (true, true) => key.to_owned(),
        (true, false) => format!("{path}.{key}"),
        (false, _) => format!("{path}[{}]", Value::from(key)),
    }
}

fn json_difference(path: String, ours: Option<&Value>, theirs: Option<&Value>) -> JsonDifference {
    let ours = ours.map(Value::to_string);
    let theirs = theirs.map(Value::to_string);
    let common = common_prefix_chars(ours.as_deref(), theirs.as_deref());
    JsonDifference {
        path,
        ours: ours.map(|text| excerpt(&text, common)),
        theirs: theirs.map(|text| excerpt(&text, common)),
    }
}

fn common_prefix_chars(ours: Option<&str>, theirs: Option<&str>) -> usize {
    match (ours, theirs) {
        (Some(ours), Some(theirs)) => ours
            .chars()
            .zip(theirs.chars())
            .take_while(|(a, b)| a == b)
            .count(),
        _ => 0,
    }
}

/// At most about `EXCERPT_CHARS` of `text`, skipping ahead so the part after `common` shows:
/// two long values that share a long start would otherwise look the same.
fn excerpt(text: &str, common: usize) -> String {
    let len = text.chars().count();
    if len <= EXCERPT_CHARS {
        return text.to_owned();
    }
    let start = if common + EXCERPT_LEAD < EXCERPT_CHARS {
        0
    } else {
        common - EXCERPT_LEAD
    };
    let mut shown: String = text.chars().skip(start).take(EXCERPT_CHARS).collect();
    if start + EXCERPT_CHARS < len {
        shown.push('…');
    }
    if start > 0 {
        shown.insert(0, '…');
    }
    shown
}

impl fmt::Display for JsonDifference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = if self.path.is_empty() {
            "the document"
        } else {
            &self.path
        };
        match (&self.ours, &self.theirs) {
            (Some(ours), Some(theirs)) => write!(f, "{path}: ours {ours}, theirs {theirs}"),
            (Some(ours), None) => write!(f, "{path}: only in ours ({ours})"),
            (None, Some(theirs)) => write!(f, "{path}: only in theirs ({theirs})"),
            (None, None) => write!(f, "{path}: absent on both sides"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json_diff(ours: &str, theirs: &str) -> Option<JsonDifference> {
        json(ours.as_bytes(), theirs.as_bytes()).unwrap()
    }

    const CONFIG: &str = r#"{"architecture":"amd64","config":{"Env":["PATH=/bin","PORT=8080"],
        "Labels":{"org.opencontainers.image.source":"x"}},"os":"linux"}"#;

    #[test]
    fn identical_json_has_no_difference() {
        let reordered = r#"{"os":"linux","config":{"Labels":{"org.opencontainers.image.source":"x"},
            "Env":["PATH=/bin","PORT=8080"]},"architecture":"amd64"}"#;
        assert_eq!(json_diff(CONFIG, reordered), None);
    }

    #[test]
    fn json_array_element_difference() {
        let theirs = CONFIG.replace("8080", "9090");
        let found = json_diff(CONFIG, &theirs).unwrap();
        assert_eq!(
            found.to_string(),
            r#"config.Env[1]: ours "PORT=8080", theirs "PORT=9090""#
        );
    }

    #[test]
    fn json_nested_key_difference() {
        let theirs = CONFIG.replace(r#"source":"x""#, r#"source":"y""#);
        let found = json_diff(CONFIG, &theirs).unwrap();
        assert_eq!(
            found.to_string(),
            r#"config.Labels["org.opencontainers.image.source"]: ours "x", theirs "y""#
        );
    }

    #[test]
    fn json_missing_key_on_each_side() {
        let theirs = CONFIG.replace(r#""os":"linux""#, r#""os":"linux","variant":"v8""#);
        let found = json_diff(CONFIG, &theirs).unwrap();
        assert_eq!(found.to_string(), r#"variant: only in theirs ("v8")"#);
        let found = json_diff(&theirs, CONFIG).unwrap();
        assert_eq!(found.to_string(), r#"variant: only in ours ("v8")"#);
    }

    #[test]
    fn json_array_length_difference() {
        let theirs = CONFIG.replace(r#""PORT=8080""#, r#""PORT=8080","RUST_LOG=info""#);
        let found = json_diff(CONFIG, &theirs).unwrap();
        assert_eq!(found.path, "config.Env[2]");
        assert_eq!(found.ours, None);
        assert_eq!(found.theirs.as_deref(), Some(r#""RUST_LOG=info""#));
    }

    #[test]
    fn json_type_difference_at_the_root() {
        let found = json_diff("[1]", "{}").unwrap();
        assert_eq!(found.to_string(), "the document: ours [1], theirs {}");
    }

    #[test]
    fn long_json_values_are_shortened_around_the_difference() {
        let prefix = "a".repeat(200);
        let ours = format!(r#"{{"k":"{prefix}-ours-{}"}}"#, "z".repeat(200));
        let theirs = format!(r#"{{"k":"{prefix}-theirs-{}"}}"#, "z".repeat(200));
        let found = json_diff(&ours, &theirs).unwrap();
        let shown_ours = found.ours.unwrap();
        let shown_theirs = found.theirs.unwrap();
        assert!(
            shown_ours.chars().count() <= EXCERPT_CHARS + 2,
            "{shown_ours}"
        );
        assert!(shown_ours.starts_with('…') && shown_ours.ends_with('…'));
        assert!(shown_ours.contains("-ours-"), "{shown_ours}");
        assert!(shown_theirs.contains("-theirs-"), "{shown_theirs}");
    }

    #[test]
    fn invalid_json_names_its_side() {
        let err = json(b"{}", b"{").unwrap_err();
        assert!(matches!(
            err,
            DiffError::Json {
                side: Side::Theirs,
                ..
            }
        ));
        assert_eq!(err.to_string(), "their document is not valid JSON");
        let err = json(b"nope", b"{}").unwrap_err();
        assert!(matches!(
            err,
            DiffError::Json {
                side: Side::Ours,
                ..
            }
        ));
    }
}
