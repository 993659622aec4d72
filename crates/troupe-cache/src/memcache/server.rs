//! The memcached front end's connection loop: serves each connection the
//! listener shell admits (`troupe_runtime::listener`), decodes pipelined
//! requests, runs them where they belong and writes memcached's replies in
//! order
//!
//! Per connection: read into a buffer (never more than one request's limit
//! past what is decoded), decode every complete request, answer each in
//! order into one output buffer, and write it after the batch. Runs of
//! requests on keys run on each shard's table in place when the shard is in
//! this process, else go to it as one message per batch
//! ([`CacheClient::run`]); `flush_all`, `stats` and the like run between
//! them, in order. A line past its limit closes the connection, as
//! memcached closes one that sends 2,048 bytes without a newline.

use std::fmt::Write as _;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use troupe_runtime::listener::{Connection as ListenerConnection, Drain, ListenerStats};

use super::parse::{Decoder, Limits, Request};
use crate::client::{CacheClient, CacheError};
use crate::cmd::memcache::{
    Arith, Concat, Delete, Get, MAX_RELATIVE_EXPTIME, MemcacheCommand, OUT_OF_MEMORY, Storage,
    StoreMode, TOO_LARGE, TooLarge, Touch,
};
use crate::cmd::{KeyCommand, Now};
use crate::resp::Frame;
use crate::server::{BATCH_MAX_BYTES, BATCH_MAX_OPS, WRITE_AT};
use crate::shard::ShardError;
use crate::store::{Item, Value};
use crate::table::LocalTables;

/// What `version` answers: the protocol level served, and who serves it
pub(crate) const VERSION: &str = "1.6.0-troupe";

/// What a connection over a limit gets before it is closed (memcached says the same when it
/// runs out of connections)
pub(crate) const OVER_LIMIT_REFUSAL: &[u8] = b"ERROR Too many open connections\r\n";

/// Whether the shards read through a backing store: not yet asked.
const UNKNOWN: u8 = 0;
const PLAIN: u8 = 1;
const THROUGH: u8 = 2;

/// The counters `stats` reports, counted by this front end as memcached counts them.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    cmd_get: AtomicU64,
    get_hits: AtomicU64,
    get_misses: AtomicU64,
    cmd_set: AtomicU64,
    cmd_touch: AtomicU64,
    touch_hits: AtomicU64,
    touch_misses: AtomicU64,
    cmd_flush: AtomicU64,
    delete_hits: AtomicU64,
    delete_misses: AtomicU64,
    incr_hits: AtomicU64,
    incr_misses: AtomicU64,
    decr_hits: AtomicU64,
    decr_misses: AtomicU64,
    cas_hits: AtomicU64,
    cas_misses: AtomicU64,
    cas_badval: AtomicU64,
}

