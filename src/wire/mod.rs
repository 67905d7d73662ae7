//! Stripe's wire conventions, shared by the Stripe facade and the emulator's own `/_emulator`
//! routes (which speak Stripe's envelope to the same clients):
//!
//! ```text
//! envelope.rs  the error envelope `{"error": {code, doc_url, message, param, type}}`
//! keys.rs      API keys (Bearer, Basic, x-api-key), Stripe-Account and the world a request acts in
//! decode.rs    query string and form body into one parameter tree, with limits and the
//!              Content-Type check
//! params.rs    parameter schemas as data (`Field`, `Spec`), the validator, and typed getters
//! versions.rs  the API version table, the changes it orders, and a world's default version
//! ```
//!
//! Nothing here knows a resource: the facade's resource files and the admin routes both build on
//! these, and neither reaches into the other.

pub mod decode;
pub mod envelope;
pub mod keys;
pub mod params;
pub mod versions;
