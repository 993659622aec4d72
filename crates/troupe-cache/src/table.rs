//! [`ShardTable`]: a shard's entries, shared with the front ends of its own process
//!
//! A [`CacheShard`](crate::CacheShard) keeps its [`Store`] in a table behind a lock and shares
//! the table with its process ([`Ctx::share`](troupe_runtime::Ctx::share)), as an Erlang
//! process owns an ETS table. A [`CacheClient`](crate::CacheClient) on the same node then runs
//! a pipeline's commands on the table in place instead of sending them to the shard and
//! waiting for the reply: that round trip is two task wake-ups, often on two threads, and
//! was most of the difference from Redis and memcached, which look a key up on the thread
//! that read the request (`docs/benchmarks.md`).
//!
//! The shard stays the table's owner: it is made with the shard instance and closed when the
//! instance ends (a crash loses the entries, as before), the shard's messages lock it too, and
//! anything that is not a plain run of commands (read-through reads and writes, `KEYS`,
//! `SCAN`, configuration, fills) is still a message. A run in place never waits on the shard:
//! if the table is busy for longer than [`BUSY_WAIT`] (the shard sweeping a large store, say)
//! the run is sent as a message instead.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use parking_lot::{Mutex, MutexGuard};

use crate::client::CacheClient;
use crate::cmd::{KeyCommand, Now, ReadThrough};
use crate::resp::Frame;
use crate::shard::{BATCH_REFUSED, ShardError};
use crate::store::Store;

/// Longest a run in place waits for a table another thread holds before it goes to the
/// shard as a message (a batch of commands holds it for a few microseconds)
pub(crate) const BUSY_WAIT: Duration = Duration::from_micros(20);

/// A shard instance's entries, locked by whoever uses them
pub(crate) struct ShardTable {
    state: Mutex<Table>,
    /// Cleared when the instance that owns the table ends, or when a command panicked
    /// while running in place (the shard then fails and restarts with a fresh table)
    open: AtomicBool,
    /// Whether the shard reads through to a backing store (then runs refuse what would
    /// need it)
    read_through: bool,
}

/// What the lock guards
pub(crate) struct Table {
    /// The entries
    pub(crate) store: Store,
    /// When a memcached `flush_all <delay>` empties the store
    pub(crate) flush_at: Option<Instant>,
}

impl Table {
    /// Applies a delayed flush that is due at `now`: done before anything reads the store.
    pub(crate) fn catch_up(&mut self, now: Instant) {
        if self.flush_at.is_some_and(|at| at <= now) {
            self.flush_at = None;
            self.store.clear();
        }
    }

    /// `GET key`'s answer from the store: the string, `None` for a miss, `WrongType` for a
    /// key of another type.
    pub(crate) fn get(
        &mut self,
        key: &[u8],
        now: Instant,
    ) -> Result<Option<bytes::Bytes>, ShardError> {
        match self.store.get_string(key, now) {
            None => Ok(None),
            Some(Ok(value)) => Ok(Some(value)),
            Some(Err(_)) => Err(ShardError::WrongType),
        }
    }

    /// Runs `commands` in order, as [`ShardMsg::Run`](crate::ShardMsg::Run) documents: on a
    /// read-through shard a command that needs the backing store refuses the whole run, and
    /// one that would write around it is refused alone.
    pub(crate) fn run(
        &mut self,
        read_through: bool,
        commands: Vec<KeyCommand>,
        now: &Now,
    ) -> Result<Vec<Frame>, ShardError> {
        self.catch_up(now.at);
        let store = &mut self.store;
        if !read_through {
            return Ok(commands
                .into_iter()
                .map(|cmd| cmd.apply(store, now))
                .collect());
        }
        if commands
            .iter()
            .any(|cmd| cmd.read_through() == ReadThrough::Backed)
        {
            return Err(ShardError::ReadThroughUnsupported(
                BATCH_REFUSED.to_string(),
            ));
        }
        Ok(commands
            .into_iter()
            .map(|cmd| match cmd.read_through() {
                ReadThrough::Cached => cmd.apply(store, now),
                ReadThrough::Backed | ReadThrough::Refused => Frame::Error(
                    ShardError::ReadThroughUnsupported(cmd.name().to_ascii_uppercase()).to_string(),
                ),
            })
            .collect())
    }
}