impl Counters {
    fn all(&self) -> [(&'static str, &AtomicU64); 17] {
        [
            ("cmd_get", &self.cmd_get),
            ("cmd_set", &self.cmd_set),
            ("cmd_flush", &self.cmd_flush),
            ("cmd_touch", &self.cmd_touch),
            ("get_hits", &self.get_hits),
            ("get_misses", &self.get_misses),
            ("delete_misses", &self.delete_misses),
            ("delete_hits", &self.delete_hits),
            ("incr_misses", &self.incr_misses),
            ("incr_hits", &self.incr_hits),
            ("decr_misses", &self.decr_misses),
            ("decr_hits", &self.decr_hits),
            ("cas_misses", &self.cas_misses),
            ("cas_hits", &self.cas_hits),
            ("cas_badval", &self.cas_badval),
            ("touch_hits", &self.touch_hits),
            ("touch_misses", &self.touch_misses),
        ]
    }
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// Everything the connection tasks share.
pub(crate) struct Shared {
    pub(crate) client: CacheClient,
    /// Whether the shards read through a backing store ([`UNKNOWN`], [`PLAIN`], [`THROUGH`]):
    /// asked once, as all shards of a cache are alike
    read_through: AtomicU8,
    pub(crate) limits: Limits,
    /// How long a client may send nothing before it is closed, if bounded
    pub(crate) idle_timeout: Option<Duration>,
    /// Longest a client may leave its replies unread, if bounded
    pub(crate) send_timeout: Option<Duration>,
    /// Most connections served at once (for `stats`)
    pub(crate) max_connections: usize,
    pub(crate) counters: Counters,
    /// When the server started, for `uptime`
    pub(crate) started: Instant,
}

impl Shared {
    pub(crate) fn new(
        client: CacheClient,
        limits: Limits,
        idle_timeout: Option<Duration>,
        send_timeout: Option<Duration>,
        max_connections: usize,
    ) -> Self {
        Self {
            client,
            read_through: AtomicU8::new(UNKNOWN),
            limits,
            idle_timeout,
            send_timeout,
            max_connections,
            counters: Counters::default(),
            started: troupe_runtime::time::now(),
        }
    }

    /// Whether the shards read through a backing store: asked of them the first time (the
    /// first shard to answer tells, so one shard down does not make every key wait).
    async fn read_through(&self) -> Result<bool, CacheError> {
        match self.read_through.load(Ordering::Relaxed) {
            PLAIN => Ok(false),
            THROUGH => Ok(true),
            _ => {
                let through = self.client.reads_through().await?;
                let known = if through { THROUGH } else { PLAIN };
                self.read_through.store(known, Ordering::Relaxed);
                Ok(through)
            }
        }
    }
}

/// Serves one connection the listener shell admitted until the client closes it or quits,
/// or until `drain` fires and the batch at hand is answered
pub(crate) async fn serve_connection(shared: Arc<Shared>, conn: ListenerConnection) {
    let ListenerConnection {
        stream,
        peer,
        drain,
        stats,
    } = conn;
    let mut conn = Connection {
        stream,
        shared: &shared,
        stats,
        tables: None,
    };
    if let Err(err) = conn.run(drain).await {
        tracing::debug!(cause = %err, %peer, "memcached connection ended with an error");
    }
}

/// What to do after answering
#[derive(PartialEq, Eq)]
enum After {
    Continue,
    Close,
}

/// Where a request of a batch finds its reply among the batch's key commands.
enum Slot {
    /// A retrieval: one part per key
    Get {
        keys: Vec<Bytes>,
        parts: Range<usize>,
        cas: bool,
        touch: bool,
    },
    /// One key command
    One {
        part: usize,
        noreply: bool,
        count: Count,
    },
}

/// Which counters a one-key command's reply moves.
#[derive(Clone, Copy)]
enum Count {
    Set,
    Cas,
    Delete,
    Incr,
    Decr,
    Touch,
    Nothing,
}

struct Connection<'a> {
    stream: TcpStream,
    shared: &'a Shared,
    stats: ListenerStats,
    /// The shards' tables, while every shard runs in this process and is plain (checked
    /// again when one closes)
    tables: Option<LocalTables>,
}

impl Connection<'_> {
    async fn run(&mut self, mut drain: Drain) -> std::io::Result<()> {
        let limits = self.shared.limits;
        let mut decoder = Decoder::new(limits);
        let mut input = BytesMut::with_capacity(16 * 1024);
        let mut output = BytesMut::with_capacity(16 * 1024);
        let mut requests = Vec::new();
        // the decoder never needs more than this buffered for one request
        let buffer_limit = limits.max_request();
        // one wait for the whole connection: registering a fresh one before every read
        // would take the server-wide signal's lock twice per batch
        let mut draining = drain.is_draining();
        let drained = drain.wait();
        tokio::pin!(drained);
        loop {
            let refused = decoder.decode_all(&mut input, &mut requests).err();
            let after = self.answer_all(&mut requests, &mut output).await?;
            if !output.is_empty() {
                self.write(&output).await?;
                output.clear();
            }
            // a burst's peak is not kept for the rest of the connection's life
            crate::server::shrink(&mut input, &mut output, &mut requests);
            if after == After::Close {
                let _ = self.stream.shutdown().await;
                return Ok(());
            }
            if let Some(err) = refused {
                metrics::counter!("troupe_cache_memcached_protocol_errors_total").increment(1);
                tracing::debug!(cause = %err, "closing a memcached client");
                let _ = self.stream.shutdown().await;
                return Ok(());
            }
            if draining {
                let _ = self.stream.shutdown().await;
                return Ok(());
            }
            let room = (buffer_limit.saturating_sub(input.len()) as u64).saturating_add(1);
            let idle_timeout = self.shared.idle_timeout;
            let idle = async {
                match idle_timeout {
                    Some(idle) => tokio::time::sleep(idle).await,
                    None => std::future::pending().await,
                }
            };
            let mut limited = (&mut self.stream).take(room);
            tokio::select! {
                // first: once draining, nothing more is read
                biased;
                // Draining: answer what was read, then close (above).
                () = &mut drained, if !draining => draining = true,
                read = limited.read_buf(&mut input) => {
                    if read? == 0 {
                        return Ok(());
                    }
                }
                () = idle => {
                    metrics::counter!("troupe_cache_memcached_idle_closed_total").increment(1);
                    let _ = self.stream.shutdown().await;
                    return Ok(());
                }
            }
        }
    }

