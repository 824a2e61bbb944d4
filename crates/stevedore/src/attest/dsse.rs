//! DSSE, the signature envelope in-toto attestations travel in
//! (<https://github.com/secure-systems-lab/dsse/blob/master/envelope.md>).

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde_json::json;

use super::keys::SigningKey;
use crate::oci::canonical_json;

/// The pre-authentication encoding that is signed, never the payload alone:
/// `"DSSEv1" SP LEN(type) SP type SP LEN(body) SP body`, lengths as ASCII decimal bytes.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {payload_type} {} ",
        payload_type.len(),
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

/// The envelope JSON around `payload`, signed with `key` when there is one (an unsigned
/// envelope has an empty `signatures` list). `keyid` is empty, as cosign writes it.
pub fn envelope(payload_type: &str, payload: &[u8], key: Option<&SigningKey>) -> Vec<u8> {
    let signatures: Vec<_> = key
        .map(|k| json!({"keyid": "", "sig": k.sign_base64(&pae(payload_type, payload))}))
        .into_iter()
        .collect();
    canonical_json(&json!({
        "payload": B64.encode(payload),
        "payloadType": payload_type,
        "signatures": signatures,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pae_is_the_specs_example() {
        // The worked example of DSSE's protocol.md.
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
        );
    }
}
