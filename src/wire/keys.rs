//! Stripe authentication: which tenant a request belongs to, or Stripe's own 401.
//!
//! A world is named by the API key alone, or, when a Connect platform acts for a connected account
//! (`Stripe-Account: acct_…`), by the key and the account together: each pair is a world of its own.

use std::borrow::Cow;

use base64::Engine;

use super::envelope::{shorten, StripeError};
use crate::http::{names, Request};

const NO_KEY: &str = "You did not provide an API key. You need to provide your API key in the Authorization header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY'). See https://stripe.com/docs/api#authentication for details, or we can help at https://support.stripe.com/.";

/// The API key of a request, if it is a test key the emulator accepts.
pub fn authenticate(req: &Request) -> Result<String, StripeError> {
    // A header that is absent or not visible ASCII carries no usable key.
    let Some(header) = req.header(&names::AUTHORIZATION) else {
        return Err(unauthorized(NO_KEY.to_string()));
    };
    let key = key_from_header(header).ok_or_else(|| unauthorized(NO_KEY.to_string()))?;
    check_key(&key)?;
    Ok(key)
}

/// The token of `Authorization: Bearer TOKEN` (a meter event session's, on the meter event
/// stream), or Stripe's "You did not provide an API key" 401.
pub fn bearer(req: &Request) -> Result<&str, StripeError> {
    req.header(&names::AUTHORIZATION)
        .and_then(bearer_token)
        .ok_or_else(|| unauthorized(NO_KEY.to_string()))
}

/// An `Authorization` header as `(scheme, credential)`, split at the first space and trimmed;
/// the credential is empty when there is none.
fn scheme_and_credential(header: &str) -> (&str, &str) {
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    (scheme, rest.trim())
}

/// The credential of a `Bearer` header split by [`scheme_and_credential`], if it is one and the
/// credential is not empty.
fn bearer_credential<'h>((scheme, credential): (&str, &'h str)) -> Option<&'h str> {
    (scheme.eq_ignore_ascii_case("bearer") && !credential.is_empty()).then_some(credential)
}

/// The credential of `Bearer CREDENTIAL`, if the header is one and it is not empty.
fn bearer_token(header: &str) -> Option<&str> {
    bearer_credential(scheme_and_credential(header))
}

/// A bearer token that names no meter event session: refused as an unknown API key is.
pub fn unknown_token(token: &str) -> StripeError {
    unauthorized(format!("Invalid API Key provided: {}", mask(token)))
}

/// A meter event session's token used after it expired: 401, `temporary_session_expired`.
pub fn session_expired() -> StripeError {
    let mut e = StripeError::invalid(
        "The meter event session's authentication token has expired. Create a new session with POST /v2/billing/meter_event_session.",
    )
    .code("billing_meter_event_session_expired")
    .status(401);
    e.kind = "temporary_session_expired";
    e
}

/// The API key of a request to one of the emulator's own routes, which clients of either API call:
/// `x-api-key` (the native API's header) if present, else `Authorization` as Stripe reads it.
pub fn either_key(req: &Request) -> Result<String, StripeError> {
    match req.header(&names::X_API_KEY) {
        Some(key) => {
            check_key(key)?;
            Ok(key.to_string())
        }
        None => authenticate(req),
    }
}

/// The world a request to a Stripe route acts in (see [`world`]): named by its key
/// (`Authorization`, [`authenticate`]) and its `Stripe-Account` ([`account`]), or Stripe's refusal
/// of them, 401 for the key before 403 for the account.
pub fn stripe_world(req: &Request) -> Result<String, StripeError> {
    let key = authenticate(req)?;
    let account = account(req, &key)?;
    Ok(world_owned(key, account))
}

/// [`stripe_world`] for the emulator's own routes, which take either key header
/// ([`either_key`]).
pub fn emulator_world(req: &Request) -> Result<String, StripeError> {
    let key = either_key(req)?;
    let account = account(req, &key)?;
    Ok(world_owned(key, account))
}

