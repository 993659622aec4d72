//! The RESP2 server: serves each connection the listener shell admits
//! (`troupe_runtime::listener`), decodes pipelined frames, runs
//! each command through the [`CacheClient`] and writes the replies in order
//!
//! Per connection: read into a buffer, decode every complete frame, answer
//! each in order into one output buffer, and write it after the batch. A
//! protocol error is answered with `-ERR Protocol error: ...` and the
//! connection is closed, as Redis does.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use troupe_runtime::listener::{Connection as ListenerConnection, Drain, ListenerStats};

use crate::client::{CacheClient, CacheError};
use crate::cmd::{
    ClientCommand, Command, CommandCommand, CommandError, Set, SetExpiry, unknown_command_error,
};
use crate::resp::{Frame, Limits, Resume};
use crate::shard::{BATCH_REFUSED, KeyTtl, OpOutcome, SetTtl, ShardError, ShardOp};

/// The commands the front end answers, for `COMMAND COUNT`
const COMMAND_COUNT: i64 = 28;

/// What a client gets for a command before it has authenticated (Redis's text).
const NOAUTH: &str = "NOAUTH Authentication required.";

/// What a wrong `AUTH` gets (Redis's text).
const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";

/// Everything the connection tasks share.
pub(crate) struct Shared {
    pub(crate) client: CacheClient,
    /// Whether runs of pipelined single-key commands go to the shards as one batch each;
    /// turned off for good when the shards refuse batches (a read-through cache)
    pub(crate) batching: std::sync::atomic::AtomicBool,
    /// The password clients must give (`requirepass`), if any
    pub(crate) password: Option<Arc<[u8]>>,
    /// How long a client may send nothing before it is closed (Redis's `timeout`), if ever
    pub(crate) idle_timeout: Option<std::time::Duration>,
    /// Most request bytes one client may have buffered (`client-query-buffer-limit`)
    pub(crate) query_buffer_limit: usize,
    /// Longest a client may leave its replies unread, if bounded
    pub(crate) send_timeout: Option<std::time::Duration>,
    pub(crate) limits: Limits,
    pub(crate) max_connections: usize,
    pub(crate) port: u16,
    pub(crate) next_id: AtomicU64,
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

struct Connection<'a> {
    stream: TcpStream,
    shared: &'a Shared,
    id: u64,
    name: Option<Bytes>,
    /// Whether it may run commands: it gave the password, or none is required
    authenticated: bool,
    stats: ListenerStats,
}