    /// Answers every request of `requests` (emptying it) into `out`, in order: runs of
    /// requests on keys go to the shards as batches, anything else one by one between them.
    /// Stops at `quit`.
    ///
    /// Replies are written out whenever [`WRITE_AT`] bytes of them wait, so a client that
    /// pipelines many large reads and does not read them holds at most that much (and one
    /// batch) in the server.
    async fn answer_all(
        &mut self,
        requests: &mut Vec<Request>,
        out: &mut BytesMut,
    ) -> std::io::Result<After> {
        let mut run = Vec::new();
        for request in requests.drain(..) {
            if is_on_keys(&request) {
                run.push(request);
                continue;
            }
            self.answer_run(&mut run, out).await?;
            if self.answer(request, out).await == After::Close {
                return Ok(After::Close);
            }
            self.write_if_full(out).await?;
        }
        self.answer_run(&mut run, out).await?;
        Ok(After::Continue)
    }

    /// Writes the replies waiting in `out` once there are [`WRITE_AT`] bytes of them.
    async fn write_if_full(&mut self, out: &mut BytesMut) -> std::io::Result<()> {
        if out.len() >= WRITE_AT {
            self.write(out).await?;
            out.clear();
        }
        Ok(())
    }

    /// Writes `bytes`, failing with `TimedOut` (which ends the connection) if the client
    /// takes none of them for the send timeout: the deadline starts again whenever it reads
    /// some.
    async fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        let limit = self.shared.send_timeout;
        let written = crate::server::write_within(&mut self.stream, bytes, limit).await;
        if written
            .as_ref()
            .is_err_and(|e| e.kind() == std::io::ErrorKind::TimedOut)
        {
            metrics::counter!("troupe_cache_memcached_send_timeout_closed_total").increment(1);
        }
        written
    }

    /// Answers a run of requests on keys (emptying it), a batch at a time.
    async fn answer_run(
        &mut self,
        run: &mut Vec<Request>,
        out: &mut BytesMut,
    ) -> std::io::Result<()> {
        let mut rest = std::mem::take(run).into_iter().peekable();
        while rest.peek().is_some() {
            // a retrieval of more keys than a batch takes is answered alone, a batch of keys
            // at a time, so what it holds at once stays bounded however long its line
            if let Some(Request::Get { keys, .. }) = rest.peek()
                && keys.len() > BATCH_MAX_OPS
            {
                if let Some(Request::Get { keys, cas, touch }) = rest.next() {
                    self.answer_long_get(&keys, cas, touch, out).await?;
                }
                continue;
            }
            let mut batch = Vec::new();
            let (mut ops, mut bytes) = (0, 0);
            while let Some(request) = rest.peek() {
                if matches!(request, Request::Get { keys, .. } if keys.len() > BATCH_MAX_OPS) {
                    break;
                }
                let (parts, size) = weight(request);
                let fits = ops + parts <= BATCH_MAX_OPS && bytes + size <= BATCH_MAX_BYTES;
                if !batch.is_empty() && !fits {
                    break;
                }
                ops += parts;
                bytes += size;
                batch.extend(rest.next());
            }
            self.answer_batch(batch, out).await?;
            self.write_if_full(out).await?;
        }
        Ok(())
    }

    /// Answers a retrieval of many keys a batch of keys at a time: `VALUE`s written out as
    /// they pass [`WRITE_AT`], `END` after the last (or the first error alone, as for any
    /// retrieval, after the values already sent).
    async fn answer_long_get(
        &mut self,
        keys: &[Bytes],
        cas: bool,
        touch: Option<i64>,
        out: &mut BytesMut,
    ) -> std::io::Result<()> {
        for chunk in keys.chunks(BATCH_MAX_OPS) {
            let keyed = chunk
                .iter()
                .map(|key| {
                    KeyCommand::from(Get {
                        key: key.clone(),
                        touch,
                    })
                })
                .collect();
            let replies = self.run_keyed(keyed).await;
            if let Some(error) = replies.iter().find(|r| matches!(r, Frame::Error(_))) {
                write_line(out, error);
                return Ok(());
            }
            self.write_hits(out, chunk, &replies, cas, touch.is_some())
                .await?;
        }
        out.extend_from_slice(b"END\r\n");
        Ok(())
    }

    /// Writes the `VALUE` line and data of each hit among `replies`, counting hits and
    /// misses; the replies written out whenever [`WRITE_AT`] bytes of them wait, so a
    /// retrieval's values are never all copied out at once.
    async fn write_hits(
        &mut self,
        out: &mut BytesMut,
        keys: &[Bytes],
        replies: &[Frame],
        cas: bool,
        touch: bool,
    ) -> std::io::Result<()> {
        for (key, reply) in keys.iter().zip(replies) {
            write_value(out, key, reply, cas, touch, &self.shared.counters);
            self.write_if_full(out).await?;
        }
        Ok(())
    }

    /// Answers `batch`, requests on keys: every key command of it goes to its shard, one
    /// message per shard, and each request's reply is written from its parts' replies.
    async fn answer_batch(
        &mut self,
        batch: Vec<Request>,
        out: &mut BytesMut,
    ) -> std::io::Result<()> {
        let mut sink = Sink {
            out,
            spill: Vec::new(),
        };
        let outcome = self.answer_in_place(batch, &mut sink);
        // what was answered in place goes first, in order, whatever is left after it
        let Sink { out, spill } = sink;
        for piece in spill {
            out.extend_from_slice(&piece);
            self.write_if_full(out).await?;
        }
        let batch = match outcome {
            Ok(()) => return Ok(()),
            Err(rest) => rest,
        };
        let max_item_size = self.shared.limits.max_item_size;
        let mut keyed: Vec<KeyCommand> = Vec::with_capacity(batch.len());
        let mut slots = Vec::with_capacity(batch.len());
        for request in batch {
            if let Request::Get { keys, cas, touch } = request {
                let start = keyed.len();
                keyed.extend(keys.iter().map(|key| {
                    KeyCommand::from(Get {
                        key: key.clone(),
                        touch,
                    })
                }));
                slots.push(Slot::Get {
                    keys,
                    parts: start..keyed.len(),
                    cas,
                    touch: touch.is_some(),
                });
                continue;
            }
            // not a request on keys: never in a batch
            let Some((unit, noreply, count)) = unit_of(request, max_item_size) else {
                continue;
            };
            slots.push(Slot::One {
                part: keyed.len(),
                noreply,
                count,
            });
            keyed.push(unit);
        }
        let replies = self.run_keyed(keyed).await;
        let shared = self.shared;
        let counters = &shared.counters;
        for slot in slots {
            match slot {
                Slot::Get {
                    keys,
                    parts,
                    cas,
                    touch,
                } => {
                    let replies = replies.get(parts).unwrap_or_default();
                    if let Some(error) = replies.iter().find(|r| matches!(r, Frame::Error(_))) {
                        write_line(out, error);
                        continue;
                    }
                    self.write_hits(out, &keys, replies, cas, touch).await?;
                    out.extend_from_slice(b"END\r\n");
                }
                Slot::One {
                    part,
                    noreply,
                    count,
                } => {
                    let reply = replies.get(part).cloned().unwrap_or_else(missing_reply);
                    count_reply(counters, count, &reply);
                    if !noreply {
                        write_line(out, &reply);
                    }
                }
            }
        }
        Ok(())
    }

    /// Answers `batch` into `sink` on the shards' own tables, in order, each command holding
    /// only its key's table while it runs (memcached promises nothing across keys), when every
    /// shard runs in this process and none reads through, and no request touches keys (`gat`,
    /// `gats`): no message, no reply to wait for, no frame per hit (see [`crate::table`]).
    /// Hands back what it did not run: the whole batch if a shard is elsewhere or reads
    /// through, or, from the first key whose table is busy or restarting, the rest (a
    /// retrieval cut there continues with its remaining keys, its `VALUE`s so far sent).
    fn answer_in_place(
        &mut self,
        batch: Vec<Request>,
        sink: &mut Sink<'_>,
    ) -> Result<(), Vec<Request>> {
        let shared = self.shared;
        let client = &shared.client;
        if batch
            .iter()
            .any(|request| matches!(request, Request::Get { touch: Some(_), .. }))
        {
            return Err(batch);
        }
        if !self.tables.as_ref().is_some_and(LocalTables::is_open) {
            self.tables = LocalTables::of(client);
        }
        let Some(tables) = &self.tables else {
            return Err(batch);
        };
        let now = Now::at(troupe_runtime::time::now());
        let counters = &shared.counters;
        let max_item_size = shared.limits.max_item_size;
        let mut requests = batch.into_iter();
        while let Some(request) = requests.next() {
            let Request::Get { keys, cas, .. } = request else {
                let shard = key_of(&request).map(|key| client.shard_of(key));
                let Some(mut table) = shard.and_then(|shard| tables.lock_one(shard, now.at)) else {
                    return Err(std::iter::once(request).chain(requests).collect());
                };
                // not a request on keys: never in a batch
                let Some((unit, noreply, count)) = unit_of(request, max_item_size) else {
                    continue;
                };
                let reply = table
                    .with_store(|store| unit.apply(store, &now))
                    .unwrap_or_else(|error| error);
                drop(table);
                let reply = as_server_error(reply);
                count_reply(counters, count, &reply);
                if !noreply {
                    sink.put_with(|out| write_line(out, &reply));
                }
                continue;
            };
            let mut failed = None;
            for (at, key) in keys.iter().enumerate() {
                let Some(mut table) = tables.lock_one(client.shard_of(key), now.at) else {
                    let rest = Request::Get {
                        keys: keys[at..].to_vec(),
                        cas,
                        touch: None,
                    };
                    return Err(std::iter::once(rest).chain(requests).collect());
                };
                bump(&counters.cmd_get);
                let read = table.with_store(|store| {
                    store.read_item(key, now.at, |item| write_item(sink, key, item, cas))
                });
                match read {
                    Ok(Some(true)) => bump(&counters.get_hits),
                    Ok(_) => bump(&counters.get_misses),
                    Err(error) => {
                        failed = Some(as_server_error(error));
                        break;
                    }
                }
            }
            // as for any retrieval that fails: the error alone after the values sent
            match failed {
                Some(error) => sink.put_with(|out| write_line(out, &error)),
                None => sink.put(b"END\r\n"),
            }
        }
        Ok(())
    }

    /// The replies to `keyed`, in order: as one batch per shard, or on a read-through cache
    /// one command at a time, through the backing store as the shards' typed calls or
    /// refused.
    async fn run_keyed(&self, keyed: Vec<KeyCommand>) -> Vec<Frame> {
        let through = match self.shared.read_through().await {
            Ok(through) => through,
            Err(err) => return vec![Frame::Error(server_error(&err)); keyed.len()],
        };
        if through {
            let mut frames = Vec::with_capacity(keyed.len());
            for cmd in keyed {
                frames.push(self.through_backing(cmd).await);
            }
            return frames;
        }
        let client = &self.shared.client;
        // reads are kept to ask again alone if their batch failed in transit
        let kept: Vec<Option<KeyCommand>> = keyed
            .iter()
            .map(|cmd| is_read(cmd).then(|| cmd.clone()))
            .collect();
        let replies = client.run(keyed).await;
        let mut frames = Vec::with_capacity(replies.len());
        for (kept, reply) in kept.into_iter().zip(replies) {
            frames.push(match (reply, kept) {
                (Ok(frame), _) => frame,
                (Err(CacheError::Unavailable(_)), Some(cmd)) => {
                    match client.run(vec![cmd]).await.pop() {
                        Some(Ok(frame)) => frame,
                        Some(Err(err)) => Frame::Error(server_error(&err)),
                        None => missing_reply(),
                    }
                }
                (Err(err), _) => Frame::Error(server_error(&err)),
            });
        }
        frames
    }

    /// A command on a read-through cache: `get`/`gets` read through (CAS 0), `set` without
    /// flags or exptime writes through, `delete` deletes through; anything else is refused,
    /// changing nothing.
    async fn through_backing(&self, cmd: KeyCommand) -> Frame {
        let client = &self.shared.client;
        let KeyCommand::Memcache(cmd) = cmd else {
            return missing_reply();
        };
        let result = match cmd {
            MemcacheCommand::Get(Get { key, touch: None }) => {
                client.get(key).await.map(|value| match value {
                    Some(value) => Frame::Array(vec![
                        Frame::Bulk(value),
                        Frame::Integer(0),
                        Frame::Integer(0),
                    ]),
                    None => Frame::Null,
                })
            }
            MemcacheCommand::Storage(Storage {
                mode: StoreMode::Set,
                key,
                flags: 0,
                exptime: 0,
                value,
            }) => client
                .set(key, value)
                .await
                .map(|()| Frame::Simple("STORED".into())),
            MemcacheCommand::Delete(Delete { key }) => client
                .del([key])
                .await
                .map(|n| Frame::Simple(if n > 0 { "DELETED" } else { "NOT_FOUND" }.into())),
            // over the item size limit: refused before anything is written
            MemcacheCommand::TooLarge(_) => return Frame::Error(TOO_LARGE.into()),
            MemcacheCommand::Storage(Storage {
                mode: StoreMode::Set,
                ..
            }) => return not_through("set with flags or an exptime"),
            other => return not_through(other.name()),
        };
        result.unwrap_or_else(|err| Frame::Error(server_error(&err)))
    }

    /// Answers one request that is not on keys into `out`.
    async fn answer(&mut self, request: Request, out: &mut BytesMut) -> After {
        let noreply = request.noreply();
        let reply: Vec<u8> = match request {
            Request::Quit | Request::Http => return After::Close,
            Request::Invalid { reply, .. } => reply.as_bytes().to_vec(),
            Request::Version => format!("VERSION {VERSION}").into_bytes(),
            Request::Verbosity { .. } => b"OK".to_vec(),
            Request::FlushAll { delay, .. } => self.flush_all(delay).await.into_bytes(),
            Request::Stats(arg) => {
                let text = self.stats(arg.as_deref()).await;
                out.extend_from_slice(&text);
                return After::Continue;
            }
            // requests on keys go in runs
            other => {
                if self.answer_batch(vec![other], out).await.is_err() {
                    return After::Close;
                }
                return After::Continue;
            }
        };
        if !noreply {
            out.extend_from_slice(&reply);
            out.extend_from_slice(b"\r\n");
        }
        After::Continue
    }

    /// `flush_all [delay]`: every shard empties now, or once the delay (an exptime: seconds
    /// up to 30 days, then a Unix time) has passed.
    async fn flush_all(&self, delay: i64) -> String {
        bump(&self.shared.counters.cmd_flush);
        match self.shared.read_through().await {
            Ok(true) => return not_through_text("flush_all"),
            Ok(false) => {}
            Err(err) => return server_error(&err),
        }
        let delay = match delay {
            ..=0 => Duration::ZERO,
            1..=MAX_RELATIVE_EXPTIME => Duration::from_secs(delay.unsigned_abs()),
            unix => {
                let now_ms = troupe_runtime::time::unix_millis(troupe_runtime::time::now());
                let ahead = unix.saturating_mul(1000).saturating_sub(now_ms);
                Duration::from_millis(u64::try_from(ahead).unwrap_or(0))
            }
        };
        match self.shared.client.flush_all_after(delay).await {
            Ok(()) => "OK".into(),
            Err(err) => server_error(&err),
        }
    }

    /// `stats`, `stats reset`, `stats settings`; memcached's lines, then `END`.
    async fn stats(&self, arg: Option<&[u8]>) -> Vec<u8> {
        let shared = self.shared;
        let mut lines: Vec<(String, String)> = Vec::new();
        let mut stat = |name: &str, value: String| lines.push((name.to_string(), value));
        match arg {
            None => {
                let cache = match shared.client.stats().await {
                    Ok(stats) => stats,
                    Err(err) => return line_bytes(&server_error(&err)),
                };
                let max_bytes = match shared.client.configure(None, None).await {
                    Ok(configs) => configs
                        .iter()
                        .fold(0usize, |sum, c| sum.saturating_add(c.max_bytes)),
                    Err(err) => return line_bytes(&server_error(&err)),
                };
                let now = troupe_runtime::time::now();
                let unix = troupe_runtime::time::unix_millis(now) / 1000;
                let uptime = now.saturating_duration_since(shared.started).as_secs();
                stat("pid", std::process::id().to_string());
                stat("uptime", uptime.to_string());
                stat("time", unix.to_string());
                stat("version", VERSION.into());
                stat("pointer_size", (usize::BITS).to_string());
                stat("curr_connections", self.stats.open().to_string());
                stat("total_connections", self.stats.accepted().to_string());
                stat("max_connections", shared.max_connections.to_string());
                for (name, counter) in shared.counters.all() {
                    stat(name, counter.load(Ordering::Relaxed).to_string());
                }
                stat("threads", shared.client.shards().len().to_string());
                stat("limit_maxbytes", max_bytes.to_string());
                stat("curr_items", cache.keys.to_string());
                stat("bytes", cache.bytes.to_string());
                stat("evictions", cache.evictions.to_string());
                stat("expired", cache.expirations.to_string());
            }
            Some(b"reset") => {
                for (_, counter) in shared.counters.all() {
                    counter.store(0, Ordering::Relaxed);
                }
                return b"RESET\r\n".to_vec();
            }
            Some(b"settings") => {
                let limits = &shared.limits;
                stat("maxconns", shared.max_connections.to_string());
                stat("item_size_max", limits.max_item_size.to_string());
                stat("cas_enabled", "yes".into());
                stat("evictions", "on".into());
                stat(
                    "idle_timeout",
                    shared.idle_timeout.map_or(0, |d| d.as_secs()).to_string(),
                );
            }
            // memcached's other lists, none of which this cache keeps
            Some(b"items" | b"slabs" | b"sizes" | b"conns") => {}
            Some(_) => return b"ERROR\r\n".to_vec(),
        }
        let mut text = Vec::new();
        for (name, value) in lines {
            text.extend_from_slice(format!("STAT {name} {value}\r\n").as_bytes());
        }
        text.extend_from_slice(b"END\r\n");
        text
    }
}