/// Extracts the key from `Bearer KEY`, `Basic base64(KEY:)` (as `curl -u KEY:` sends it) or
/// `Basic KEY`, the key itself unencoded, which Stripe accepts too. An unencoded key is told
/// apart by its prefix: `_` is not in base64's alphabet, so no encoded credential starts with one.
fn key_from_header(header: &str) -> Option<String> {
    let split = scheme_and_credential(header);
    if let Some(key) = bearer_credential(split) {
        return Some(key.to_string());
    }
    let (scheme, rest) = split;
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest)
            .ok()
            .and_then(|b| String::from_utf8(b).ok());
        let credentials = match decoded {
            Some(decoded) => Cow::Owned(decoded),
            None if KEY_PREFIXES.iter().any(|p| rest.starts_with(p)) => Cow::Borrowed(rest),
            None => return None,
        };
        let user = credentials.split(':').next().unwrap_or("");
        return (!user.is_empty()).then(|| user.to_string());
    }
    None
}

/// How Stripe's API keys begin (secret, restricted, publishable); `check_key` tells them apart.
const KEY_PREFIXES: [&str; 3] = ["sk_", "rk_", "pk_"];

/// Accepts test secret and restricted keys; refuses live keys, publishable keys and anything else.
pub fn check_key(key: &str) -> Result<(), StripeError> {
    const TEST: [&str; 2] = ["sk_test_", "rk_test_"];
    const LIVE: [&str; 2] = ["sk_live_", "rk_live_"];
    if let Some(p) = TEST.iter().find(|p| key.starts_with(*p)) {
        let rest = &key[p.len()..];
        if !rest.is_empty() && rest.len() <= 255 && rest.bytes().all(|b| b.is_ascii_graphic()) {
            return Ok(());
        }
    }
    if LIVE.iter().any(|p| key.starts_with(p)) {
        return Err(unauthorized(format!(
            "The credit emulator never accepts live keys ({}). Use a test key such as sk_test_123; each test key is its own isolated world.",
            mask(key)
        )));
    }
    if key.starts_with("pk_") {
        return Err(unauthorized(
            "This API call cannot be made with a publishable API key. Please use a secret API key. You can find a list of your API keys at https://dashboard.stripe.com/account/apikeys.".to_string(),
        ));
    }
    Err(unauthorized(format!(
        "Invalid API Key provided: {}",
        mask(key)
    )))
}

/// Masks a key as Stripe does: the `xx_test_` prefix and the last four characters stay.
pub fn mask(key: &str) -> String {
    let chars: Vec<char> = key.chars().take(300).collect();
    let prefix_len = [
        "sk_test_", "rk_test_", "sk_live_", "rk_live_", "pk_test_", "pk_live_", "ek_test_",
    ]
    .iter()
    .find(|p| key.starts_with(*p))
    .map(|p| p.len())
    .unwrap_or(0);
    if chars.len() <= prefix_len + 4 {
        return chars.iter().collect();
    }
    let tail = chars.len() - 4;
    chars
        .iter()
        .enumerate()
        .map(|(i, c)| if i < prefix_len || i >= tail { *c } else { '*' })
        .collect()
}

/// The connected account a request acts for (`Stripe-Account`), if it names one. The emulator
/// treats every key as a Connect platform with access to every account shaped like Stripe's ids
/// (`acct_` and 1 to 255 letters, digits or underscores); anything else is refused as Stripe refuses
/// an account the platform cannot reach: 403, code `account_invalid`. Several headers are joined
/// with `, `, so they are refused too.
pub fn account<'r>(req: &'r Request, key: &str) -> Result<Option<&'r str>, StripeError> {
    let mut values = req.headers.get_all(&names::STRIPE_ACCOUNT).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    let single = match values.next() {
        None => first.to_str().ok().filter(|v| account_shaped(v)),
        Some(_) => None,
    };
    match single {
        Some(account) => Ok(Some(account)),
        None => {
            let sent: Vec<Cow<str>> = req
                .headers
                .get_all("stripe-account")
                .iter()
                .map(|v| String::from_utf8_lossy(v.as_bytes()))
                .collect();
            Err(StripeError::invalid(format!(
                "The provided key '{}' does not have access to account '{}' (or that account does not exist). Application access may have been revoked.",
                mask(key),
                shorten(&sent.join(", "))
            ))
            .code("account_invalid")
            .status(403))
        }
    }
}

