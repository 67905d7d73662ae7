//! The integration tests, one binary: each module below is one area's tests (its file beside this
//! one), and `support` holds what they share. One binary links the emulator and the clients once
//! instead of once per file, which keeps `cargo test` quick and its build small; run one area with
//! `cargo test --test suite <module>::`.
//!
//! Every test starts its own emulator on a free port (or its own world in a shared one), so the
//! modules run side by side in one process without seeing each other's state.

mod async_stripe;
mod support;
// Runs the command-line binary itself, which only the `cli` feature builds.
#[cfg(feature = "cli")]
mod cli;
mod cross_api_spending;
mod cycle_props;
// Runs the command-line binary itself, which only the `cli` feature builds.
#[cfg(feature = "cli")]
mod fixtures;
mod fuzz_fixtures;
mod fuzz_form;
mod fuzz_http;
mod fuzz_native;
mod fuzz_state;
mod fuzz_stripe;
mod inspector;
mod ledger_props;
mod library;
mod native_billing;
mod native_binding;
mod native_cross_api;
mod native_cycle_spending;
mod native_grants;
mod native_older_form;
mod persistence;
mod request_log;
mod robustness_concurrency;
mod robustness_corpus;
mod robustness_isolation;
// Runs the command-line binary itself, which only the `cli` feature builds.
#[cfg(feature = "cli")]
mod robustness_limits;
mod robustness_panic;
mod shared_instance;
mod state;
mod stripe_alerts;
mod stripe_connect;
mod stripe_conventions;
mod stripe_credit_grants;
mod stripe_customers;
mod stripe_events;
mod stripe_fixtures;
mod stripe_invoice_list;
mod stripe_invoice_previews;
mod stripe_invoice_updates;
mod stripe_invoices_sdk;
mod stripe_ledger;
mod stripe_ledger_sdk;
mod stripe_meter_events;
mod stripe_meters;
mod stripe_one_off_invoices;
mod stripe_operations;
mod stripe_prices;
mod stripe_products;
mod stripe_search;
mod stripe_subscriptions;
mod stripe_test_clock_customer;
mod stripe_usage_billing;
mod stripe_versions;
mod webhooks;