/// Whether a request runs on keys (in a batch to the shards).
fn is_on_keys(request: &Request) -> bool {
    matches!(
        request,
        Request::Get { .. }
            | Request::Store { .. }
            | Request::Concat { .. }
            | Request::TooLarge { .. }
            | Request::Delete { .. }
            | Request::Arith { .. }
            | Request::Touch { .. }
    )
}

/// A request's key commands and bytes, for sizing batches.
fn weight(request: &Request) -> (usize, usize) {
    match request {
        Request::Get { keys, .. } => (keys.len(), keys.iter().map(Bytes::len).sum()),
        Request::Store { key, value, .. } | Request::Concat { key, value, .. } => {
            (1, key.len() + value.len())
        }
        _ => (1, 64),
    }
}

/// Whether `cmd` only reads (a `get` without touch), so asking again is harmless.
fn is_read(cmd: &KeyCommand) -> bool {
    matches!(
        cmd,
        KeyCommand::Memcache(MemcacheCommand::Get(Get { touch: None, .. }))
    )
}

/// Where a batch answered in place writes: straight into the connection's output while it
/// holds less than [`WRITE_AT`], then (the rest of the batch, in order) into pieces written out
/// after the tables are released, so a connection holds no more than on the message path:
/// values past that point are referenced, not copied.
struct Sink<'a> {
    out: &'a mut BytesMut,
    spill: Vec<Bytes>,
}