impl Connection<'_> {
    async fn run(&mut self, mut drain: Drain) -> std::io::Result<()> {
        let mut input = BytesMut::with_capacity(16 * 1024);
        let mut output = BytesMut::with_capacity(16 * 1024);
        let mut commands = Vec::new();
        let mut frames = Vec::new();
        // where the check of an incomplete frame stopped, so a trickled array is examined
        // once rather than from its start at every read
        let mut resume = Resume::default();
        loop {
            let limits = &self.shared.limits;
            let protocol_error = if resume.is_resuming() {
                match Frame::check_resuming(&input, limits, &mut resume) {
                    // still incomplete: nothing to decode until more arrives
                    Ok(None) => None,
                    Ok(Some(_)) => Frame::decode_all(&mut input, limits, &mut frames).err(),
                    Err(err) => Some(err),
                }
            } else {
                Frame::decode_all(&mut input, limits, &mut frames).err()
            };
            // what is left is incomplete: note how far its check got
            if protocol_error.is_none() && !resume.is_resuming() && !input.is_empty() {
                let _ = Frame::check_resuming(&input, limits, &mut resume);
            }
            commands.extend(frames.drain(..).map(Command::from_frame));
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
            if close || drain.is_draining() {
                let _ = self.stream.shutdown().await;
                return Ok(());
            }
            // what is left unparsed is one incomplete request: past the limit, it never fits
            if input.len() > self.shared.query_buffer_limit {
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
            let room = (self.shared.query_buffer_limit - input.len()) as u64 + 1;
            let idle = async {
                match self.shared.idle_timeout {
                    Some(idle) => tokio::time::sleep(idle).await,
                    None => std::future::pending().await,
                }
            };
            // never more than one byte past the limit in all: parsed first, then judged
            let mut limited = (&mut self.stream).take(room);
            tokio::select! {
                read = limited.read_buf(&mut input) => {
                    if read? == 0 {
                        return Ok(());
                    }
                }
                // Draining: answer what was read, then close (above).
                () = drain.wait() => {}
                // Redis's `timeout`: a client silent that long is closed
                () = idle => {
                    metrics::counter!("troupe_cache_idle_closed_total").increment(1);
                    let _ = self.stream.shutdown().await;
                    return Ok(());
                }
            }
        }
    }

    /// Answers every command of `commands` (emptying it) into `out`, in order: runs of
    /// single-key commands go to the shards as one batch per shard (see
    /// [`CacheClient::pipeline`]), anything else one by one between them. Stops at `QUIT`.
    ///
    /// Replies are written out whenever [`WRITE_AT`] bytes of them wait, so a client that
    /// pipelines many large reads and does not read them holds at most that much (and one
    /// batch) in the server, and is not served further until it reads.
    async fn answer_all(
        &mut self,
        commands: &mut Vec<Result<Command, CommandError>>,
        out: &mut BytesMut,
    ) -> std::io::Result<After> {
        let mut run: Vec<(Command, ShardOp)> = Vec::new();
        for parsed in commands.drain(..) {
            let parsed = match parsed {
                // before authenticating, every command goes through `answer`, which checks
                Ok(cmd) if !self.authenticated => Ok(cmd),
                Ok(cmd) => match batch_op(&cmd) {
                    Some(op) => {
                        run.push((cmd, op));
                        continue;
                    }
                    None => Ok(cmd),
                },
                Err(err) => Err(err),
            };
            self.answer_run(&mut run, out).await?;
            if let After::Close = self.answer(parsed, out).await {
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
    /// some, so a slow reader of a large reply is served, a stalled one is not.
    async fn write(&mut self, mut bytes: &[u8]) -> std::io::Result<()> {
        let Some(limit) = self.shared.send_timeout else {
            return self.stream.write_all(bytes).await;
        };
        while !bytes.is_empty() {
            match tokio::time::timeout(limit, self.stream.write(bytes)).await {
                Ok(Ok(0)) => return Err(std::io::ErrorKind::WriteZero.into()),
                Ok(Ok(n)) => bytes = &bytes[n..],
                Ok(Err(err)) => return Err(err),
                Err(_) => {
                    metrics::counter!("troupe_cache_send_timeout_closed_total").increment(1);
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "the client read none of its replies for the send timeout",
                    ));
                }
            }
        }
        Ok(())
    }

    /// Answers a run of batchable commands (emptying it): one batch per shard when there
    /// are several and the shards take batches, else one by one.
    async fn answer_run(
        &mut self,
        run: &mut Vec<(Command, ShardOp)>,
        out: &mut BytesMut,
    ) -> std::io::Result<()> {
        let mut start = 0;
        while start < run.len() {
            let end = batch_end(run, start);
            self.answer_batch(&run[start..end], out).await;
            self.write_if_full(out).await?;
            start = end;
        }
        run.clear();
        Ok(())
    }

    /// Answers `batch` (at most [`BATCH_MAX_OPS`] commands): one message per shard when it
    /// has several commands and the shards take batches, else one by one. A `GET` whose
    /// batch failed in transit (say its shard's answer was over the remote frame limit) is
    /// asked again alone: a read, so asking twice changes nothing.
    async fn answer_batch(&mut self, batch: &[(Command, ShardOp)], out: &mut BytesMut) {
        if batch.len() > 1 && self.shared.batching.load(Ordering::Relaxed) {
            let ops = batch.iter().map(|(_, op)| op.clone()).collect();
            let outcomes = self.shared.client.pipeline(ops).await;
            if !outcomes.iter().all(refused_as_batch) {
                for ((cmd, _), outcome) in batch.iter().zip(outcomes) {
                    let reply = match (cmd, outcome) {
                        (Command::Get(_), Err(CacheError::Unavailable(_))) => {
                            self.execute(cmd.clone()).await
                        }
                        (cmd, outcome) => reply_to(cmd, outcome),
                    };
                    reply.encode(out);
                }
                return;
            }
            // a read-through cache: nothing was applied; one by one from now on
            self.shared.batching.store(false, Ordering::Relaxed);
        }
        for (cmd, _) in batch {
            self.execute(cmd.clone()).await.encode(out);
        }
    }

    /// Answer one parsed request into `out`.
    async fn answer(&mut self, parsed: Result<Command, CommandError>, out: &mut BytesMut) -> After {
        let reply = match parsed {
            // Redis sends nothing for an empty command.
            Err(CommandError::Empty) => return After::Continue,
            Err(err) => Frame::Error(err.to_string()),
            Ok(Command::Quit) => {
                Frame::Simple("OK".into()).encode(out);
                return After::Close;
            }
            Ok(Command::Auth { user, password }) => self.auth(user.as_deref(), &password),
            Ok(Command::Hello(args)) => self.hello(&args),
            Ok(_) if !self.authenticated => Frame::Error(NOAUTH.into()),
            Ok(cmd) => self.execute(cmd).await,
        };
        reply.encode(out);
        After::Continue
    }

    async fn execute(&mut self, cmd: Command) -> Frame {
        match self.try_execute(cmd).await {
            Ok(frame) => frame,
            Err(err) => Frame::Error(err.to_string()),
        }
    }

    async fn try_execute(&mut self, cmd: Command) -> Result<Frame, CacheError> {
        let client = &self.shared.client;
        let frame = match cmd {
            Command::Ping(None) => Frame::Simple("PONG".into()),
            Command::Ping(Some(msg)) | Command::Echo(msg) => Frame::Bulk(msg),
            Command::Get(key) => bulk_or_null(client.get(key).await?),
            Command::Set(set) => self.set(set).await?,
            Command::SetEx { key, ttl, value } => {
                client
                    .set_with(key, value, SetTtl::After(ttl), None)
                    .await?;
                ok()
            }
            Command::Del(keys) => count(client.del(keys).await?),
            Command::Exists(keys) => count(client.exists(keys).await?),
            Command::Expire {
                key,
                millis,
                options,
            } => Frame::Integer(i64::from(client.expire(key, millis, options).await?)),
            Command::Ttl(key) => ttl(client.ttl(key).await?, 1000),
            Command::PTtl(key) => ttl(client.ttl(key).await?, 1),
            Command::Persist(key) => Frame::Integer(i64::from(client.persist(key).await?)),
            Command::IncrBy { key, by } => Frame::Integer(client.incr_by(key, by).await?),
            Command::MGet(keys) => Frame::Array(
                client
                    .mget(keys)
                    .await?
                    .into_iter()
                    .map(bulk_or_null)
                    .collect(),
            ),
            Command::MSet(pairs) => {
                client.mset(pairs).await?;
                ok()
            }
            Command::DbSize => count(client.dbsize().await?),
            Command::FlushAll => {
                client.flushall().await?;
                ok()
            }
            Command::Info(_) => Frame::Bulk(self.info().await?.into()),
            Command::Quit => ok(),
            Command::Select(0) => ok(),
            Command::Select(_) => Frame::Error("ERR DB index is out of range".into()),
            Command::Client(sub) => self.client_command(sub),
            Command::Hello(args) => self.hello(&args),
            Command::Auth { user, password } => self.auth(user.as_deref(), &password),
            Command::ConfigGet(patterns) => config_get(self.shared, &patterns),
            Command::Command(sub) => match sub {
                CommandCommand::Count => Frame::Integer(COMMAND_COUNT),
                CommandCommand::All | CommandCommand::Docs(_) | CommandCommand::Info(_) => {
                    Frame::Array(Vec::new())
                }
                CommandCommand::Other { sub, .. } => unknown_subcommand(sub, "COMMAND"),
            },
            Command::Unknown(name, args) => Frame::Error(unknown_command_error(&name, &args)),
        };
        Ok(frame)
    }

    async fn set(&self, set: Set) -> Result<Frame, CacheError> {
        let Set {
            key,
            value,
            expiry,
            condition,
            get,
        } = set;
        let ttl = match expiry {
            None => SetTtl::Clear,
            Some(SetExpiry::After(d)) => SetTtl::After(d),
            Some(SetExpiry::KeepTtl) => SetTtl::Keep,
        };
        let result = self
            .shared
            .client
            .set_with(key, value, ttl, condition)
            .await?;
        Ok(if get {
            bulk_or_null(result.old)
        } else if result.written {
            ok()
        } else {
            Frame::Null
        })
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
            max = self.shared.max_connections,
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
const WRITE_AT: usize = 1 << 20;

/// Commands in one batch, at most: a shard's turn stays short, and its answer small.
const BATCH_MAX_OPS: usize = 64;

/// Bytes of keys and values written by one batch, at most (a batch always takes its first
/// command): the message to a remote shard stays far below the frame limit.
const BATCH_MAX_BYTES: usize = 1 << 20;

/// Where the batch starting at `start` ends: at most [`BATCH_MAX_OPS`] commands and
/// [`BATCH_MAX_BYTES`] of keys and values, and at least one command.
fn batch_end(run: &[(Command, ShardOp)], start: usize) -> usize {
    let mut bytes = 0;
    let mut end = start;
    while end < run.len() && end - start < BATCH_MAX_OPS {
        let size = match &run[end].1 {
            ShardOp::Set { key, value, .. } => key.len() + value.len(),
            ShardOp::Get(key) | ShardOp::IncrBy { key, .. } => key.len(),
        };
        if end > start && bytes + size > BATCH_MAX_BYTES {
            break;
        }
        bytes += size;
        end += 1;
    }
    end
}

/// The batch operation of `cmd`, if it is a single-key command a shard can apply in a batch.
fn batch_op(cmd: &Command) -> Option<ShardOp> {
    Some(match cmd {
        Command::Get(key) => ShardOp::Get(key.clone()),
        Command::Set(set) => ShardOp::Set {
            key: set.key.clone(),
            value: set.value.clone(),
            ttl: match set.expiry {
                None => SetTtl::Clear,
                Some(SetExpiry::After(d)) => SetTtl::After(d),
                Some(SetExpiry::KeepTtl) => SetTtl::Keep,
            },
            condition: set.condition,
        },
        Command::SetEx { key, ttl, value } => ShardOp::Set {
            key: key.clone(),
            value: value.clone(),
            ttl: SetTtl::After(*ttl),
            condition: None,
        },
        Command::IncrBy { key, by } => ShardOp::IncrBy {
            key: key.clone(),
            by: *by,
        },
        _ => return None,
    })
}

/// Whether a batch's outcome is the refusal a read-through shard gives every batch.
fn refused_as_batch(outcome: &Result<OpOutcome, CacheError>) -> bool {
    matches!(
        outcome,
        Err(CacheError::Refused(ShardError::ReadThroughUnsupported(what))) if what == BATCH_REFUSED
    )
}

/// The reply to `cmd` given its batch outcome, as its one-by-one execution would answer.
fn reply_to(cmd: &Command, outcome: Result<OpOutcome, CacheError>) -> Frame {
    match (cmd, outcome) {
        (_, Err(err)) => Frame::Error(err.to_string()),
        (Command::Get(_), Ok(OpOutcome::Value(value))) => bulk_or_null(value),
        (Command::Set(set), Ok(OpOutcome::Set(result))) => {
            if set.get {
                bulk_or_null(result.old)
            } else if result.written {
                ok()
            } else {
                Frame::Null
            }
        }
        (Command::SetEx { .. }, Ok(OpOutcome::Set(_))) => ok(),
        (Command::IncrBy { .. }, Ok(OpOutcome::Integer(n))) => Frame::Integer(n),
        (_, Ok(_)) => Frame::Error("ERR the shard answered another operation".into()),
    }
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

fn ok() -> Frame {
    Frame::Simple("OK".into())
}

fn bulk_or_null(value: Option<Bytes>) -> Frame {
    value.map_or(Frame::Null, Frame::Bulk)
}

fn count(n: u64) -> Frame {
    Frame::Integer(i64::try_from(n).unwrap_or(i64::MAX))
}

fn unknown_subcommand(sub: String, cmd: &'static str) -> Frame {
    Frame::Error(CommandError::UnknownSubcommand { sub, cmd }.to_string())
}

/// `TTL` (unit 1000 ms, rounded as Redis does) or `PTTL` (unit 1 ms).
fn ttl(ttl: KeyTtl, unit_ms: u128) -> Frame {
    match ttl {
        KeyTtl::Missing => Frame::Integer(-2),
        KeyTtl::Persistent => Frame::Integer(-1),
        KeyTtl::Remaining(d) => {
            // Redis rounds TTL to the nearest second: (ms + 500) / 1000.
            let ms = d.as_millis();
            let n = if unit_ms == 1 {
                ms
            } else {
                (ms + unit_ms / 2) / unit_ms
            };
            Frame::Integer(i64::try_from(n).unwrap_or(i64::MAX))
        }
    }
}

/// `CONFIG GET pattern ...`: the client limits this server keeps, by Redis's names, as a flat
/// array of name and value; patterns as Redis matches them (`*`, `?`, case-insensitively).
/// Parameters this server does not have are not listed, as Redis leaves out unknown ones.
fn config_get(shared: &Shared, patterns: &[Bytes]) -> Frame {
    // whole seconds, rounded up: a sub-second timeout is not `0` (never)
    let seconds = |d: Option<std::time::Duration>| {
        d.map_or(0, |d| d.as_secs() + u64::from(d.subsec_nanos() > 0))
            .to_string()
    };
    let known = [
        ("maxclients", shared.max_connections.to_string()),
        ("timeout", seconds(shared.idle_timeout)),
        (
            "client-query-buffer-limit",
            shared.query_buffer_limit.to_string(),
        ),
        ("proto-max-bulk-len", shared.limits.max_bulk_len.to_string()),
    ];
    let mut out = Vec::new();
    for (name, value) in known {
        if patterns.iter().any(|p| glob_matches(p, name.as_bytes())) {
            out.push(Frame::Bulk(Bytes::from_static(name.as_bytes())));
            out.push(Frame::Bulk(Bytes::from(value)));
        }
    }
    Frame::Array(out)
}

/// Whether `name` matches `pattern`, where `*` is any run of bytes and `?` any one byte,
/// ASCII case ignored. Iterative, with one backtrack point: linear in practice, and never
/// worse than the product of the two lengths.
fn glob_matches(pattern: &[u8], name: &[u8]) -> bool {
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, n));
                p += 1;
            }
            Some(&c) if c == b'?' || c.eq_ignore_ascii_case(&name[n]) => {
                p += 1;
                n += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    p = sp + 1;
                    n = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p.min(pattern.len())..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod glob_tests {
    use super::glob_matches;

    #[test]
    fn globs_match_as_redis_config_get_does() {
        for (pattern, name, matches) in [
            ("*", "maxclients", true),
            ("maxclients", "maxclients", true),
            ("MAXCLIENTS", "maxclients", true),
            ("max*", "maxclients", true),
            ("*buffer*", "client-query-buffer-limit", true),
            ("time?ut", "timeout", true),
            ("time?ut", "timeouts", false),
            ("max", "maxclients", false),
            ("*x", "maxclients", false),
            ("", "timeout", false),
            ("**", "", true),
        ] {
            assert_eq!(
                glob_matches(pattern.as_bytes(), name.as_bytes()),
                matches,
                "{pattern} ~ {name}"
            );
        }
    }
}
