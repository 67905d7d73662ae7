//! A world as a snapshot: its state document ([`crate::state`]) in MessagePack, the compact
//! binary form of the same serde types, about half the size of its JSON and quicker to read.

use crate::app::App;
use crate::state::WorldDocument;

/// Loads the snapshot `document` as the world named `world`.
pub fn load(app: &App, world: &str, document: &[u8]) -> Result<(), String> {
    let doc: WorldDocument = rmp_serde::from_slice(document).map_err(|e| e.to_string())?;
    app.import_world(world, doc).map_err(|e| e.to_string())
}

/// The world named `world` as a snapshot, with the journal number `last` gives under the world's
/// lock; `None` when there is no such world.
pub fn save(
    app: &App,
    world: &str,
    last: impl FnOnce() -> u64,
) -> Result<Option<(u64, Vec<u8>)>, String> {
    if app.store.get(world).is_none() {
        return Ok(None);
    }
    let (doc, seq) = app.export_world_at(world, last);
    let bytes = rmp_serde::to_vec_named(&doc).map_err(|e| e.to_string())?;
    Ok(Some((seq, bytes)))
}
