//! The signature merchants check: `Payments-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>]`,
//! each `v1` the HMAC-SHA256 of `"<t>.<body>"` under one of the endpoint's live secrets (two
//! during a rotation's overlap). A receiver recomputes it with its secret, compares in
//! constant time, and refuses a `t` older than a few minutes (replays).

use platform::sealing::hmac_sha256;

/// The header's name.
pub const HEADER: &str = "Payments-Signature";

/// The header value for `body` sent at `timestamp` under each of `secrets`.
pub fn header_value(timestamp: i64, body: &[u8], secrets: &[String]) -> String {
    let mut value = format!("t={timestamp}");
    for secret in secrets {
        let mac = hmac_sha256(
            secret.as_bytes(),
            &[timestamp.to_string().as_bytes(), b".", body],
        );
        value.push_str(",v1=");
        value.push_str(&hex::encode(mac));
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_signature_per_secret_over_timestamp_and_body() {
        let value = header_value(1_700_000_000, b"{}", &["a".into(), "b".into()]);
        let parts: Vec<&str> = value.split(',').collect();
        assert_eq!(parts[0], "t=1700000000");
        assert_eq!(parts.len(), 3);
        // HMAC-SHA256("a", "1700000000.{}"), computed independently with openssl.
        assert_eq!(
            parts[1],
            "v1=eab98e46d6a7669b200bed581845cac2cf8e7917ea5943531e51b6b4afd6211d"
        );
    }
}
