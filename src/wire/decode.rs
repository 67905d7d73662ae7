//! A request's parameters as Stripe reads them: the query string and, for form bodies, the body,
//! decoded into one tree, within the configured limits. A body of another type is refused.

use crate::form::{self, FormError, FormLimits, Params};
use crate::http::{names, Request};

use super::envelope::{shorten, StripeError, StripeResult};

/// Decodes the query string and, for form bodies, the body into one tree.
pub fn decode(req: &Request, limits: &FormLimits) -> StripeResult<Params> {
    // Sized for a create's dozen top-level names, so the map is not regrown while decoding.
    let mut params = Params::with_capacity(16);
    let mut count = 0;
    if let Some(q) = &req.query {
        form::parse_into(&mut params, q.as_bytes(), limits, &mut count).map_err(form_error)?;
    }
    if !req.body.is_empty() {
        let content_type = req.header(&names::CONTENT_TYPE).unwrap_or("");
        let mime = content_type.split(';').next().unwrap_or("").trim();
        if !mime.is_empty() && !mime.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
            return Err(StripeError::invalid(format!(
                "Invalid request: unsupported Content-Type {}. If error persists and you need assistance, please contact support@stripe.com.",
                shorten(content_type)
            )));
        }
        form::parse_into(&mut params, &req.body, limits, &mut count).map_err(form_error)?;
    }
    Ok(params)
}

fn form_error(e: FormError) -> StripeError {
    match e {
        FormError::BadEncoding => StripeError::invalid(
            "Invalid request: the parameters are not valid application/x-www-form-urlencoded data (a '%' escape is broken, or the decoded bytes are not UTF-8).",
        ),
        FormError::TooManyParams { limit } => StripeError::invalid(format!(
            "Invalid request: too many parameters (the emulator accepts at most {limit} per request)."
        )),
        FormError::TooDeep { param, limit } => {
            let param = shorten(&param);
            StripeError::invalid(format!(
                "Invalid request: the parameter {param} is nested too deeply (the emulator accepts at most {limit} levels of brackets)."
            ))
            .param(param)
        }
        FormError::Conflict { param } => {
            let param = shorten(&param);
            StripeError::invalid(format!(
                "Invalid request: the parameter {param} was sent both as a single value and as a hash or array."
            ))
            .param(param)
        }
    }
}
