//! Request signing: HMAC-SHA256 over the exact query/body string, API credentials that never print themselves, and
//! the percent-encoding used to build the string that is signed.

use std::fmt;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Why credentials could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    #[error("missing API credentials: set the environment variable(s) {}", .0.join(" and "))]
    MissingEnv(Vec<String>),
}

/// HMAC-SHA256 of `payload` keyed by `secret`, lowercase hex. `payload` is the exact string sent: the query string,
/// or the query string immediately followed by the body when both carry parameters.
pub fn sign(secret: &str, payload: &str) -> String {
    sign_hex(secret, payload).as_str().to_owned()
}

/// A lowercase-hex HMAC-SHA256 signature held inline (signing an order allocates nothing).
#[derive(Clone, Copy)]
pub struct HexSignature([u8; 64]);

impl HexSignature {
    fn of(mac: HmacSha256) -> HexSignature {
        let mut out = [0u8; 64];
        // 32 bytes always fit 64 hex digits.
        let _ = hex::encode_to_slice(mac.finalize().into_bytes(), &mut out);
        HexSignature(out)
    }

    pub fn as_str(&self) -> &str {
        // Hex digits are ASCII.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

/// [`sign`] without allocating.
pub fn sign_hex(secret: &str, payload: &str) -> HexSignature {
    HexSignature::of(mac(secret, payload))
}

/// Checks a hex signature in constant time (for the local exchange). Case-insensitive, as Binance's is.
pub fn verify(secret: &str, payload: &str, signature_hex: &str) -> bool {
    match hex::decode(signature_hex.to_ascii_lowercase()) {
        Ok(bytes) => mac(secret, payload).verify_slice(&bytes).is_ok(),
        Err(_) => false,
    }
}

fn mac(secret: &str, payload: &str) -> HmacSha256 {
    let mut m = match HmacSha256::new_from_slice(secret.as_bytes()) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC accepts keys of any length"),
    };
    m.update(payload.as_bytes());
    m
}

/// An API key pair. `Debug` and `Display` show neither part.
#[derive(Clone)]
pub struct Credentials {
    api_key: String,
    secret: String,
    /// HMAC state keyed with the secret, cloned per signature (the key is not hashed again for every request).
    keyed: HmacSha256,
}

impl PartialEq for Credentials {
    fn eq(&self, other: &Self) -> bool {
        self.api_key == other.api_key && self.secret == other.secret
    }
}

impl Eq for Credentials {}

impl Credentials {
    pub fn new(api_key: impl Into<String>, secret: impl Into<String>) -> Self {
        let secret = secret.into();
        Credentials {
            api_key: api_key.into(),
            keyed: mac(&secret, ""),
            secret,
        }
    }

    /// The key pair from two values as read by the caller (`main` reads the environment variables the config
    /// names); a missing or blank one is an error naming its variable.
    pub fn from_values(
        (api_key_var, key): (&str, Option<String>),
        (secret_var, secret): (&str, Option<String>),
    ) -> Result<Self, SignError> {
        let present = |v: Option<String>| v.filter(|v| !v.trim().is_empty());
        match (present(key), present(secret)) {
            (Some(k), Some(s)) => Ok(Credentials::new(k.trim(), s.trim())),
            (k, s) => {
                let mut missing = Vec::new();
                if k.is_none() {
                    missing.push(api_key_var.to_string());
                }
                if s.is_none() {
                    missing.push(secret_var.to_string());
                }
                Err(SignError::MissingEnv(missing))
            }
        }
    }

    /// The API key, for the `X-MBX-APIKEY` header only.
    pub fn api_key(&self) -> &str {
        &self.api_key
    }

    /// Signs `payload` with the secret.
    pub fn sign(&self, payload: &str) -> String {
        sign(&self.secret, payload)
    }

    /// Signs `payload` with the secret, without allocating.
    pub fn sign_hex(&self, payload: &str) -> HexSignature {
        let mut m = self.keyed.clone();
        m.update(payload.as_bytes());
        HexSignature::of(m)
    }

    /// Verifies a signature made with this pair's secret.
    pub fn verify(&self, payload: &str, signature_hex: &str) -> bool {
        verify(&self.secret, payload, signature_hex)
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Credentials { api_key: <redacted>, secret: <redacted> }")
    }
}

impl fmt::Display for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted credentials>")
    }
}

/// Appends `key=value` (value percent-encoded, RFC 3986 unreserved characters kept) to a query string.
pub fn push_param(query: &mut String, key: &str, value: &str) {
    if !query.is_empty() {
        query.push('&');
    }
    query.push_str(key);
    query.push('=');
    percent_encode_into(query, value);
}

/// Percent-encodes everything but `A–Z a–z 0–9 - _ . ~` (UTF-8 bytes as `%XX`, upper-case hex).
pub fn percent_encode_into(out: &mut String, value: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in value.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(HEX[(b >> 4) as usize] as char);
            out.push(HEX[(b & 0x0f) as usize] as char);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_encoding_matches_binance_example() {
        // The spot docs' non-ASCII example: symbol "１２３４５６" (full-width digits).
        let mut q = String::new();
        push_param(&mut q, "symbol", "１２３４５６");
        push_param(&mut q, "side", "BUY");
        assert_eq!(
            q,
            "symbol=%EF%BC%91%EF%BC%92%EF%BC%93%EF%BC%94%EF%BC%95%EF%BC%96&side=BUY"
        );
        let mut q = String::new();
        push_param(&mut q, "x", "a b&c=d/e:f");
        assert_eq!(q, "x=a%20b%26c%3Dd%2Fe%3Af");
    }

    #[test]
    fn sign_hex_matches_sign() {
        assert_eq!(sign_hex("k", "a=1&b=2").as_str(), sign("k", "a=1&b=2"));
        let c = Credentials::new("key", "k");
        assert_eq!(c.sign_hex("a=1&b=2").as_str(), sign("k", "a=1&b=2"));
        assert_eq!(c.sign_hex("a=1&b=2").as_str(), c.sign("a=1&b=2"));
    }

    #[test]
    fn verify_accepts_own_signature_only() {
        let s = sign("k", "a=1");
        assert!(verify("k", "a=1", &s));
        assert!(verify("k", "a=1", &s.to_uppercase()));
        assert!(!verify("k", "a=2", &s));
        assert!(!verify("other", "a=1", &s));
        assert!(!verify("k", "a=1", "zz"));
    }
}
