//! `--inproc ROW`: what one kind of request costs the emulator's handler alone, in this process,
//! on one thread: no sockets, no HTTP parsing, no second worker to share the world's lock with.
//! The figure a change to the request path moves, without the noise of a shared machine's network
//! and scheduler (the socket rows measure what a client sees).

use std::time::{Duration, Instant};

use bytes::Bytes;
use credit_emulator::http::Request as EmuRequest;
use credit_emulator::{App, Config};
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request};

use crate::{
    invoice_grant_request, invoice_request, json_id, meter_event_form, meter_request,
    native_request, native_setup_request, native_subscription_grant_body, realistic_grant_form,
    scope_prices, stripe_post_plain, stripe_request, NativeSetup,
};

/// Converts a client request into the emulator's own, as its server does.
async fn convert(req: Request<Full<Bytes>>, n: u64) -> EmuRequest {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    EmuRequest {
        method: parts.method,
        path: parts.uri.path().to_string(),
        query: parts.uri.query().map(str::to_string),
        headers: parts.headers,
        body,
        request_id: format!("req_inproc{n:08}"),
    }
}

/// One request through the router, as the server sends it; its status and body.
fn serve(app: &App, req: &EmuRequest) -> (u16, Bytes) {
    let api = credit_emulator::router::api_of(&req.path, &req.headers);
    let (reply, _) = credit_emulator::persist::dispatch(app, api, req);
    let reply = reply.expect("no panic");
    (reply.status, reply.body)
}

async fn setup(app: &App, req: Request<Full<Bytes>>) -> Result<String, String> {
    let req = convert(req, 0).await;
    let (status, body) = serve(app, &req);
    if status >= 300 {
        return Err(format!(
            "{} {}: {status} {}",
            req.method,
            req.path,
            String::from_utf8_lossy(&body)
        ));
    }
    Ok(json_id(&body).unwrap_or_default())
}

type Make = Box<dyn Fn(u64) -> Request<Full<Bytes>>>;

/// Runs `row` `secs` × 50,000 times and prints the handler's time per request.
pub async fn run(row: &str, secs: f64) -> Result<(), String> {
    let app = App::new(Config::default());
    let key = "sk_test_bench_inproc";
    let customer = setup(
        &app,
        stripe_post_plain(key, "/v1/customers", "email=a%40example.com&name=A".into()),
    )
    .await?;
    let make: Make = match row {
        "create" => {
            let prices = scope_prices(key, |req| setup(&app, req)).await?;
            Box::new(move |_| {
                stripe_request(
                    Method::POST,
                    key,
                    "/v1/billing/credit_grants",
                    Some(realistic_grant_form(&customer, &prices)),
                )
            })
        }
        "invoice" => {
            for i in 0..100 {
                setup(&app, invoice_grant_request(key, &customer, i)).await?;
            }
            Box::new(move |_| invoice_request(key, &customer))
        }
        "meter_events" => {
            setup(&app, meter_request(key)).await?;
            Box::new(move |_| {
                stripe_request(
                    Method::POST,
                    key,
                    "/v1/billing/meter_events",
                    Some(meter_event_form(&customer)),
                )
            })
        }
        "native" => {
            let c = setup(&app, native_setup_request(key, NativeSetup::Customer)).await?;
            let p = setup(&app, native_setup_request(key, NativeSetup::Plan)).await?;
            let step = NativeSetup::Subscription(&c, &p);
            let s = setup(&app, native_setup_request(key, step)).await?;
            let body = native_subscription_grant_body(&s);
            Box::new(move |_| {
                native_request(Method::POST, key, "/v1/creditgrants", Some(body.clone()))
            })
        }
        other => {
            return Err(format!(
                "--inproc takes create, invoice, meter_events or native, not {other}"
            ))
        }
    };
    // A fixed count rather than a time: a create's cost depends on how large the world has grown
    // (what its caps drop), so runs compare only at the same size.
    let count = (secs * 50_000.0) as u64;
    let mut spent = Duration::ZERO;
    let mut n = 0u64;
    let mut failed = 0u64;
    // Batches of BATCH requests: the fastest batch is the figure another process on the machine
    // disturbs least (a preempted request only slows its own batch). Only the second half's
    // batches count, when the world is as large as it gets (its caps dropping what is oldest).
    const BATCH: u64 = 1_000;
    let mut batch = Duration::ZERO;
    let mut batches: Vec<Duration> = Vec::new();
    while n < count {
        let req = convert(make(n), n).await;
        let t = Instant::now();
        let (status, body) = serve(&app, &req);
        let took = t.elapsed();
        spent += took;
        batch += took;
        if (n + 1) % BATCH == 0 {
            batches.push(std::mem::take(&mut batch));
        }
        if status >= 300 {
            failed += 1;
            if failed == 1 {
                eprintln!("{row}: {status} {}", String::from_utf8_lossy(&body));
            }
        }
        n += 1;
    }
    let mut batches = batches.split_off(batches.len() / 2);
    batches.sort();
    let per = |d: Option<&Duration>| d.map_or(0.0, |d| d.as_secs_f64() * 1e6 / BATCH as f64);
    println!(
        "{row} in process: {n} requests ({failed} failed), {:.2} µs per request in the handler \
         (second half, batches of {BATCH}: fastest {:.2} µs, median {:.2} µs)",
        spent.as_secs_f64() * 1e6 / n.max(1) as f64,
        per(batches.first()),
        per(batches.get(batches.len() / 2)),
    );
    Ok(())
}
