//! The RESP2 server: serves each connection the listener shell admits
//! (`troupe_runtime::listener`), decodes pipelined frames, runs each command
//! where it belongs and writes the replies in order
//!
//! Per connection: read into a buffer, decode every complete frame, answer
//! each in order into one output buffer, and write it after the batch. Runs
//! of commands on keys run on the shards' tables in place when every shard is
//! in this process and plain, else go to the shards as one message per shard
//! ([`CacheClient::run`]); commands on every shard and on the connection run
//! between them, in order. A protocol error is answered with `-ERR Protocol
//! error: ...` and the connection is closed, as Redis does.

use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use troupe_runtime::listener::{
    Connection as ListenerConnection, ConnectionLimit, Drain, ListenerStats,
};

use crate::client::{CacheClient, CacheError};
use crate::cmd::keyspace::KeyspaceCommand;
use crate::cmd::strings::{SetExpiry, StringCommand};
use crate::cmd::{
    CROSSSLOT, ClientCommand, Combine, Command, CommandCommand, CommandError, ConfigCommand,
    ConnCommand, KeyCommand, Now, ReadThrough, bulk_or_null, ok, unknown_command_error,
};
use crate::resp::{Frame, Limits, Parse, ParseError, Requests, Resume};
use crate::shard::{BATCH_REFUSED, SetTtl, ShardError};
use crate::table::LocalTables;

/// The commands the front end answers, for `COMMAND COUNT`
const COMMAND_COUNT: i64 = 78;

/// What a command in a batch of commands on keys gets if it is not one (never, by construction).
const NOT_ON_KEYS: &str = "ERR internal: not a command on keys";

/// What a client gets for a command before it has authenticated (Redis's text).
const NOAUTH: &str = "NOAUTH Authentication required.";

/// What a wrong `AUTH` gets (Redis's text).
const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";

/// Everything the connection tasks share.
pub(crate) struct Shared {
    pub(crate) client: CacheClient,
    /// Whether the shards read through a backing store: learnt from their first refusal
    /// of a run; from then on, commands that need the backing store go as typed calls
    pub(crate) through: AtomicBool,
    /// Whether a run was answered without that refusal: the shards are plain (all shards of
    /// a cache are alike), so a batch need not be kept to be sent again
    pub(crate) plain: AtomicBool,
    /// The password clients must give (`requirepass`), if any
    pub(crate) password: Option<Arc<[u8]>>,
    /// How long a client may send nothing before it is closed, in milliseconds (Redis's
    /// `timeout`; 0: never)
    pub(crate) idle_timeout_ms: AtomicU64,
    /// Most request bytes one client may have buffered (`client-query-buffer-limit`)
    pub(crate) query_buffer_limit: AtomicUsize,
    /// Longest bulk string a client may send (`proto-max-bulk-len`)
    pub(crate) max_bulk_len: AtomicUsize,
    /// Longest a client may leave its replies unread, if bounded
    pub(crate) send_timeout: Option<Duration>,
    /// The decoder's other limits
    pub(crate) limits: Limits,
    /// The listener's connection limit (`maxclients`)
    pub(crate) max_connections: ConnectionLimit,
    /// Held by a `CONFIG SET` while it applies
    pub(crate) config_lock: tokio::sync::Mutex<()>,
    pub(crate) port: u16,
    pub(crate) next_id: AtomicU64,
}

impl Shared {
    /// The decoder's limits now.
    fn limits(&self) -> Limits {
        Limits {
            max_bulk_len: self.max_bulk_len.load(Ordering::Relaxed),
            ..self.limits
        }
    }

    /// The idle timeout now.
    fn idle_timeout(&self) -> Option<Duration> {
        match self.idle_timeout_ms.load(Ordering::Relaxed) {
            0 => None,
            ms => Some(Duration::from_millis(ms)),
        }
    }
}

/// What a connection over a limit gets before it is closed, as Redis answers past `maxclients`
pub(crate) const OVER_LIMIT_REFUSAL: &[u8] = b"-ERR max number of clients reached\r\n";