/// How a run in place went
pub(crate) enum InPlace {
    /// Run: the shard's answer
    Ran(Result<Vec<Frame>, ShardError>),
    /// Not run (the table is closed or busy): send the commands to the shard
    Send(Vec<KeyCommand>),
    /// A command panicked: the table is closed, the shard restarts; the panic's text
    Panicked(String),
}

impl ShardTable {
    /// An open table over `store`
    pub(crate) fn new(store: Store, read_through: bool) -> Self {
        Self {
            state: Mutex::new(Table {
                store,
                flush_at: None,
            }),
            open: AtomicBool::new(true),
            read_through,
        }
    }

    /// The table, waiting for it as long as it takes (the shard's own use)
    pub(crate) fn lock(&self) -> MutexGuard<'_, Table> {
        self.state.lock()
    }

    /// Whether the table still serves: false once its instance ended or a run in it panicked
    pub(crate) fn is_open(&self) -> bool {
        self.open.load(Ordering::Acquire)
    }

    /// Ends the table's service: later runs in place go to the shard as messages.
    pub(crate) fn close(&self) {
        self.open.store(false, Ordering::Release);
    }

    /// The table for a use in place: `None` if it is closed, or held by another thread for
    /// longer than [`BUSY_WAIT`], or closed while this waited (its shard has ended).
    fn try_lock(&self) -> Option<MutexGuard<'_, Table>> {
        if !self.is_open() {
            return None;
        }
        let table = self.state.try_lock_for(BUSY_WAIT)?;
        self.is_open().then_some(table)
    }

    /// Runs `f` on a table locked in place; a panic in it closes the table (the store may be
    /// half-changed: nobody uses it again; the shard fails at its next message and its
    /// successor starts empty, as after any crash) and is returned as its text.
    fn guarded<T>(&self, f: impl FnOnce() -> T) -> Result<T, String> {
        std::panic::catch_unwind(AssertUnwindSafe(f)).map_err(|panic| {
            self.close();
            let reason = troupe_runtime::panic_message(&*panic);
            tracing::error!(%reason, "a cache command panicked; the shard will restart");
            reason
        })
    }

    /// Runs `f` on `store`, this table's store locked in place, as [`guarded`](Self::guarded):
    /// an error reply if the table has closed or `f` panics (which closes it).
    fn run_store<T>(&self, store: &mut Store, f: impl FnOnce(&mut Store) -> T) -> Result<T, Frame> {
        if !self.is_open() {
            return Err(Frame::Error(
                "ERR cache shard unavailable: it is restarting".into(),
            ));
        }
        self.guarded(|| f(store))
            .map_err(|reason| Frame::Error(format!("ERR cache shard failed: {reason}")))
    }

    /// Runs `commands` as the shard's own [`ShardMsg::Run`](crate::ShardMsg::Run), waiting
    /// for the table as long as it takes.
    pub(crate) fn run(
        &self,
        commands: Vec<KeyCommand>,
        now: &Now,
    ) -> Result<Vec<Frame>, ShardError> {
        self.lock().run(self.read_through, commands, now)
    }

    /// `GET key` here, now, as the shard would answer [`ShardMsg::Get`](crate::ShardMsg::Get),
    /// unless the table is closed or busy past [`BUSY_WAIT`], or the key is a miss that a
    /// read-through shard reads from its backing store: `None` then, ask the shard.
    pub(crate) fn try_get(
        &self,
        key: &[u8],
        now: Instant,
    ) -> Option<Result<Option<bytes::Bytes>, ShardError>> {
        let mut table = self.try_lock()?;
        table.catch_up(now);
        // a read-through miss is the shard's to count and to fill
        if self.read_through && table.store.peek(key, now).is_none() {
            return None;
        }
        Some(table.get(key, now))
    }

    /// Runs `commands` here, now, as the shard would run them in one
    /// [`ShardMsg::Run`](crate::ShardMsg::Run), unless the table is closed or busy past
    /// [`BUSY_WAIT`].
    pub(crate) fn try_run(&self, commands: Vec<KeyCommand>, now: &Now) -> InPlace {
        let Some(mut table) = self.try_lock() else {
            return InPlace::Send(commands);
        };
        let read_through = self.read_through;
        match self.guarded(|| table.run(read_through, commands, now)) {
            Ok(answer) => InPlace::Ran(answer),
            Err(reason) => InPlace::Panicked(reason),
        }
    }
}

/// The tables of every shard of a cache, when each runs in this process and none reads
/// through a backing store: a front end then answers a whole batch on them in place
pub(crate) struct LocalTables {
    tables: Vec<Arc<ShardTable>>,
}