impl Sink<'_> {
    /// The output, while writes still go straight to it.
    fn direct(&mut self) -> Option<&mut BytesMut> {
        (self.spill.is_empty() && self.out.len() < WRITE_AT).then_some(&mut *self.out)
    }

    fn put(&mut self, bytes: &'static [u8]) {
        match self.direct() {
            Some(out) => out.extend_from_slice(bytes),
            None => self.spill.push(Bytes::from_static(bytes)),
        }
    }

    /// What `write` writes, in order.
    fn put_with(&mut self, write: impl FnOnce(&mut BytesMut)) {
        match self.direct() {
            Some(out) => write(out),
            None => {
                let mut piece = BytesMut::new();
                write(&mut piece);
                self.spill.push(piece.freeze());
            }
        }
    }

    fn put_value(&mut self, value: &Bytes) {
        match self.direct() {
            Some(out) => out.extend_from_slice(value),
            None => self.spill.push(value.clone()),
        }
    }
}

/// Writes a retrieved item as `VALUE key flags bytes [cas]` and its data, if it holds a
/// string; whether it did (a hit).
fn write_item(sink: &mut Sink<'_>, key: &[u8], item: Item<'_>, cas: bool) -> bool {
    let Item {
        value: Value::Str(value),
        flags,
        cas: unique,
    } = item
    else {
        return false;
    };
    sink.put_with(|out| write_value_line(out, key, flags, value.len(), cas.then_some(unique)));
    sink.put_value(value);
    sink.put(b"\r\n");
    true
}