/// Serves one connection the listener shell admitted until the client
/// closes it, or until `drain` fires and the batch at hand is answered
pub(crate) async fn serve_connection(shared: Arc<Shared>, conn: ListenerConnection) {
    let ListenerConnection {
        stream,
        peer,
        drain,
        stats,
    } = conn;
    let id = shared.next_id.fetch_add(1, Ordering::Relaxed) + 1;
    let mut conn = Connection {
        stream,
        shared: &shared,
        id,
        name: None,
        authenticated: shared.password.is_none(),
        stats,
        tables: None,
        needed: Vec::new(),
        homes: Vec::new(),
    };
    if let Err(err) = conn.run(drain).await {
        tracing::debug!(cause = %err, %peer, "connection ended with an error");
    }
}

/// What to do after answering a command
enum After {
    Continue,
    Close,
}

/// A parsed request and its size on the wire (bytes of its arguments).
type Request = (Result<Command, CommandError>, usize);

/// What a request's slot holds once its command was taken out to run.
const TAKEN: Request = (Err(CommandError::Empty), 0);

/// Takes the command out of a batch's slot to run it (a command on keys, by construction of
/// the batch; `None` otherwise, answered as an internal error).
fn take_command(slot: &mut Request) -> Option<Command> {
    std::mem::replace(slot, TAKEN).0.ok()
}

/// Where a command of a batch finds its reply among the batch's key commands.
enum Slot {
    /// One key command
    One(usize),
    /// Several, combined
    Parts(Range<usize>, Combine),
    /// Answered without running (refused)
    Ready(Frame),
}

struct Connection<'a> {
    stream: TcpStream,
    shared: &'a Shared,
    id: u64,
    name: Option<Bytes>,
    /// Whether it may run commands: it gave the password, or none is required
    authenticated: bool,
    stats: ListenerStats,
    /// The shards' tables, while every shard runs in this process (checked again when one
    /// closes)
    tables: Option<LocalTables>,
    /// Which shards a batch touches (kept to spare an allocation per batch)
    needed: Vec<bool>,
    /// The shard of each key of a batch, in order (kept likewise)
    homes: Vec<usize>,
}

