//! Lesson 3, a cache in front of the database: two caches side by side under the same load.
//! One is filled and invalidated by hand (read the database on a miss, store what was read;
//! on a write, write the database and delete the key); the other is troupe's read-through
//! cache, which fills with versions. `race on` slows both fills down: the hand-made cache
//! starts serving values older than writes it already acknowledged; the read-through cache
//! never does.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use troupe::cache::{Backing, BackingError, Versioned};
use troupe::db::DbBacking;
use troupe::faults::Faults;
use troupe::prelude::*;

use crate::harness::{Lesson, LessonArgs, LessonCommand, say};

/// Keys each side writes and reads: few, so reads and writes of one key often overlap.
const KEYS: u64 = 4;

/// How long a fill takes with `race on`: the time between reading the database and storing
/// what was read, which every cache-aside reader has (a GC pause, a slow network).
const SLOW_FILL: Duration = Duration::from_millis(50);

/// The database behind the read-through cache, with its reads slowed as the hand-made
/// cache's are when the race is on.
#[derive(Clone)]
struct SlowReads {
    db: DbBacking,
    race: Arc<AtomicBool>,
}

impl Backing for SlowReads {
    async fn get(&self, key: Bytes, timeout: Duration) -> Result<Versioned, BackingError> {
        let read = self.db.get(key, timeout).await?;
        if self.race.load(Ordering::Relaxed) {
            tokio::time::sleep(SLOW_FILL).await;
        }
        Ok(read)
    }

    async fn put(
        &self,
        key: Bytes,
        value: Option<Bytes>,
        timeout: Duration,
    ) -> Result<u64, BackingError> {
        self.db.put(key, value, timeout).await
    }
}

/// What one side saw in the last second.
#[derive(Default)]
struct Tally {
    reads: u64,
    hits: u64,
    stale: u64,
    errors: u64,
    /// The last stale read: key, value read, newest value acknowledged before the read.
    example: Option<(String, u64, u64)>,
}

/// One side of the comparison: how it reads and writes, and what it saw.
struct Side {
    name: &'static str,
    /// Per key, the newest value whose write (and invalidation) was acknowledged.
    acked: Mutex<HashMap<String, u64>>,
    tally: Mutex<Tally>,
}

impl Side {
    fn new(name: &'static str) -> Arc<Self> {
        Arc::new(Self {
            name,
            acked: Mutex::default(),
            tally: Mutex::default(),
        })
    }

    fn key(&self, n: u64) -> String {
        format!("{}:k{}", self.name, n % KEYS)
    }

    fn floor(&self, key: &str) -> u64 {
        self.acked
            .lock()
            .expect("acked")
            .get(key)
            .copied()
            .unwrap_or(0)
    }

    fn acknowledge(&self, key: &str, value: u64) {
        let mut acked = self.acked.lock().expect("acked");
        let newest = acked.entry(key.to_string()).or_default();
        *newest = (*newest).max(value);
    }

    /// Counts a read that returned `value` where `floor` was acknowledged before it began.
    fn read(&self, key: &str, value: Option<u64>, floor: u64, hit: bool) {
        let mut tally = self.tally.lock().expect("tally");
        tally.reads += 1;
        tally.hits += u64::from(hit);
        if let Some(value) = value
            && value < floor
        {
            tally.stale += 1;
            tally.example = Some((key.to_string(), value, floor));
        }
    }

    fn failed(&self) {
        self.tally.lock().expect("tally").errors += 1;
    }

    /// The narration line for the last second, and a fresh tally.
    fn report(&self, label: &str, hits: Option<(u64, u64)>) -> String {
        let tally = std::mem::take(&mut *self.tally.lock().expect("tally"));
        let (hits, lookups) = hits.unwrap_or((tally.hits, tally.reads));
        let rate = match lookups {
            0 => "-".to_string(),
            n => format!("{}%", hits * 100 / n),
        };
        let mut line = format!(
            "{label}: {} reads · hits {rate} · stale reads {}",
            tally.reads, tally.stale
        );
        if let Some((key, read, acked)) = tally.example {
            line.push_str(&format!(" (read {key}={read} after {acked} was written)"));
        }
        if tally.errors > 0 {
            line.push_str(&format!(" · errors {}", tally.errors));
        }
        line
    }
}

