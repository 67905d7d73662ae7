//! The SQLite file: its schema, its version check, and the writer thread that commits records.
//!
//! One file, `credit-emulator.sqlite3`, in write-ahead-log mode with `synchronous=NORMAL`: a
//! committed transaction is in the log file before the commit returns, so it survives the process
//! being killed at any moment (a power cut may lose the last transactions; the emulator is a
//! development tool, and syncing every commit to the disk would cost more than the requests).
//! The file is opened with an exclusive lock, so a second emulator on the same directory is
//! refused instead of interleaving its journal with the first's.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension};

/// The layout of the file this emulator writes. A file with another number is refused.
pub const SCHEMA_VERSION: i64 = 1;

/// The file's name inside the data directory.
pub const FILE_NAME: &str = "credit-emulator.sqlite3";

/// A stored request, as the writer receives it: its number and its encoded record.
#[derive(Debug)]
pub struct Row {
    /// Its place in the journal.
    pub seq: u64,
    /// The world it was applied to.
    pub world: String,
    /// The encoded [`super::StoredRequest`].
    pub record: Vec<u8>,
}

/// What the writer is asked to do.
#[derive(Debug)]
pub enum Job {
    /// Commit `row`, then answer on the channel.
    Append(Row, tokio::sync::oneshot::Sender<Result<(), String>>),
    /// Replace the world's snapshot with `document`, taken after every record up to `seq`, and drop
    /// the world's records it covers; then answer.
    Snapshot {
        /// The world.
        world: String,
        /// The last record the snapshot includes.
        seq: u64,
        /// The encoded document; `None` when the world no longer exists.
        document: Option<Vec<u8>>,
        /// Told when done.
        done: std::sync::mpsc::Sender<Result<(), String>>,
    },
    /// A number no record will have (its request gave it up for a later one).
    Skip(u64),
    /// Answer once every record sent before is committed.
    Flush(std::sync::mpsc::Sender<()>),
}