impl Connection<'_> {
    async fn run(&mut self, mut drain: Drain) -> std::io::Result<()> {
        let mut input = BytesMut::with_capacity(16 * 1024);
        let mut output = BytesMut::with_capacity(16 * 1024);
        let mut commands = Vec::new();
        let mut requests = Requests::default();
        // where the check of an incomplete frame stopped, so a trickled array is examined
        // once rather than from its start at every read
        let mut resume = Resume::default();
        // one wait for the whole connection: registering a fresh one before every read
        // would take the server-wide signal's lock twice per batch
        let mut draining = drain.is_draining();
        let drained = drain.wait();
        tokio::pin!(drained);
        loop {
            let limits = &self.shared.limits();
            let mut decoded = |parse: Result<Parse<'_>, ParseError>, size| {
                let command = parse
                    .map_err(CommandError::from)
                    .and_then(Command::from_parse);
                commands.push((command, size));
            };
            let protocol_error = if resume.is_resuming() {
                match Frame::check_resuming(&input, limits, &mut resume) {
                    // still incomplete: nothing to decode until more arrives
                    Ok(None) => None,
                    Ok(Some(_)) => requests.decode_each(&mut input, limits, &mut decoded).err(),
                    Err(err) => Some(err),
                }
            } else {
                requests.decode_each(&mut input, limits, &mut decoded).err()
            };
            // what is left is incomplete: note how far its check got
            if protocol_error.is_none() && !resume.is_resuming() && !input.is_empty() {
                let _ = Frame::check_resuming(&input, limits, &mut resume);
            }
            let mut close = matches!(
                self.answer_all(&mut commands, &mut output).await?,
                After::Close
            );
            if let Some(err) = protocol_error
                && !close
            {
                metrics::counter!("troupe_cache_protocol_errors_total").increment(1);
                Frame::Error(format!("ERR {err}")).encode(&mut output);
                close = true;
            }
            if !output.is_empty() {
                self.write(&output).await?;
                output.clear();
            }
            // a burst's peak is not kept for the rest of the connection's life
            shrink(&mut input, &mut output, &mut commands);
            requests.shrink(1024);
            if close || draining {
                let _ = self.stream.shutdown().await;
                return Ok(());
            }
            // what is left unparsed is one incomplete request: past the limit, it never fits
            let query_buffer_limit = self.shared.query_buffer_limit.load(Ordering::Relaxed);
            if input.len() > query_buffer_limit {
                metrics::counter!("troupe_cache_query_buffer_closed_total").increment(1);
                tracing::info!(
                    client = self.id,
                    buffered = input.len(),
                    "closing a client past the query buffer limit"
                );
                let refusal = b"-ERR Protocol error: client query buffer limit exceeded\r\n";
                let _ = self.write(refusal).await;
                let _ = self.stream.shutdown().await;
                return Ok(());
            }
            let room = (query_buffer_limit - input.len()) as u64 + 1;
            let idle_timeout = self.shared.idle_timeout();
            let idle = async {
                match idle_timeout {
                    Some(idle) => tokio::time::sleep(idle).await,
                    None => std::future::pending().await,
                }
            };
            // never more than one byte past the limit in all: parsed first, then judged
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
                // Redis's `timeout`: a client silent that long is closed
                () = idle => {
                    metrics::counter!("troupe_cache_idle_closed_total").increment(1);
                    let _ = self.stream.shutdown().await;
                    return Ok(());
                }
            }
        }
    }

    /// Answers every request of `requests` (emptying it) into `out`, in order: runs of
    /// commands on keys go to the shards as batches (see [`CacheClient::run`]), anything
    /// else one by one between them. Stops at `QUIT`.
    ///
    /// Replies are written out whenever [`WRITE_AT`] bytes of them wait, so a client that
    /// pipelines many large reads and does not read them holds at most that much (and one
    /// batch) in the server, and is not served further until it reads.
    async fn answer_all(
        &mut self,
        requests: &mut Vec<Request>,
        out: &mut BytesMut,
    ) -> std::io::Result<After> {
        // each command stays in its slot until it is run (taken out then): batches are
        // ranges of the list, nothing is moved from list to list
        let mut at = 0;
        while at < requests.len() {
            let end = self.batch_end(requests, at);
            if end > at {
                self.answer_batch(&mut requests[at..end], out).await;
                at = end;
            } else {
                let (parsed, _) = std::mem::replace(&mut requests[at], TAKEN);
                at += 1;
                if let After::Close = self.answer(parsed, out).await {
                    requests.clear();
                    return Ok(After::Close);
                }
            }
            self.write_if_full(out).await?;
        }
        requests.clear();
        Ok(After::Continue)
    }

    /// Where the batch of commands on keys that starts at `at` ends: as many as fit
    /// [`BATCH_MAX_OPS`] and [`BATCH_MAX_BYTES`] (at least one), `at` itself if the request
    /// there is not one (or the client has not authenticated: then every command goes through
    /// `answer`, which checks).
    fn batch_end(&self, requests: &[Request], at: usize) -> usize {
        if !self.authenticated {
            return at;
        }
        let (mut ops, mut bytes) = (0, 0);
        let mut end = at;
        for (parsed, size) in &requests[at..] {
            let parts = match parsed {
                Ok(Command::Key(_)) => 1,
                Ok(Command::Multi(multi)) => multi.parts.len(),
                _ => break,
            };
            let fits = ops + parts <= BATCH_MAX_OPS && bytes + size <= BATCH_MAX_BYTES;
            if end > at && !fits {
                break;
            }
            ops += parts;
            bytes += size;
            end += 1;
        }
        end
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
    /// some, so a slow reader of a large reply is served, a stalled one is not.
    async fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        let written = write_within(&mut self.stream, bytes, self.shared.send_timeout).await;
        if written
            .as_ref()
            .is_err_and(|e| e.kind() == std::io::ErrorKind::TimedOut)
        {
            metrics::counter!("troupe_cache_send_timeout_closed_total").increment(1);
        }
        written
    }

    /// Answers `batch`, commands on keys: every key command of it goes to its shard, one
    /// message per shard, and each command's reply is made from its part's replies. In a
    /// batch of reads, a read whose batch failed in transit (say its shard's answer was over
    /// the remote frame limit) is asked again alone: a read, so asking twice changes nothing.
    async fn answer_batch(&mut self, batch: &mut [Request], out: &mut BytesMut) {
        if self.answer_in_place(batch, out) {
            return;
        }
        let client = &self.shared.client;
        let mut keyed: Vec<KeyCommand> = Vec::with_capacity(batch.len());
        let mut slots = Vec::with_capacity(batch.len());
        for cmd in batch.iter_mut().map(take_command) {
            match cmd {
                Some(Command::Key(cmd)) => {
                    if spans_shards(client, &cmd) {
                        slots.push(Slot::Ready(Frame::Error(CROSSSLOT.into())));
                    } else {
                        slots.push(Slot::One(keyed.len()));
                        keyed.push(cmd);
                    }
                }
                Some(Command::Multi(multi)) => {
                    let start = keyed.len();
                    keyed.extend(multi.parts);
                    slots.push(Slot::Parts(start..keyed.len(), multi.combine));
                }
                _ => slots.push(Slot::Ready(Frame::Error(NOT_ON_KEYS.into()))),
            }
        }
        let replies = self.run_keyed(keyed).await;
        for slot in slots {
            let reply = match slot {
                Slot::One(i) => replies.get(i).cloned().unwrap_or_else(missing_reply),
                Slot::Parts(range, combine) => match replies.get(range) {
                    Some(parts) => combine.replies(parts.to_vec()),
                    None => missing_reply(),
                },
                Slot::Ready(frame) => frame,
            };
            reply.encode(out);
        }
    }

    /// Answers `batch` into `out` on the shards' own tables, in order, holding every table it
    /// touches for the batch, when every shard runs in this process and none reads through:
    /// no message, no reply to wait for (see [`crate::table`]); `batch` is emptied and true
    /// returned. Leaves `batch` as it was, nothing run, and returns false when a shard is
    /// elsewhere, reads through, restarts, or is busy.
    fn answer_in_place(&mut self, batch: &mut [Request], out: &mut BytesMut) -> bool {
        let client = &self.shared.client;
        if !self.tables.as_ref().is_some_and(LocalTables::is_open) {
            self.tables = LocalTables::of(client);
        }
        let Some(tables) = &self.tables else {
            return false;
        };
        // each key's shard, in the order the batch is run below: hashed once
        self.needed.clear();
        self.needed.resize(client.shards().len(), false);
        self.homes.clear();
        for (parsed, _) in batch.iter() {
            match parsed {
                Ok(Command::Key(cmd)) => self.homes.push(client.shard_of(cmd.key())),
                Ok(Command::Multi(multi)) => self
                    .homes
                    .extend(multi.parts.iter().map(|part| client.shard_of(part.key()))),
                _ => {}
            }
        }
        for &shard in &self.homes {
            self.needed[shard] = true;
        }
        let Some(mut locked) = tables.lock(&self.needed) else {
            return false;
        };
        let now = Now::at(troupe_runtime::time::now());
        locked.catch_up(now.at);
        let mut homes = self.homes.iter().copied();
        for cmd in batch.iter_mut().map(take_command) {
            let reply = match cmd {
                Some(Command::Key(cmd)) => {
                    let shard = homes.next().unwrap_or_default();
                    if spans_shards(client, &cmd) {
                        Frame::Error(CROSSSLOT.into())
                    } else {
                        locked.apply_into(shard, cmd, &now, out);
                        continue;
                    }
                }
                Some(Command::Multi(multi)) => {
                    let parts = multi
                        .parts
                        .into_iter()
                        .zip(homes.by_ref())
                        .map(|(part, shard)| locked.apply(shard, part, &now))
                        .collect();
                    multi.combine.replies(parts)
                }
                _ => Frame::Error(NOT_ON_KEYS.into()),
            };
            reply.encode(out);
        }
        true
    }

    /// The replies to `keyed`, in order: as one batch per shard, or on a read-through cache
    /// with the commands that need the backing store as typed calls.
    async fn run_keyed(&self, keyed: Vec<KeyCommand>) -> Vec<Frame> {
        let client = &self.shared.client;
        if self.shared.through.load(Ordering::Relaxed) {
            return self.run_through(keyed).await;
        }
        let plain = self.shared.plain.load(Ordering::Relaxed);
        // A read is asked again alone if its batch was lost in transit, but only from a batch
        // of reads: after a write in the same batch it could see that write.
        let only_reads = keyed.iter().all(is_read);
        // kept to send again: every command until the shards are known plain, then the reads
        let kept: Vec<Option<KeyCommand>> = keyed
            .iter()
            .map(|cmd| (!plain || only_reads).then(|| cmd.clone()))
            .collect();
        let replies = client.run(keyed).await;
        if replies.iter().any(refused_as_batch) {
            // a read-through cache: the shards that refused applied nothing, the others ran
            // their share; those refused go as typed calls, from now on all do
            self.shared.through.store(true, Ordering::Relaxed);
            let mut frames = Vec::with_capacity(replies.len());
            let mut resend = Vec::new();
            for (i, (reply, cmd)) in replies.into_iter().zip(kept).enumerate() {
                if refused_as_batch(&reply)
                    && let Some(cmd) = cmd
                {
                    resend.push((i, cmd));
                    frames.push(missing_reply());
                } else {
                    frames.push(as_frame(reply));
                }
            }
            let (positions, commands): (Vec<usize>, Vec<KeyCommand>) = resend.into_iter().unzip();
            for (i, frame) in positions.into_iter().zip(self.run_through(commands).await) {
                frames[i] = frame;
            }
            return frames;
        }
        // a shard that ran a command a read-through shard refuses is plain
        let ran_backed = kept.iter().zip(&replies).any(|(cmd, reply)| {
            reply.is_ok()
                && cmd
                    .as_ref()
                    .is_some_and(|c| c.read_through() == ReadThrough::Backed)
        });
        if !plain && ran_backed {
            self.shared.plain.store(true, Ordering::Relaxed);
        }
        let mut frames = Vec::with_capacity(replies.len());
        for (kept, reply) in kept.into_iter().zip(replies) {
            frames.push(match (reply, kept) {
                (Ok(frame), _) => frame,
                (Err(CacheError::Unavailable(_)), Some(cmd)) if only_reads => {
                    let again = client.run(vec![cmd]).await;
                    again.into_iter().next().map_or_else(
                        || Frame::Error("ERR cache shard unavailable".into()),
                        as_frame,
                    )
                }
                (Err(err), _) => Frame::Error(err.to_string()),
            });
        }
        frames
    }

    /// The replies to `keyed` on a read-through cache, one command at a time: reads and
    /// writes through the backing store as the shards' typed calls, the rest as runs of
    /// one (which the shards answer from their cached copies, or refuse).
    async fn run_through(&self, keyed: Vec<KeyCommand>) -> Vec<Frame> {
        let mut frames = Vec::with_capacity(keyed.len());
        for cmd in keyed {
            let reply = if cmd.read_through() == ReadThrough::Backed {
                self.through_backing(cmd).await
            } else {
                let mut replies = self.shared.client.run(vec![cmd]).await;
                replies.pop().map(as_frame)
            };
            frames.push(reply.unwrap_or_else(|| Frame::Error("ERR no reply".into())));
        }
        frames
    }

    /// A command a read-through shard serves through its backing store, as its typed call.
    async fn through_backing(&self, cmd: KeyCommand) -> Option<Frame> {
        let client = &self.shared.client;
        let result = match cmd {
            KeyCommand::String(StringCommand::Get(get)) => {
                client.get(get.key).await.map(bulk_or_null)
            }
            KeyCommand::String(StringCommand::MGetPart(part)) => {
                client.get(part.key).await.map(bulk_or_null)
            }
            KeyCommand::String(StringCommand::Set(set)) => {
                let ttl = match set.expiry {
                    SetExpiry::Clear => SetTtl::Clear,
                    SetExpiry::After(d) => SetTtl::After(d),
                    SetExpiry::Keep => SetTtl::Keep,
                    SetExpiry::At(_) => {
                        let what = "SET with EXAT or PXAT".to_string();
                        return Some(Frame::Error(
                            ShardError::ReadThroughUnsupported(what).to_string(),
                        ));
                    }
                };
                let get = set.get;
                client
                    .set_with(set.key, set.value, ttl, set.condition)
                    .await
                    .map(|result| {
                        if get {
                            bulk_or_null(result.old)
                        } else if result.written {
                            ok()
                        } else {
                            Frame::Null
                        }
                    })
            }
            KeyCommand::Keyspace(KeyspaceCommand::Del(del)) => client
                .del([del.key])
                .await
                .map(|n| Frame::Integer(i64::try_from(n).unwrap_or(i64::MAX))),
            other => {
                let what = other.name().to_ascii_uppercase();
                Err(CacheError::Refused(ShardError::ReadThroughUnsupported(
                    what,
                )))
            }
        };
        Some(as_frame(result))
    }

    /// Answer one parsed request that is not a command on keys into `out`.
    async fn answer(&mut self, parsed: Result<Command, CommandError>, out: &mut BytesMut) -> After {
        let reply = match parsed {
            // Redis sends nothing for an empty command.
            Err(CommandError::Empty) => return After::Continue,
            Err(err) => Frame::Error(err.to_string()),
            Ok(Command::Conn(ConnCommand::Quit)) => {
                ok().encode(out);
                return After::Close;
            }
            Ok(Command::Conn(ConnCommand::Auth { user, password })) => {
                self.auth(user.as_deref(), &password)
            }
            Ok(Command::Conn(ConnCommand::Hello(args))) => self.hello(&args),
            Ok(_) if !self.authenticated => Frame::Error(NOAUTH.into()),
            Ok(Command::Conn(cmd)) => self.connection_command(cmd).await,
            Ok(Command::AllShards(cmd)) => cmd.run(&self.shared.client).await,
            Ok(Command::Unknown(name, args)) => Frame::Error(unknown_command_error(&name, &args)),
            // an authenticated client's commands on keys go in runs, never here
            Ok(cmd @ (Command::Key(_) | Command::Multi(_))) => {
                self.answer_batch(&mut [(Ok(cmd), 0)], out).await;
                return After::Continue;
            }
        };
        reply.encode(out);
        After::Continue
    }

    /// A command on the connection or the server's settings.
    async fn connection_command(&mut self, cmd: ConnCommand) -> Frame {
        match cmd {
            ConnCommand::Ping(None) => Frame::Simple("PONG".into()),
            ConnCommand::Ping(Some(msg)) | ConnCommand::Echo(msg) => Frame::Bulk(msg),
            ConnCommand::Info(_) => match self.info().await {
                Ok(text) => Frame::Bulk(text.into()),
                Err(err) => Frame::Error(err.to_string()),
            },
            ConnCommand::Quit | ConnCommand::Select(0) => ok(),
            ConnCommand::Select(_) => Frame::Error("ERR DB index is out of range".into()),
            ConnCommand::Client(sub) => self.client_command(sub),
            ConnCommand::Hello(args) => self.hello(&args),
            ConnCommand::Auth { user, password } => self.auth(user.as_deref(), &password),
            ConnCommand::Config(ConfigCommand::Get(patterns)) => {
                crate::config::get(self.shared, &patterns).await
            }
            ConnCommand::Config(ConfigCommand::Set(pairs)) => {
                crate::config::set(self.shared, pairs).await
            }
            ConnCommand::Config(ConfigCommand::ResetStat) => ok(),
            ConnCommand::Command(sub) => match sub {
                CommandCommand::Count => Frame::Integer(COMMAND_COUNT),
                CommandCommand::All | CommandCommand::Docs(_) | CommandCommand::Info(_) => {
                    Frame::Array(Vec::new())
                }
                CommandCommand::Other { sub, .. } => unknown_subcommand(sub, "COMMAND"),
            },
        }
    }

    /// `AUTH [user] password`: with `requirepass` set, the `default` user's password
    /// authenticates the connection; as Redis answers otherwise.
    fn auth(&mut self, user: Option<&[u8]>, password: &[u8]) -> Frame {
        let default_user = user.is_none_or(|u| u == b"default");
        match &self.shared.password {
            None if user.is_none() => Frame::Error(
                "ERR AUTH <password> called without any password configured for the default \
                 user. Are you sure your configuration is correct?"
                    .into(),
            ),
            None if default_user => ok(),
            Some(expected) if default_user && same_secret(expected, password) => {
                self.authenticated = true;
                ok()
            }
            _ => {
                metrics::counter!("troupe_cache_auth_failures_total").increment(1);
                Frame::Error(WRONGPASS.into())
            }
        }
    }

    /// `HELLO [protover [AUTH user password] [SETNAME name]]`: RESP2 only; authenticates
    /// with `AUTH` as `AUTH` does, and answers the server's description.
    fn hello(&mut self, args: &[Bytes]) -> Frame {
        let mut rest = args.iter();
        if let Some(version) = rest.next()
            && version.as_ref() != b"2"
        {
            return Frame::Error(
                match std::str::from_utf8(version)
                    .ok()
                    .and_then(|v| v.parse::<i64>().ok())
                {
                    Some(_) => "NOPROTO unsupported protocol version",
                    None => "ERR Protocol version is not an integer or out of range",
                }
                .into(),
            );
        }
        let mut name = None;
        while let Some(option) = rest.next() {
            match option.to_ascii_lowercase().as_slice() {
                b"auth" => {
                    let (Some(user), Some(password)) = (rest.next(), rest.next()) else {
                        return Frame::Error("ERR Syntax error in HELLO option 'auth'".into());
                    };
                    if let Frame::Error(refused) = self.auth(Some(user), password) {
                        return Frame::Error(refused);
                    }
                }
                b"setname" => match rest.next() {
                    Some(n) => name = Some(n.clone()),
                    None => {
                        return Frame::Error("ERR Syntax error in HELLO option 'setname'".into());
                    }
                },
                _ => {
                    let text = String::from_utf8_lossy(option);
                    return Frame::Error(format!("ERR Syntax error in HELLO option '{text}'"));
                }
            }
        }
        if !self.authenticated {
            return Frame::Error(
                "NOAUTH HELLO must be called with the client already authenticated, otherwise \
                 the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the \
                 client and select the RESP protocol version at the same time"
                    .into(),
            );
        }
        if let Some(name) = name {
            self.name = (!name.is_empty()).then_some(name);
        }
        let field = |s: &str| Frame::Bulk(Bytes::copy_from_slice(s.as_bytes()));
        Frame::Array(vec![
            field("server"),
            field("redis"),
            field("version"),
            field("7.0.0"),
            field("proto"),
            Frame::Integer(2),
            field("id"),
            Frame::Integer(i64::try_from(self.id).unwrap_or(i64::MAX)),
            field("mode"),
            field("standalone"),
            field("role"),
            field("master"),
            field("modules"),
            Frame::Array(Vec::new()),
        ])
    }

    fn client_command(&mut self, sub: ClientCommand) -> Frame {
        match sub {
            ClientCommand::SetName(name) => {
                self.name = (!name.is_empty()).then_some(name);
                ok()
            }
            ClientCommand::SetInfo { .. } => ok(),
            ClientCommand::GetName => bulk_or_null(self.name.clone()),
            ClientCommand::Id => Frame::Integer(i64::try_from(self.id).unwrap_or(i64::MAX)),
            ClientCommand::Other { sub, .. } => unknown_subcommand(sub, "CLIENT"),
        }
    }

    async fn info(&self) -> Result<String, CacheError> {
        let stats = self.shared.client.stats().await?;
        let connected = self.stats.open();
        Ok(format!(
            "# Server\r\n\
             redis_version:7.0.0\r\n\
             redis_mode:standalone\r\n\
             troupe_cache:1\r\n\
             tcp_port:{port}\r\n\
             \r\n\
             # Clients\r\n\
             connected_clients:{connected}\r\n\
             maxclients:{max}\r\n\
             \r\n\
             # Memory\r\n\
             used_memory_dataset:{bytes}\r\n\
             \r\n\
             # Stats\r\n\
             keyspace_hits:{hits}\r\n\
             keyspace_misses:{misses}\r\n\
             evicted_keys:{evictions}\r\n\
             expired_keys:{expirations}\r\n\
             \r\n\
             # Keyspace\r\n\
             db0:keys={keys},expires=0,avg_ttl=0\r\n",
            port = self.shared.port,
            max = self.shared.max_connections.get(),
            bytes = stats.bytes,
            hits = stats.hits,
            misses = stats.misses,
            evictions = stats.evictions,
            expirations = stats.expirations,
            keys = stats.keys,
        ))
    }
}