fn number(value: &[u8]) -> Option<u64> {
    std::str::from_utf8(value).ok()?.parse().ok()
}

/// Writes and reads both caches, and says each second what each side served.
#[derive(Clone)]
struct Workload {
    naive: CacheClient,
    read_through: CacheClient,
    db: DbClient,
    race: Arc<AtomicBool>,
    /// This run's tallies, made when it starts.
    sides: Option<Arc<Sides>>,
}

/// The workload's own timer.
#[derive(Debug, serde::Serialize, serde::Deserialize, Message)]
#[message(name = "lessons.cache.Workload")]
enum WorkloadMsg {
    Report,
}

impl Workload {
    /// Cache-aside by hand: write the database, then delete the cached copy.
    async fn naive_write(&self, side: &Side, seq: u64) {
        let key = side.key(seq);
        let written = async {
            self.db.put(key.clone(), seq.to_string()).await.ok()?;
            self.naive.del([key.clone()]).await.ok()
        };
        match written.await {
            Some(_) => side.acknowledge(&key, seq),
            None => side.failed(),
        }
    }

    /// Cache-aside by hand: the cache, else the database, then store what was read.
    async fn naive_read(&self, side: &Side, n: u64) {
        let key = side.key(n);
        let floor = side.floor(&key);
        match self.naive.get(key.clone()).await {
            Ok(Some(value)) => side.read(&key, number(&value), floor, true),
            Ok(None) => match self.db.get(key.clone()).await {
                Ok(value) => {
                    let value = value.as_deref().and_then(number);
                    side.read(&key, value, floor, false);
                    if self.race.load(Ordering::Relaxed) {
                        tokio::time::sleep(SLOW_FILL).await;
                    }
                    if let Some(value) = value {
                        let _ = self.naive.set(key, value.to_string()).await;
                    }
                }
                Err(_) => side.failed(),
            },
            Err(_) => side.failed(),
        }
    }

    async fn read_through_write(&self, side: &Side, seq: u64) {
        let key = side.key(seq);
        match self.read_through.set(key.clone(), seq.to_string()).await {
            Ok(()) => side.acknowledge(&key, seq),
            Err(_) => side.failed(),
        }
    }

    async fn read_through_read(&self, side: &Side, n: u64) {
        let key = side.key(n);
        let floor = side.floor(&key);
        match self.read_through.get(key.clone()).await {
            Ok(value) => side.read(&key, value.as_deref().and_then(number), floor, false),
            Err(_) => side.failed(),
        }
    }
}

/// The two sides' tallies, and the read-through cache's hit count at the last report.
struct Sides {
    naive: Arc<Side>,
    read_through: Arc<Side>,
    last_stats: Mutex<(u64, u64)>,
}

impl Actor for Workload {
    type Msg = WorkloadMsg;