/// The key of a one-key request; `None` for a retrieval or a request not on keys.
fn key_of(request: &Request) -> Option<&Bytes> {
    match request {
        Request::Store { key, .. }
        | Request::Concat { key, .. }
        | Request::TooLarge { key, .. }
        | Request::Delete { key, .. }
        | Request::Arith { key, .. }
        | Request::Touch { key, .. } => Some(key),
        _ => None,
    }
}

/// A one-key request as the unit that runs it, whether its reply is suppressed, and the
/// counters its reply moves; `None` for a retrieval or a request not on keys.
fn unit_of(request: Request, max_item_size: usize) -> Option<(KeyCommand, bool, Count)> {
    Some(match request {
        Request::Store {
            mode,
            key,
            flags,
            exptime,
            value,
            noreply,
        } => {
            let count = match mode {
                StoreMode::Cas(_) => Count::Cas,
                _ => Count::Set,
            };
            let unit = Storage {
                mode,
                key,
                flags,
                exptime,
                value,
            };
            (unit.into(), noreply, count)
        }
        Request::Concat {
            key,
            value,
            prepend,
            noreply,
        } => {
            let unit = Concat {
                key,
                value,
                prepend,
                max_item_size,
            };
            (unit.into(), noreply, Count::Set)
        }
        Request::TooLarge { key, set, noreply } => {
            (TooLarge { key, set }.into(), noreply, Count::Nothing)
        }
        Request::Delete { key, noreply } => (Delete { key }.into(), noreply, Count::Delete),
        Request::Arith {
            key,
            incr,
            delta,
            noreply,
        } => {
            let count = if incr { Count::Incr } else { Count::Decr };
            (Arith { key, incr, delta }.into(), noreply, count)
        }
        Request::Touch {
            key,
            exptime,
            noreply,
        } => (Touch { key, exptime }.into(), noreply, Count::Touch),
        _ => return None,
    })
}

