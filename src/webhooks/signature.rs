//! The `Stripe-Signature` header: `t=<unix seconds>,v1=<hex>`, where `v1` is the lowercase hex of
//! HMAC-SHA256 keyed with the whole secret string (`whsec_…` as UTF-8, not decoded) over
//! `"<t>.<body>"`. Stripe's SDKs recompute exactly this to verify a delivery.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// A secret ready to sign with: HMAC's keyed inner and outer SHA-256 states, computed once per
/// secret. Each signature starts from a copy of them, where keying afresh would hash two more
/// blocks per delivery.
#[derive(Clone)]
pub struct Signer {
    mac: Hmac<Sha256>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The keyed state is as good as the secret: never shown.
        f.write_str("Signer(..)")
    }
}

impl Signer {
    /// Keys a signer with the whole `secret` string.
    pub fn new(secret: &str) -> Self {
        // HMAC takes keys of any length, so this never fails.
        let mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
        Signer { mac }
    }

    /// The `v1` signature of `body` sent at `t`, as 64 lowercase hex digits.
    pub fn sign(&self, t: i64, body: &[u8]) -> [u8; 64] {
        let mut mac = self.mac.clone();
        mac.update(t.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        hex(&mac.finalize().into_bytes())
    }

    /// Appends the whole header value for `body` sent at `t` to `out`.
    pub fn write_header(&self, t: i64, body: &[u8], out: &mut Vec<u8>) {
        out.extend_from_slice(b"t=");
        out.extend_from_slice(t.to_string().as_bytes());
        out.extend_from_slice(b",v1=");
        out.extend_from_slice(&self.sign(t, body));
    }
}

/// The `v1` signature of `body` sent at `t` with `secret`, as lowercase hex.
pub fn sign(secret: &str, t: i64, body: &[u8]) -> String {
    Signer::new(secret)
        .sign(t, body)
        .iter()
        .map(|&b| char::from(b))
        .collect()
}

/// The whole header value for `body` sent at `t` with `secret`.
pub fn header(secret: &str, t: i64, body: &[u8]) -> String {
    format!("t={t},v1={}", sign(secret, t, body))
}

/// A fresh signing secret, `whsec_` and 32 random letters and digits.
pub fn new_secret() -> String {
    crate::ids::random_id("whsec_", 32)
}

fn hex(bytes: &[u8]) -> [u8; 64] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 64];
    for (pair, b) in out.chunks_exact_mut(2).zip(bytes) {
        pair[0] = DIGITS[(b >> 4) as usize];
        pair[1] = DIGITS[(b & 15) as usize];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vector both official SDKs accept (secret, timestamp and body as given there).
    #[test]
    fn reproduces_the_reference_vector() {
        assert_eq!(
            header(
                "whsec_test_secret",
                1_700_000_000,
                br#"{"id":"evt_test","object":"event"}"#
            ),
            "t=1700000000,v1=8042376f6ca064adbe037642a718227dfd59047137eb49497a54c49eb0cfb724"
        );
    }

    #[test]
    fn the_timestamp_and_the_body_both_count() {
        let a = sign("whsec_x", 1, b"{}");
        assert_ne!(a, sign("whsec_x", 2, b"{}"));
        assert_ne!(a, sign("whsec_x", 1, b"{ }"));
        assert_ne!(a, sign("whsec_y", 1, b"{}"));
        assert_eq!(a.len(), 64);
    }

    #[test]
    fn a_kept_signer_signs_as_a_fresh_key_does() {
        let signer = Signer::new("whsec_test_secret");
        let body = br#"{"id":"evt_test","object":"event"}"#;
        let mut out = Vec::new();
        signer.write_header(1_700_000_000, body, &mut out);
        assert_eq!(
            out,
            header("whsec_test_secret", 1_700_000_000, body).as_bytes()
        );
        // Signing leaves the kept state as it was.
        out.clear();
        signer.write_header(1_700_000_000, body, &mut out);
        assert_eq!(
            out,
            header("whsec_test_secret", 1_700_000_000, body).as_bytes()
        );
        assert_ne!(signer.sign(1, body), signer.sign(2, body));
    }

    #[test]
    fn secrets_look_like_stripes() {
        let s = new_secret();
        assert!(s.starts_with("whsec_") && s.len() == 38, "{s}");
        assert_ne!(s, new_secret());
    }
}
