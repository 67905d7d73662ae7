//! async-stripe, the official Rust client, through one-off invoices and a subscription's invoices:
//! it sends invoice items, creates, finalizes and pays invoices, previews the next one, and reads
//! back every object the emulator renders (drafts, paid invoices, items, previews).

use crate::support;

use stripe_billing::invoice::{
    CreateInvoice, CreateInvoicePendingInvoiceItemsBehavior, FinalizeInvoiceInvoice, PayInvoice,
    RetrieveInvoice,
};
use stripe_billing::invoice_item::{CreateInvoiceItem, RetrieveInvoiceItem};
use stripe_billing::InvoiceStatus;
use support::{sdk, Emu};

#[tokio::test]
async fn the_sdk_buys_a_pack_through_a_one_off_invoice() {
    let emu = Emu::start().await;
    let key = emu.tenant("sdk_one_off").await;
    let cus = emu.customer(&key, "name=Ada").await;
    let client = sdk::client(&emu, &key);

    let item = CreateInvoiceItem::new()
        .customer(cus.clone())
        .amount(2_500)
        .currency(stripe_types::Currency::USD)
        .description("1,000 credits")
        .send(&client)
        .await
        .expect("the SDK creates an invoice item");
    assert_eq!(item.amount, 2_500);
    assert!(item.invoice.is_none());

    let draft = CreateInvoice::new()
        .customer(cus.clone())
        .pending_invoice_items_behavior(CreateInvoicePendingInvoiceItemsBehavior::Include)
        .send(&client)
        .await
        .expect("the SDK creates a draft");
    assert_eq!(draft.status, Some(InvoiceStatus::Draft));
    assert_eq!(draft.total, 2_500);
    let id = draft.id.clone().expect("an id");

    let open = FinalizeInvoiceInvoice::new(id.clone())
        .send(&client)
        .await
        .expect("the SDK finalizes");
    // Charged automatically with something due: paid by the (test) payment method.
    assert_eq!(open.status, Some(InvoiceStatus::Paid));
    assert_eq!(open.amount_paid, 2_500);
    assert!(open.number.is_some());

    let again = PayInvoice::new(id.clone())
        .paid_out_of_band(true)
        .send(&client)
        .await
        .expect_err("a paid invoice cannot be paid again");
    assert!(
        again.to_string().contains("Invoice is already paid"),
        "{again}"
    );

    let read = RetrieveInvoice::new(id.clone())
        .send(&client)
        .await
        .expect("the SDK reads the invoice");
    assert_eq!(read.lines.data.len(), 1);
    let item = RetrieveInvoiceItem::new(item.id.clone())
        .send(&client)
        .await
        .expect("the SDK reads the item");
    assert!(item.invoice.is_some());
}