/// A failure of the cache itself as memcached's clients get it: `ERR ...` as
/// `SERVER_ERROR ...` (the units' own replies pass unchanged).
fn as_server_error(reply: Frame) -> Frame {
    match reply {
        Frame::Error(text) if text.starts_with("ERR ") => {
            Frame::Error(server_error_line(&text[4..]))
        }
        other => other,
    }
}

/// Writes one retrieval reply: a hit's `VALUE` line and data (nothing for a miss), counted.
fn write_value(
    out: &mut BytesMut,
    key: &[u8],
    reply: &Frame,
    cas: bool,
    touch: bool,
    counters: &Counters,
) {
    let (cmd, hits, misses) = if touch {
        (
            &counters.cmd_touch,
            &counters.touch_hits,
            &counters.touch_misses,
        )
    } else {
        (&counters.cmd_get, &counters.get_hits, &counters.get_misses)
    };
    bump(cmd);
    let Frame::Array(parts) = reply else {
        bump(misses);
        return;
    };
    let [
        Frame::Bulk(value),
        Frame::Integer(flags),
        Frame::Integer(unique),
    ] = parts.as_slice()
    else {
        return;
    };
    bump(hits);
    let unique = u64::try_from(*unique).unwrap_or_default();
    write_value_line(out, key, *flags, value.len(), cas.then_some(unique));
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Writes a hit's `VALUE key flags bytes [cas]` line, formatted straight into the output: no
/// string per hit.
fn write_value_line(
    out: &mut BytesMut,
    key: &[u8],
    flags: impl std::fmt::Display,
    len: usize,
    cas: Option<u64>,
) {
    out.extend_from_slice(b"VALUE ");
    out.extend_from_slice(key);
    let _ = match cas {
        Some(unique) => write!(out, " {flags} {len} {unique}\r\n"),
        None => write!(out, " {flags} {len}\r\n"),
    };
}

/// Writes a one-line reply.
fn write_line(out: &mut BytesMut, reply: &Frame) {
    match reply {
        Frame::Simple(text) | Frame::Error(text) => {
            out.extend_from_slice(text.as_bytes());
        }
        other => {
            tracing::warn!(reply = ?other, "a memcached unit answered an unexpected frame");
            out.extend_from_slice(b"SERVER_ERROR internal error");
        }
    }
    out.put_slice(b"\r\n");
}

/// Moves the counters a one-key command's reply tells of, as memcached counts them.
fn count_reply(counters: &Counters, count: Count, reply: &Frame) {
    let text = match reply {
        Frame::Simple(text) => text.as_str(),
        _ => "",
    };
    let (hit, miss) = match count {
        Count::Set => {
            bump(&counters.cmd_set);
            return;
        }
        Count::Cas => {
            bump(&counters.cmd_set);
            match text {
                "STORED" => bump(&counters.cas_hits),
                "EXISTS" => bump(&counters.cas_badval),
                "NOT_FOUND" => bump(&counters.cas_misses),
                _ => {}
            }
            return;
        }
        Count::Delete => (&counters.delete_hits, &counters.delete_misses),
        Count::Incr => (&counters.incr_hits, &counters.incr_misses),
        Count::Decr => (&counters.decr_hits, &counters.decr_misses),
        Count::Touch => {
            bump(&counters.cmd_touch);
            (&counters.touch_hits, &counters.touch_misses)
        }
        Count::Nothing => return,
    };
    match text {
        "NOT_FOUND" => bump(miss),
        "" => {}
        _ => bump(hit),
    }
}

/// The line memcached's clients get for a failure of the cache itself.
fn server_error(err: &CacheError) -> String {
    match err {
        CacheError::Refused(ShardError::TooLarge) => OUT_OF_MEMORY.into(),
        CacheError::Unavailable(err) => {
            server_error_line(&format!("cache shard unavailable: {err}"))
        }
        CacheError::Refused(refused) => {
            let text = refused.to_string();
            server_error_line(text.strip_prefix("ERR ").unwrap_or(&text))
        }
    }
}

/// `SERVER_ERROR cause`, on one line whatever the cause's text holds.
fn server_error_line(cause: &str) -> String {
    format!("SERVER_ERROR {cause}").replace(['\r', '\n'], " ")
}

fn not_through_text(what: &str) -> String {
    format!("SERVER_ERROR {what} is not supported on a read-through cache")
}

fn not_through(what: &str) -> Frame {
    Frame::Error(not_through_text(what))
}

fn line_bytes(text: &str) -> Vec<u8> {
    let mut bytes = text.as_bytes().to_vec();
    bytes.extend_from_slice(b"\r\n");
    bytes
}

/// What a command gets if its batch came back short of replies (a bug, answered rather
/// than panicking the connection).
fn missing_reply() -> Frame {
    Frame::Error("SERVER_ERROR internal error: no reply for this command".into())
}