/// Replies waiting to be written, at most, before the next command is run (beyond it by one
/// command's or one batch's replies).
pub(crate) const WRITE_AT: usize = 1 << 20;

/// Key commands in one batch, at most: a shard's turn stays short, and its answer small.
pub(crate) const BATCH_MAX_OPS: usize = 64;

/// Bytes of arguments in one batch, at most (a batch always takes its first command): the
/// message to a remote shard stays far below the frame limit.
pub(crate) const BATCH_MAX_BYTES: usize = 1 << 20;

/// Writes `bytes` to a client, failing with `TimedOut` if it takes none of them for `limit`
/// (`None`: no limit); the deadline starts again whenever it reads some, so a slow reader of a
/// large reply is served, a stalled one is not. Shared by the RESP and memcached front ends.
///
/// # Cancel safety
///
/// Not cancel safe: part of `bytes` may have been written.
pub(crate) async fn write_within(
    stream: &mut TcpStream,
    mut bytes: &[u8],
    limit: Option<Duration>,
) -> std::io::Result<()> {
    let Some(limit) = limit else {
        return stream.write_all(bytes).await;
    };
    // what the socket takes at once needs no timer: the usual case, a reply batch that fits
    // the send buffer
    match stream.try_write(bytes) {
        Ok(n) => bytes = &bytes[n..],
        Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {}
        Err(err) => return Err(err),
    }
    while !bytes.is_empty() {
        match tokio::time::timeout(limit, stream.write(bytes)).await {
            Ok(Ok(0)) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(Ok(n)) => bytes = &bytes[n..],
            Ok(Err(err)) => return Err(err),
            Err(_) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the client read none of its replies for the send timeout",
                ));
            }
        }
    }
    Ok(())
}