    async fn started(&mut self, ctx: &mut Ctx<WorkloadMsg>) -> Result<(), ActorError> {
        let sides = Arc::new(Sides {
            naive: Side::new("naive"),
            read_through: Side::new("read-through"),
            last_stats: Mutex::default(),
        });
        // a writer and three readers per side, each on its own loop
        let seq = Arc::new(AtomicU64::new(1));
        for reader in [false, true, true, true] {
            let (this, sides, seq) = (self.clone(), sides.clone(), seq.clone());
            ctx.spawn(async move {
                let every = Duration::from_millis(if reader { 7 } else { 20 });
                let mut tick = tokio::time::interval(every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                let mut n = 0u64;
                loop {
                    tick.tick().await;
                    n += 1;
                    if reader {
                        let pick = n.wrapping_mul(0x9e37_79b9).rotate_right(7);
                        tokio::join!(
                            this.naive_read(&sides.naive, pick),
                            this.read_through_read(&sides.read_through, pick),
                        );
                    } else {
                        let seq = seq.fetch_add(1, Ordering::Relaxed);
                        tokio::join!(
                            this.naive_write(&sides.naive, seq),
                            this.read_through_write(&sides.read_through, seq),
                        );
                    }
                }
            });
        }
        self.sides = Some(sides);
        ctx.send_interval(Duration::from_secs(1), || WorkloadMsg::Report);
        Ok(())
    }

    async fn handle(&mut self, _: WorkloadMsg, _: &mut Ctx<WorkloadMsg>) -> Result<(), ActorError> {
        let Some(sides) = &self.sides else {
            return Ok(());
        };
        // the read-through cache fills itself: its own counters say how often it hit
        let hits = match self.read_through.stats().await {
            Ok(stats) => {
                let mut last = sides.last_stats.lock().expect("stats");
                let delta = (stats.hits - last.0.min(stats.hits), {
                    let lookups = stats.hits + stats.misses;
                    lookups - (last.0 + last.1).min(lookups)
                });
                *last = (stats.hits, stats.misses);
                Some(delta)
            }
            Err(_) => None,
        };
        let race = if self.race.load(Ordering::Relaxed) {
            "race on"
        } else {
            "race off"
        };
        say(format!(
            "{} · {race}",
            sides.naive.report("naive invalidation", None)
        ));
        say(sides.read_through.report("read-through      ", hits));
        Ok(())
    }
}

/// app (the workload) → naive and read-through caches (node cache) → db (node data)
pub(crate) fn lesson(args: &LessonArgs, dir: &Path) -> Lesson {
    let _ = args;
    let mut t = Topology::new("lesson-cache");
    let (app, cache, data) = (t.node("app"), t.node("cache"), t.node("data"));
    let db = t.add(
        data,
        "db",
        DbSpec::in_dir(dir)
            .replica("data")
            .reachable_from(Reach::nodes(["app", "cache"])),
    );
    let race = Arc::new(AtomicBool::new(false));
    let naive = t.add(
        cache,
        "naive",
        CacheSpec::lru(10_000).reachable_from(Reach::nodes(["app"])),
    );
    let read_through = t.add(
        cache,
        "read-through",
        CacheSpec::lru(10_000)
            .read_through(SlowReads {
                db: DbBacking::new(db.clone()),
                race: race.clone(),
            })
            .reachable_from(Reach::nodes(["app"])),
    );
    t.add(
        app,
        "workload",
        Restartable::from(Workload {
            naive,
            read_through,
            db,
            race: race.clone(),
            sides: None,
        }),
    );
    let faults = Faults::on_every_node(&mut t);
    let command: LessonCommand = Arc::new(move |words: Vec<String>| {
        let race = race.clone();
        match words
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .as_slice()
        {
            ["race", switch @ ("on" | "off")] => {
                let on = *switch == "on";
                Some(Box::pin(async move {
                    race.store(on, Ordering::Relaxed);
                    vec![if on {
                        format!(
                            "race on: every fill now takes {} ms between reading the database and storing",
                            SLOW_FILL.as_millis()
                        )
                    } else {
                        "race off: fills are as fast as they go".to_string()
                    }]
                }) as _)
            }
            ["race", ..] => Some(Box::pin(async { vec!["race on, or race off".to_string()] }) as _),
            _ => None,
        }
    });
    Lesson {
        title: "3 · a cache in front of the database",
        intro: vec![
            "workload (node app) → two caches (node cache) → db (node data), the same load on each:".into(),
            "  naive invalidation: on a miss read the db and store what was read; on a write, write".into(),
            "                      the db, then delete the cached key;".into(),
            "  read-through:       the cache reads and writes the db itself, filling with versions.".into(),
            "A stale read is a value older than a write acknowledged before the read began.".into(),
            "try: race on   — fills slow down (as a GC pause or a slow link would): a write lands".into(),
            "                 between a fill's read and its store, and the naive cache keeps the old".into(),
            "                 value; the read-through cache refuses a fill older than a write.".into(),
        ],
        topology: t,
        faults,
        gateway: None,
        cuts_links: false,
        commands: Some((command, vec!["race on|off               slow every cache fill down"])),
    }
}
