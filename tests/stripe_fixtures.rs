//! Replays the SDK wire fixtures in `fixtures/stripe/` and snapshots what the emulator answers.

mod common;

use common::Emu;
use insta::assert_json_snapshot;

#[tokio::test]
async fn sdk_wire_formats_create_the_same_kind_of_grant() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/stripe");
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .expect("fixtures/stripe exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "form"))
        .collect();
    names.sort();
    assert!(names.len() >= 3, "fixtures present");
    let emu = Emu::start().await;
    for path in names {
        let name = path
            .file_stem()
            .unwrap()
            .to_string_lossy()
            .replace('.', "_");
        let key = emu.tenant(&name).await;
        let customer = emu.customer(&key, "email=fixture%40example.com").await;
        let body = std::fs::read_to_string(&path)
            .unwrap()
            .replace("{customer}", &customer);
        let r = emu
            .post(&key, "/v1/billing/credit_grants", body.trim_end())
            .await;
        assert_eq!(r.status, 200, "{name}: {}", r.text);
        assert_json_snapshot!(name, r.body);
    }
}