/// Capacity a connection's buffers keep between bursts; past it, an emptied buffer is given
/// back, so a connection that once pipelined megabytes does not hold them while it idles.
const KEEP_CAPACITY: usize = 64 * 1024;

/// Gives back the capacity of a connection's emptied buffers past [`KEEP_CAPACITY`] (the
/// input only when nothing of a request waits in it).
pub(crate) fn shrink<T>(input: &mut BytesMut, output: &mut BytesMut, pending: &mut Vec<T>) {
    if input.is_empty() && input.capacity() > KEEP_CAPACITY {
        *input = BytesMut::with_capacity(16 * 1024);
    }
    if output.is_empty() && output.capacity() > KEEP_CAPACITY {
        *output = BytesMut::with_capacity(16 * 1024);
    }
    if pending.is_empty() && pending.capacity() > 1024 {
        *pending = Vec::new();
    }
}

/// Whether `cmd` touches keys of more than one shard (refused with `CROSSSLOT`).
fn spans_shards(client: &CacheClient, cmd: &KeyCommand) -> bool {
    let key = cmd.key();
    let mut home = None;
    let mut spans = false;
    cmd.for_each_key(&mut |other| {
        if other != key {
            let home = *home.get_or_insert_with(|| client.shard_of(key));
            spans |= client.shard_of(other) != home;
        }
    });
    spans
}