fn account_shaped(value: &str) -> bool {
    value.strip_prefix("acct_").is_some_and(|rest| {
        (1..=255).contains(&rest.len())
            && rest.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    })
}

/// The name of the world a request acts in: the key itself, or for a connected account the key and
/// the account separated by a space. Keys and account ids are visible ASCII, so no key alone can
/// spell a pair, and a pair never meets the key's own world.
pub fn world<'a>(key: &'a str, account: Option<&str>) -> Cow<'a, str> {
    match account {
        None => Cow::Borrowed(key),
        Some(account) => Cow::Owned(format!("{key} {account}")),
    }
}

/// The platform key of a connected account's world (named by [`world`]); `None` for a key's own
/// world.
pub fn platform_of(world: &str) -> Option<&str> {
    world.split_once(' ').map(|(key, _)| key)
}

/// [`world`], for a caller that owns the key and needs it no more: without an account the key
/// itself is the name, not a copy of it.
pub fn world_owned(key: String, account: Option<&str>) -> String {
    match account {
        None => key,
        Some(_) => world(&key, account).into_owned(),
    }
}

fn unauthorized(message: String) -> StripeError {
    let mut e = StripeError::invalid(message).status(401);
    e.headers.push((
        hyper::header::WWW_AUTHENTICATE,
        "Basic realm=\"Stripe\"".to_string(),
    ));
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connected_account_s_world_names_its_platform() {
        let connected = world("sk_test_a", Some("acct_1"));
        assert_eq!(platform_of(&connected), Some("sk_test_a"));
        assert_eq!(platform_of(&world("sk_test_a", None)), None);
    }

    #[test]
    fn masks_like_stripe() {
        assert_eq!(mask("sk_test_abcdefghAso0"), "sk_test_********Aso0");
        assert_eq!(mask("foo"), "foo");
        assert_eq!(mask("abcdefgh"), "****efgh");
    }

    #[test]
    fn keys() {
        assert!(check_key("sk_test_1").is_ok());
        assert!(check_key("rk_test_1").is_ok());
        assert!(check_key("sk_test_").is_err());
        assert!(check_key("sk_live_1")
            .unwrap_err()
            .message
            .contains("never accepts live keys"));
        assert!(check_key("pk_test_1")
            .unwrap_err()
            .message
            .contains("publishable"));
        assert_eq!(
            key_from_header("Bearer sk_test_1").as_deref(),
            Some("sk_test_1")
        );
        // "sk_test_1:" in base64
        assert_eq!(
            key_from_header("Basic c2tfdGVzdF8xOg==").as_deref(),
            Some("sk_test_1")
        );
        assert_eq!(key_from_header("Token x"), None);
        // The key unencoded, with or without the colon `-u` adds.
        assert_eq!(
            key_from_header("Basic sk_test_1").as_deref(),
            Some("sk_test_1")
        );
        assert_eq!(
            key_from_header("basic rk_test_1:").as_deref(),
            Some("rk_test_1")
        );
        assert_eq!(key_from_header("Basic not_a_key"), None);
        assert_eq!(key_from_header("Basic :sk_test_1"), None);
        assert_eq!(key_from_header("Basic %%%"), None);
    }

    #[test]
    fn account_shapes_and_worlds() {
        assert!(account_shaped("acct_1032D82eZvKYlo2C"));
        assert!(account_shaped("acct_connected_1"));
        assert!(!account_shaped("acct_"));
        assert!(!account_shaped("acct_a-b"));
        assert!(!account_shaped("cus_1"));
        assert!(!account_shaped(" acct_1"));
        assert!(!account_shaped(&format!("acct_{}", "a".repeat(256))));
        assert_eq!(world("sk_test_1", None), "sk_test_1");
        assert_eq!(world("sk_test_1", Some("acct_1")), "sk_test_1 acct_1");
    }
}