impl LocalTables {
    /// Every shard's table, in routing order, if all are in this process, open and plain
    pub(crate) fn of(client: &CacheClient) -> Option<Self> {
        let tables = client
            .shards()
            .iter()
            .map(|shard| {
                shard
                    .shared::<ShardTable>()
                    .filter(|t| t.is_open() && !t.read_through)
            })
            .collect::<Option<Vec<_>>>()?;
        Some(Self { tables })
    }

    /// Whether every table still serves (a restarted shard has a new one)
    pub(crate) fn is_open(&self) -> bool {
        self.tables.iter().all(|t| t.is_open())
    }

    /// Locks shard `shard`'s table alone, within [`BUSY_WAIT`], with any delayed flush due at
    /// `now` applied; `None` if it is busy longer or closed. For front ends that promise no
    /// atomicity across keys (memcached's): held for one command, two threads on different
    /// shards never wait on each other.
    pub(crate) fn lock_one(&self, shard: usize, now: Instant) -> Option<LockedOne<'_>> {
        let table = self.tables.get(shard)?;
        let mut guard = table.try_lock()?;
        guard.catch_up(now);
        Some(LockedOne { table, guard })
    }

    /// Locks the tables whose `needed` entry is true, in routing order (so two batches never
    /// wait on each other in a cycle), each within [`BUSY_WAIT`]; `None` if one is busy
    /// longer or closed.
    pub(crate) fn lock(&self, needed: &[bool]) -> Option<Locked<'_>> {
        let mut guards = Vec::with_capacity(self.tables.len());
        for (table, &needed) in self.tables.iter().zip(needed) {
            if !needed {
                guards.push(None);
                continue;
            }
            guards.push(Some(table.try_lock()?));
        }
        Some(Locked {
            tables: &self.tables,
            guards,
        })
    }
}

/// One table of a [`LocalTables`], locked
pub(crate) struct LockedOne<'a> {
    table: &'a ShardTable,
    guard: MutexGuard<'a, Table>,
}

impl LockedOne<'_> {
    /// Runs `f` on the table's store; as [`Locked::with_store`], an error is the reply.
    pub(crate) fn with_store<T>(&mut self, f: impl FnOnce(&mut Store) -> T) -> Result<T, Frame> {
        self.table.run_store(&mut self.guard.store, f)
    }
}

/// Some tables of a [`LocalTables`], locked
pub(crate) struct Locked<'a> {
    tables: &'a [Arc<ShardTable>],
    guards: Vec<Option<MutexGuard<'a, Table>>>,
}

impl Locked<'_> {
    /// Applies any delayed flush due at `now` on every locked table.
    pub(crate) fn catch_up(&mut self, now: Instant) {
        for table in self.guards.iter_mut().flatten() {
            table.catch_up(now);
        }
    }

    /// Runs `f` on shard `shard`'s store, which must be locked. A panic in it closes the
    /// table (its shard restarts, empty) and is returned as the error reply, as is any later
    /// use of the table.
    pub(crate) fn with_store<T>(
        &mut self,
        shard: usize,
        f: impl FnOnce(&mut Store) -> T,
    ) -> Result<T, Frame> {
        let tables = self.tables;
        let (Some(table), Some(Some(guard))) = (tables.get(shard), self.guards.get_mut(shard))
        else {
            return Err(Frame::Error(
                "ERR internal error: the shard's table is not locked".into(),
            ));
        };
        table.run_store(&mut guard.store, f)
    }

    /// Applies `cmd` on shard `shard`'s table, which must be locked; as
    /// [`with_store`](Self::with_store), an error is the reply.
    pub(crate) fn apply(&mut self, shard: usize, cmd: KeyCommand, now: &Now) -> Frame {
        self.with_store(shard, |store| cmd.apply(store, now))
            .unwrap_or_else(|error| error)
    }

    /// As [`apply`](Self::apply), writing the reply to `out`; a command that panics leaves
    /// nothing of its own there, only the error.
    pub(crate) fn apply_into(
        &mut self,
        shard: usize,
        cmd: KeyCommand,
        now: &Now,
        out: &mut BytesMut,
    ) {
        let start = out.len();
        if let Err(error) = self.with_store(shard, |store| cmd.apply_into(store, now, out)) {
            out.truncate(start);
            error.encode(out);
        }
    }
}