/// Whether `cmd` only reads, so asking again is harmless.
fn is_read(cmd: &KeyCommand) -> bool {
    matches!(
        cmd,
        KeyCommand::String(StringCommand::Get(_) | StringCommand::MGetPart(_))
    )
}

/// What a command gets if its batch came back short of replies (a bug, answered rather
/// than panicking the connection).
fn missing_reply() -> Frame {
    Frame::Error("ERR internal error: no reply for this command".into())
}

/// A reply, or the error's text as one.
fn as_frame(reply: Result<Frame, CacheError>) -> Frame {
    reply.unwrap_or_else(|err| Frame::Error(err.to_string()))
}

/// Whether a batch's reply is the refusal a read-through shard gives a run that needs its
/// backing store.
fn refused_as_batch(reply: &Result<Frame, CacheError>) -> bool {
    matches!(
        reply,
        Err(CacheError::Refused(ShardError::ReadThroughUnsupported(what))) if what == BATCH_REFUSED
    )
}

/// Whether `given` is the secret `expected`, in time that does not depend on where they
/// first differ (only on their lengths).
fn same_secret(expected: &[u8], given: &[u8]) -> bool {
    expected.len() == given.len()
        && expected
            .iter()
            .zip(given)
            .fold(0u8, |diff, (a, b)| diff | (a ^ b))
            == 0
}

fn unknown_subcommand(sub: String, cmd: &'static str) -> Frame {
    Frame::Error(CommandError::UnknownSubcommand { sub, cmd }.to_string())
}
