//! JSON as stevedore writes it: the same value gives the same bytes, so the same digest.
//!
//! [`canonical_json`] writes a document with every object's keys sorted; [`rfc3339`] writes the
//! timestamps documents carry (a config's `created`) the one way.

use serde::Serialize;

/// Serialises with every object's keys sorted, whatever map type the value uses.
///
/// `serde_json::Value` keeps objects in a `BTreeMap` (this crate must never enable serde_json's
/// `preserve_order`), so a round trip through it sorts the `HashMap`s that oci-spec uses.
pub fn canonical_json<T: Serialize>(value: &T) -> Vec<u8> {
    let value = serde_json::to_value(value).expect("OCI documents serialise to JSON");
    serde_json::to_vec(&value).expect("a JSON value serialises")
}

/// Seconds since the epoch as an RFC 3339 UTC timestamp, e.g. `2024-05-01T12:00:00Z`.
pub fn rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil-from-days (Howard Hinnant's algorithm), valid for any i64 day count we meet.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn timestamps() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
    }

    #[test]
    fn canonical_json_sorts_hash_maps() {
        let map: HashMap<String, u32> = (0..50).map(|i| (format!("k{i:02}"), i)).collect();
        let text = String::from_utf8(canonical_json(&map)).unwrap();
        let keys: Vec<&str> = text.split('"').skip(1).step_by(2).collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted, "serde_json's preserve_order must stay off");
    }
}