/// Opens (or creates) the file in `dir`, checking its schema version.
pub fn open(dir: &Path) -> Result<Connection, String> {
    std::fs::create_dir_all(dir)
        .map_err(|e| format!("cannot create the data directory {}: {e}", dir.display()))?;
    let path: PathBuf = dir.join(FILE_NAME);
    let conn =
        Connection::open(&path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let fail = |e: rusqlite::Error| describe(&path, e);
    // Exclusive locking before WAL: the write-ahead log then needs no shared memory, and a second
    // process gets "database is locked" at its first read.
    conn.pragma_update(None, "locking_mode", "EXCLUSIVE")
        .map_err(fail)?;
    conn.busy_timeout(Duration::from_millis(0)).map_err(fail)?;
    // Takes effect only on a new file, before its first page is written: the pages that snapshots
    // free can then be handed back to the file system.
    conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")
        .map_err(fail)?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(fail)?;
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(fail)?;
    let has_meta: bool = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'meta'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .map_err(fail)?
        > 0;
    if has_meta {
        let version: Option<String> = conn
            .query_row(
                "SELECT value FROM meta WHERE key = 'schema_version'",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(fail)?;
        match version.as_deref().map(str::parse::<i64>) {
            Some(Ok(SCHEMA_VERSION)) => {}
            Some(Ok(other)) => {
                return Err(format!(
                    "{} holds a store of schema version {other}; this emulator reads schema version {SCHEMA_VERSION} only. Start it on another --data-dir, or use the emulator version that wrote it.",
                    path.display()
                ))
            }
            _ => {
                return Err(format!(
                    "{} has no readable schema version: it was not written by credit-emulator.",
                    path.display()
                ))
            }
        }
    } else {
        let tables: i64 = conn
            .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
            .map_err(fail)?;
        if tables > 0 {
            return Err(format!(
                "{} is an SQLite database that credit-emulator did not write; refusing to use it.",
                path.display()
            ));
        }
        conn.execute_batch(&format!(
            "BEGIN;
             CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
             INSERT INTO meta VALUES ('schema_version', '{SCHEMA_VERSION}');
             INSERT INTO meta VALUES ('written_by', 'credit-emulator {}');
             CREATE TABLE journal (seq INTEGER PRIMARY KEY, world TEXT NOT NULL, record BLOB NOT NULL);
             CREATE INDEX journal_world ON journal (world, seq);
             CREATE TABLE snapshots (world TEXT NOT NULL, seq INTEGER NOT NULL, part INTEGER NOT NULL,
                                     chunk BLOB NOT NULL, PRIMARY KEY (world, part));
             COMMIT;",
            env!("CARGO_PKG_VERSION")
        ))
        .map_err(fail)?;
    }
    Ok(conn)
}

fn describe(path: &Path, e: rusqlite::Error) -> String {
    let text = e.to_string();
    if text.contains("locked") || text.contains("busy") {
        format!(
            "{} is in use by another running emulator (or another program holds it locked).",
            path.display()
        )
    } else if text.contains("not a database") {
        format!("{} is not an SQLite database.", path.display())
    } else {
        format!("{}: {text}", path.display())
    }
}

/// The salt the store's worlds take their ids' from ([`crate::ids::IdGen::salted`]), kept in
/// `meta` as `world_salt`. A store that holds nothing yet is given one; a store written before
/// the salt was kept has none, and its worlds go on drawing theirs as they did.
pub fn world_salt(conn: &Connection) -> Result<Option<u64>, String> {
    let kept: Option<String> = conn
        .query_row("SELECT value FROM meta WHERE key = 'world_salt'", [], |r| {
            r.get(0)
        })
        .optional()
        .map_err(|e| e.to_string())?;
    if let Some(kept) = kept {
        return kept
            .parse()
            .map(Some)
            .map_err(|_| format!("the store's world salt {kept:?} is not a number"));
    }
    let held: i64 = conn
        .query_row(
            "SELECT (SELECT count(*) FROM journal) + (SELECT count(*) FROM snapshots)",
            [],
            |r| r.get(0),
        )
        .map_err(|e| e.to_string())?;
    if held > 0 {
        return Ok(None);
    }
    let salt: u64 = rand::random();
    conn.execute(
        "INSERT INTO meta VALUES ('world_salt', ?1)",
        params![salt.to_string()],
    )
    .map_err(|e| e.to_string())?;
    Ok(Some(salt))
}

/// The highest journal number in the file (0 when empty).
pub fn last_seq(conn: &Connection) -> Result<u64, String> {
    conn.query_row("SELECT coalesce(max(seq), 0) FROM journal", [], |r| {
        r.get::<_, i64>(0)
    })
    .map(|v| v as u64)
    .map_err(|e| e.to_string())
}

/// Each stored world's snapshot: `(world, seq, document)`.
pub fn snapshots(conn: &Connection) -> Result<Vec<(String, u64, Vec<u8>)>, String> {
    let mut stmt = conn
        .prepare("SELECT world, seq, chunk FROM snapshots ORDER BY world, part")
        .map_err(|e| e.to_string())?;
    let mut rows = stmt.query([]).map_err(|e| e.to_string())?;
    let mut out: Vec<(String, u64, Vec<u8>)> = Vec::new();
    while let Some(row) = rows.next().map_err(|e| e.to_string())? {
        let world: String = row.get(0).map_err(|e| e.to_string())?;
        let seq: i64 = row.get(1).map_err(|e| e.to_string())?;
        let chunk: Vec<u8> = row.get(2).map_err(|e| e.to_string())?;
        match out.last_mut() {
            Some((w, _, doc)) if *w == world => doc.extend_from_slice(&chunk),
            _ => out.push((world, seq as u64, chunk)),
        }
    }
    Ok(out)
}

/// Calls `each` with every journal record in order, skipping those a world's snapshot covers.
pub fn each_record(
    conn: &Connection,
    covered: &std::collections::HashMap<String, u64>,
    mut each: impl FnMut(u64, &[u8]),
) -> Result<(), String> {
    let mut stmt = conn
        .prepare("SELECT seq, world, record FROM journal ORDER BY seq")
        .map_err(|e| e.to_string())?;
    let mut rows = stmt.query([]).map_err(|e| e.to_string())?;
    while let Some(row) = rows.next().map_err(|e| e.to_string())? {
        let seq = row.get::<_, i64>(0).map_err(|e| e.to_string())? as u64;
        let world = row.get_ref(1).map_err(|e| e.to_string())?;
        let world = world.as_str().map_err(|e| e.to_string())?;
        if covered.get(world).is_some_and(|&s| seq <= s) {
            continue;
        }
        let record = row.get_ref(2).map_err(|e| e.to_string())?;
        each(seq, record.as_blob().map_err(|e| e.to_string())?);
    }
    Ok(())
}

/// Snapshot documents are stored in parts of this size: SQLite's largest value is 1 GB.
const CHUNK: usize = 64 << 20;

/// The writer: commits records in journal order, as many as are waiting in one transaction, and
/// answers each request once its record, and every record before it, is committed. A record may
/// arrive before one with a smaller number (two requests finish in either order); it waits for the
/// gap to fill, so that what is acknowledged is always a prefix of the journal.
pub fn writer(mut conn: Connection, jobs: Receiver<Job>, mut next: u64) {
    type Ack = tokio::sync::oneshot::Sender<Result<(), String>>;
    // `None`: a skipped number.
    let mut waiting: BTreeMap<u64, Option<(Row, Ack)>> = BTreeMap::new();
    let mut flushes: Vec<std::sync::mpsc::Sender<()>> = Vec::new();
    loop {
        // Blocks for the first job, then takes whatever else is waiting.
        let first = if waiting.is_empty() {
            match jobs.recv() {
                Ok(j) => Some(j),
                Err(_) => break,
            }
        } else {
            // A gap: its record is on its way; do not spin.
            match jobs.recv_timeout(Duration::from_millis(50)) {
                Ok(j) => Some(j),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => break,
            }
        };
        let mut snapshots = Vec::new();
        for job in first
            .into_iter()
            .chain(std::iter::from_fn(|| jobs.try_recv().ok()))
        {
            match job {
                Job::Append(row, ack) => {
                    waiting.insert(row.seq, Some((row, ack)));
                }
                Job::Skip(seq) => {
                    waiting.insert(seq, None);
                }
                Job::Snapshot {
                    world,
                    seq,
                    document,
                    done,
                } => snapshots.push((world, seq, document, done)),
                Job::Flush(done) => flushes.push(done),
            }
        }
        let mut batch: Vec<(Row, Ack)> = Vec::new();
        while let Some(entry) = waiting.remove(&next) {
            batch.extend(entry);
            next += 1;
        }
        if !batch.is_empty() {
            let result = commit(&mut conn, &batch);
            if let Err(e) = &result {
                tracing::error!("could not store {} request(s): {e}", batch.len());
            }
            for (_, ack) in batch {
                let _ = ack.send(result.clone());
            }
        }
        for (world, seq, document, done) in snapshots {
            let _ = done.send(snapshot(&mut conn, &world, seq, document.as_deref()));
        }
        if waiting.is_empty() {
            for done in flushes.drain(..) {
                let _ = done.send(());
            }
        }
    }
    // The senders are gone, so the gaps will never fill: store what is waiting anyway, in order
    // (none of it was acknowledged).
    if !waiting.is_empty() {
        let rest: Vec<(Row, Ack)> = std::mem::take(&mut waiting)
            .into_values()
            .flatten()
            .collect();
        let _ = commit(&mut conn, &rest);
    }
    // A clean stop: the journal records the snapshots replaced are given back to the file system,
    // and the write-ahead log is folded into the file and emptied.
    if let Err(e) =
        conn.execute_batch("PRAGMA incremental_vacuum; PRAGMA wal_checkpoint(TRUNCATE);")
    {
        tracing::warn!("could not compact the data file: {e}");
    }
    for done in flushes {
        let _ = done.send(());
    }
}

fn commit<A>(conn: &mut Connection, batch: &[(Row, A)]) -> Result<(), String> {
    let tx = conn.transaction().map_err(|e| e.to_string())?;
    {
        let mut stmt = tx
            .prepare_cached(
                "INSERT OR REPLACE INTO journal (seq, world, record) VALUES (?1, ?2, ?3)",
            )
            .map_err(|e| e.to_string())?;
        for (row, _) in batch {
            stmt.execute(params![row.seq as i64, row.world, row.record])
                .map_err(|e| e.to_string())?;
        }
    }
    tx.commit().map_err(|e| e.to_string())
}

fn snapshot(
    conn: &mut Connection,
    world: &str,
    seq: u64,
    document: Option<&[u8]>,
) -> Result<(), String> {
    let tx = conn.transaction().map_err(|e| e.to_string())?;
    tx.execute("DELETE FROM snapshots WHERE world = ?1", params![world])
        .map_err(|e| e.to_string())?;
    if let Some(document) = document {
        for (part, chunk) in document.chunks(CHUNK).enumerate() {
            tx.execute(
                "INSERT INTO snapshots (world, seq, part, chunk) VALUES (?1, ?2, ?3, ?4)",
                params![world, seq as i64, part as i64, chunk],
            )
            .map_err(|e| e.to_string())?;
        }
    }
    tx.execute(
        "DELETE FROM journal WHERE world = ?1 AND seq <= ?2",
        params![world, seq as i64],
    )
    .map_err(|e| e.to_string())?;
    tx.commit().map_err(|e| e.to_string())
}
