//! Replays the SDK wire fixtures in `fixtures/stripe/` (one captured create body per file) and
//! snapshots what the emulator answers, one snapshot per fixture.

use crate::support;

use support::Emu;

#[test]
fn sdk_wire_formats_create_the_same_kind_of_grant() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let emu = rt.block_on(Emu::start());
    let mut seen = 0;
    insta::glob!("../fixtures", "stripe/*.form", |path| {
        seen += 1;
        let name = path
            .file_stem()
            .unwrap()
            .to_string_lossy()
            .replace('.', "_");
        let body = std::fs::read_to_string(path).unwrap();
        let r = rt.block_on(async {
            // Each fixture in a world of its own, so that the seeded ids do not depend on the order.
            let key = emu.tenant(&name).await;
            let customer = emu.customer(&key, "email=fixture%40example.com").await;
            let mut body = body.replace("{customer}", &customer);
            for (placeholder, event) in [("{price_a}", "calls_a"), ("{price_b}", "calls_b")] {
                if body.contains(placeholder) {
                    let price = emu.metered_price(&key, event).await;
                    body = body.replace(placeholder, &price);
                }
            }
            emu.post(&key, "/v1/billing/credit_grants", body.trim_end())
                .await
        });
        assert_eq!(r.status, 200, "{name}: {}", r.text);
        insta::assert_json_snapshot!(r.body);
    });
    assert!(seen >= 3, "fixtures present");
}
