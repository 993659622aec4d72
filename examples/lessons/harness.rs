//! What every lesson shares: its flags, the console that injects faults from the keyboard or
//! `--inject`, the narration lines, the users who send traffic through the gateway, and the
//! bounded load generator behind `flood`.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::io::AsyncBufReadExt;
use tokio::time::Instant;
use troupe::faults::Faults;
use troupe::prelude::*;
use troupe::proxy::ProxyMsg;

/// The flags every lesson takes.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct LessonArgs {
    #[command(flatten)]
    pub(crate) launch: LaunchArgs,
    /// The gateway's HTTP address (lessons with a gateway)
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub(crate) http: String,
    /// Stop after this many seconds (default: run until Ctrl-C)
    #[arg(long)]
    pub(crate) for_secs: Option<u64>,
    /// Run a console command SECS seconds after the start, as if typed: `--inject "5:kill
    /// svc-1"` (repeatable)
    #[arg(long, value_name = "SECS:COMMAND")]
    pub(crate) inject: Vec<String>,
    /// Where the lesson's database and queue keep their files (default: a fresh directory
    /// under the system's temporary directory, removed at the end)
    #[arg(long)]
    pub(crate) data: Option<PathBuf>,
}

impl LessonArgs {
    /// Whether node `name` runs in this process.
    pub(crate) fn runs_here(&self, name: &str) -> bool {
        self.launch.nodes.is_empty() || self.launch.nodes.iter().any(|n| n == name)
    }
}

/// A lesson-specific console command: the words typed, answered with the lines to print, or
/// `None` if the lesson has no such command.
pub(crate) type LessonCommand =
    Arc<dyn Fn(Vec<String>) -> Option<BoxFuture<'static, Vec<String>>> + Send + Sync>;

/// A lesson ready to run.
pub(crate) struct Lesson {
    /// Its number and title, as the intro prints them.
    pub(crate) title: &'static str,
    /// What to read before it starts: the idea and what to try.
    pub(crate) intro: Vec<String>,
    pub(crate) topology: Topology,
    pub(crate) faults: Faults,
    /// The gateway, for lessons that have one (`flood` aims at it).
    pub(crate) gateway: Option<Addr<ProxyMsg>>,
    /// Whether the lesson cuts links: one process then routes its nodes over QUIC.
    pub(crate) cuts_links: bool,
    /// The lesson's own console commands, and their one-line help.
    pub(crate) commands: Option<(LessonCommand, Vec<&'static str>)>,
}

static STARTED: OnceLock<Instant> = OnceLock::new();

/// Prints one line of narration, stamped with the seconds since the lesson started.
pub(crate) fn say(line: impl AsRef<str>) {
    let started = *STARTED.get_or_init(Instant::now);
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "[{:>4.1}s] {}",
        started.elapsed().as_secs_f64(),
        line.as_ref()
    );
    let _ = out.flush();
}

/// The lesson's data directory and whether it is a fresh temporary one (removed at the end).
pub(crate) fn data_dir(args: &LessonArgs, lesson: &str) -> (PathBuf, bool) {
    match &args.data {
        Some(dir) => (dir.clone(), false),
        None => (
            std::env::temp_dir().join(format!("troupe-lesson-{lesson}-{}", std::process::id())),
            true,
        ),
    }
}

/// Runs `lesson` until Ctrl-C or `--for-secs`, with its console on standard input.
pub(crate) async fn run(lesson: Lesson, mut args: LessonArgs) -> anyhow::Result<()> {
    STARTED.get_or_init(Instant::now);
    if lesson.cuts_links {
        // cuts act on the QUIC path: nodes of one process talk over loopback QUIC
        args.launch.quic = true;
    }
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "lesson {}", lesson.title)?;
        for line in &lesson.intro {
            writeln!(out, "  {line}")?;
        }
        writeln!(
            out,
            "  console: type `help` for the commands (kill, crash, partition, heal, flood{})",
            match &lesson.commands {
                Some((_, help)) if !help.is_empty() => ", and this lesson's own",
                _ => "",
            }
        )?;
        out.flush()?;
    }
    let console = Console {
        flooding: Arc::default(),
        faults: lesson.faults,
        gateway: lesson.gateway.clone(),
        commands: lesson.commands,
    };
    let gateway_here = lesson
        .gateway
        .as_ref()
        .filter(|g| args.runs_here(g.node()))
        .cloned();
    let injected = parse_injections(&args.inject)?;
    let stop = async move {
        if let Some(gateway) = gateway_here {
            tokio::spawn(async move {
                if let Some(addr) = gateway_addr(&gateway).await {
                    say(format!("gateway listening http://{addr}"));
                }
            });
        }
        let console = Arc::new(console);
        for (at, command) in injected {
            let console = console.clone();
            tokio::spawn(async move {
                tokio::time::sleep(at).await;
                say(format!("> {command}   (injected)"));
                console.execute(&command).await;
            });
        }
        let keyboard = {
            let console = console.clone();
            async move {
                let mut input = tokio::io::BufReader::new(tokio::io::stdin());
                let mut line = Vec::new();
                loop {
                    line.clear();
                    // bytes, not text: a line that is not UTF-8 is read as best it can be
                    match input.read_until(b'\n', &mut line).await {
                        Ok(0) => break,
                        Ok(_) => console.execute(&String::from_utf8_lossy(&line)).await,
                        Err(err) => {
                            say(format!(
                                "console: cannot read standard input ({err}); use --inject"
                            ));
                            break;
                        }
                    }
                }
                // standard input closed: keep running until stopped
                std::future::pending::<()>().await;
            }
        };
        let until = async {
            match args.for_secs {
                Some(secs) => tokio::time::sleep(Duration::from_secs(secs)).await,
                None => match troupe::shutdown_signal() {
                    Ok(signal) => signal.await,
                    Err(err) => {
                        tracing::warn!(%err, "no signal handlers; stop with --for-secs");
                        std::future::pending::<()>().await;
                    }
                },
            }
        };
        tokio::select! {
            () = keyboard => {}
            () = until => {}
        }
    };
    launch_until(lesson.topology, args.launch, stop).await?;
    say("lesson over");
    Ok(())
}

/// `SECS:COMMAND` flags, in time order.
fn parse_injections(flags: &[String]) -> anyhow::Result<Vec<(Duration, String)>> {
    let mut out = Vec::new();
    for flag in flags {
        let Some((secs, command)) = flag.split_once(':') else {
            anyhow::bail!("--inject takes SECS:COMMAND, as in \"5:kill svc-1\"; got {flag:?}");
        };
        let secs: f64 = secs
            .trim()
            .parse()
            .map_err(|_| anyhow::anyhow!("--inject {flag:?}: {secs:?} is not seconds"))?;
        if !(0.0..=86_400.0).contains(&secs) {
            anyhow::bail!("--inject {flag:?}: seconds must be between 0 and 86400");
        }
        out.push((Duration::from_secs_f64(secs), command.trim().to_string()));
    }
    out.sort_by_key(|(at, _)| *at);
    Ok(out)
}

/// The gateway's bound address, asked for up to 30 s (it binds as the lesson starts).
pub(crate) async fn gateway_addr(gateway: &Addr<ProxyMsg>) -> Option<SocketAddr> {
    troupe::runtime::listener::bound_addr(gateway, ProxyMsg::LocalAddr, Duration::from_secs(30))
        .await
}

/// The longest `flood` may run, and its highest rate: a load generator bounded in count and
/// time.
const FLOOD_MAX_SECS: u64 = 60;
const FLOOD_MAX_RATE: u64 = 20_000;

struct Console {
    /// Whether a flood runs now: one at a time.
    flooding: Arc<std::sync::atomic::AtomicBool>,
    faults: Faults,
    gateway: Option<Addr<ProxyMsg>>,
    commands: Option<(LessonCommand, Vec<&'static str>)>,
}

impl Console {
    async fn execute(&self, line: &str) {
        let words: Vec<String> = line.split_whitespace().map(str::to_string).collect();
        let Some(first) = words.first() else { return };
        match first.as_str() {
            "help" | "?" => self.help(),
            "kill" => match words.get(1) {
                Some(target) if target.contains('@') => {
                    let (actor, node) = target.split_once('@').unwrap_or_default();
                    match self.faults.kill_on(node, actor).await {
                        Ok(true) => say(format!("killed {actor} on {node}")),
                        Ok(false) => say(format!("kill: no actor {actor} is running on {node}")),
                        Err(err) => say(format!("kill: {err}")),
                    }
                }
                Some(actor) => {
                    let nodes = self.faults.kill(actor).await;
                    if nodes.is_empty() {
                        say(format!("kill: no actor {actor} is running"));
                    } else {
                        say(format!("killed {actor} on {}", nodes.join(", ")));
                    }
                }
                None => say("kill: which actor? (kill NAME)"),
            },
            "partition" => self.partition(&words[1..]).await,
            "heal" => {
                for (node, healed) in self.faults.heal().await {
                    match healed {
                        Ok(peers) if peers.is_empty() => {}
                        Ok(peers) => say(format!("healed {node} <-> {}", peers.join(", "))),
                        Err(err) => say(format!("heal: {err}")),
                    }
                }
                say("every link this console could reach is healed");
            }
            "crash" => match words.get(1) {
                Some(node) if self.faults.nodes().any(|n| n == node) => {
                    match self.faults.crash(node).await {
                        Ok(killed) => say(format!(
                            "crashed {node}: {} actors killed (restarted empty), cut off from every other node (heal to bring it back)",
                            killed.len()
                        )),
                        Err(err) => say(format!("crash failed: {err}")),
                    }
                }
                Some(node) => say(format!(
                    "crash: no node {node}; the nodes are {}",
                    self.faults.nodes().collect::<Vec<_>>().join(", ")
                )),
                None => say("crash: which node? (crash NODE)"),
            },
            "status" => {
                for node in self.faults.nodes().map(str::to_string).collect::<Vec<_>>() {
                    match self.faults.status(&node).await {
                        Ok(s) if s.cut_from.is_empty() => say(format!("{node}: all links up")),
                        Ok(s) => say(format!("{node}: cut off from {}", s.cut_from.join(", "))),
                        Err(err) => say(format!("{node}: {err}")),
                    }
                }
            }
            "flood" => self.flood(&words[1..]).await,
            _ => {
                let answered = match &self.commands {
                    Some((command, _)) => command(words.clone()),
                    None => None,
                };
                match answered {
                    Some(work) => {
                        for line in work.await {
                            say(line);
                        }
                    }
                    None => say(format!("unknown command {first:?}; type help")),
                }
            }
        }
    }

    fn help(&self) {
        let mut lines = vec![
            "kill ACTOR[@NODE]         crash an actor (its supervisor restarts it)",
            "crash NODE                kill every actor on NODE and cut it off, as a dead machine",
            "partition NODE            cut NODE off from every other node",
            "partition A B [C..]       cut A off from B (and C..)",
            "partition A B | C D       cut the nodes left of | off from those right of it",
            "heal                      heal every cut link",
            "flood RATE/s [SECS]       send RATE requests a second to the gateway for SECS (10)",
            "status                    which links are cut",
        ];
        if let Some((_, own)) = &self.commands {
            lines.extend(own.iter().copied());
        }
        for line in lines {
            say(line);
        }
    }

    async fn partition(&self, words: &[String]) {
        let names: Vec<&str> = self.faults.nodes().collect();
        let (side, other): (Vec<&str>, Vec<&str>) = match words.iter().position(|w| w == "|") {
            Some(bar) => (
                words[..bar].iter().map(String::as_str).collect(),
                words[bar + 1..].iter().map(String::as_str).collect(),
            ),
            None => match words {
                [] => {
                    say("partition: which nodes? (partition NODE, or partition A B)");
                    return;
                }
                [one] => (
                    vec![one.as_str()],
                    names.iter().copied().filter(|n| n != one).collect(),
                ),
                [first, rest @ ..] => (
                    vec![first.as_str()],
                    rest.iter().map(String::as_str).collect(),
                ),
            },
        };
        if side.is_empty() || other.is_empty() {
            say("partition: name nodes on both sides (partition A B, or A B | C D)");
            return;
        }
        if let Some(both) = side.iter().find(|n| other.contains(n)) {
            say(format!(
                "partition: {both} is on both sides; a node cannot be cut off from itself"
            ));
            return;
        }
        if let Some(unknown) = side.iter().chain(&other).find(|n| !names.contains(n)) {
            say(format!(
                "partition: no node {unknown}; the nodes are {}",
                names.join(", ")
            ));
            return;
        }
        match self.faults.partition(&side, &other).await {
            Ok(()) => say(format!(
                "partition: {} cut off from {} (heal to undo)",
                side.join(", "),
                other.join(", ")
            )),
            Err(err) => say(format!("partition failed: {err}")),
        }
    }

    async fn flood(&self, words: &[String]) {
        let Some(gateway) = &self.gateway else {
            say("flood: this lesson has no gateway");
            return;
        };
        let rate = words
            .first()
            .map(|w| w.trim_end_matches("/s"))
            .and_then(|w| w.parse::<u64>().ok());
        let Some(rate) = rate.filter(|r| (1..=FLOOD_MAX_RATE).contains(r)) else {
            say(format!(
                "flood: give a rate from 1 to {FLOOD_MAX_RATE} a second (flood 5000/s)"
            ));
            return;
        };
        let secs = match words.get(1).map(|w| w.trim_end_matches('s').parse::<u64>()) {
            None => 10,
            Some(Ok(s)) if (1..=FLOOD_MAX_SECS).contains(&s) => s,
            Some(_) => {
                say(format!("flood: seconds from 1 to {FLOOD_MAX_SECS}"));
                return;
            }
        };
        let Some(addr) = gateway_addr(gateway).await else {
            say("flood: the gateway did not say where it listens (type it where edge runs)");
            return;
        };
        if self
            .flooding
            .swap(true, std::sync::atomic::Ordering::AcqRel)
        {
            say("flood: one is running already; wait for its end");
            return;
        }
        say(format!(
            "flood: {rate} requests a second for {secs} s from 127.0.0.1 to http://{addr}"
        ));
        let flooding = self.flooding.clone();
        tokio::spawn(async move {
            flood(addr, rate, Duration::from_secs(secs)).await;
            flooding.store(false, std::sync::atomic::Ordering::Release);
        });
    }
}

/// An HTTP client bound to `local` (another loopback address is another client to a
/// per-address rate limiter), with short timeouts.
pub(crate) fn http_client(local: Option<IpAddr>) -> Client<HttpConnector, Full<Bytes>> {
    let mut connector = HttpConnector::new();
    connector.set_local_address(local);
    connector.set_connect_timeout(Some(Duration::from_secs(1)));
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(10))
        .build(connector)
}

/// One answer as users see it: the status (0: no answer) and the body.
#[derive(Debug, Clone)]
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) body: String,
    /// From sending the request to the end of the answer's body.
    pub(crate) took: Duration,
}

/// Sends one request; never waits more than 2 s.
pub(crate) async fn request(
    client: &Client<HttpConnector, Full<Bytes>>,
    method: &str,
    url: &str,
    body: impl Into<Bytes>,
) -> Answer {
    let sent = Instant::now();
    let request = match http::Request::builder()
        .method(method)
        .uri(url)
        .body(Full::new(body.into()))
    {
        Ok(request) => request,
        Err(err) => {
            return Answer {
                status: 0,
                body: err.to_string(),
                took: sent.elapsed(),
            };
        }
    };
    let answered = tokio::time::timeout(Duration::from_secs(2), async {
        let response = client.request(request).await?;
        let status = response.status().as_u16();
        let body = response.into_body().collect().await?.to_bytes();
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(Answer {
            status,
            body: String::from_utf8_lossy(&body).into_owned(),
            took: sent.elapsed(),
        })
    })
    .await;
    match answered {
        Ok(Ok(answer)) => answer,
        Ok(Err(err)) => Answer {
            status: 0,
            body: err.to_string(),
            took: sent.elapsed(),
        },
        Err(_) => Answer {
            status: 0,
            body: "no answer within 2 s".into(),
            took: sent.elapsed(),
        },
    }
}

/// Sends `rate` GET requests a second to `addr` for `lasting`, from 127.0.0.1, at most 256 in
/// flight; reports each second and at the end.
async fn flood(addr: SocketAddr, rate: u64, lasting: Duration) {
    let client = http_client(Some(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    let url = format!("http://{addr}/");
    let tally: Arc<Mutex<BTreeMap<u16, u64>>> = Arc::default();
    let in_flight = Arc::new(tokio::sync::Semaphore::new(256));
    let started = Instant::now();
    // ticks of 10 ms, each sending its share
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    let mut sent = 0u64;
    let mut reported = started;
    let mut skipped = 0u64;
    while started.elapsed() < lasting {
        tick.tick().await;
        let due = (started.elapsed().as_secs_f64() * rate as f64) as u64;
        while sent < due {
            sent += 1;
            let Ok(permit) = in_flight.clone().try_acquire_owned() else {
                skipped += 1;
                continue;
            };
            let (client, url, tally) = (client.clone(), url.clone(), tally.clone());
            tokio::spawn(async move {
                let answer = request(&client, "GET", &url, Bytes::new()).await;
                *tally
                    .lock()
                    .expect("tally")
                    .entry(answer.status)
                    .or_default() += 1;
                drop(permit);
            });
        }
        if reported.elapsed() >= Duration::from_secs(1) {
            reported = Instant::now();
            say(format!(
                "flood so far: {}",
                describe(&tally.lock().expect("tally"))
            ));
        }
    }
    // the last answers (each waits at most 2 s)
    let _ = tokio::time::timeout(Duration::from_secs(3), in_flight.acquire_many(256)).await;
    say(format!(
        "flood over: {sent} sent, {} ({skipped} not sent: 256 already waiting)",
        describe(&tally.lock().expect("tally"))
    ));
}

/// `200 ×12 · 429 ×3 · no answer ×1`
pub(crate) fn describe(tally: &BTreeMap<u16, u64>) -> String {
    if tally.is_empty() {
        return "no answers yet".into();
    }
    tally
        .iter()
        .map(|(status, n)| match status {
            0 => format!("no answer ×{n}"),
            s => format!("{s} ×{n}"),
        })
        .collect::<Vec<_>>()
        .join(" · ")
}

/// What a [`Users`] actor does with one second of answers: the narration line.
pub(crate) type Summarize = Arc<dyn Fn(&[Answer]) -> String + Send + Sync>;

/// The n-th request users send: method, path and body.
pub(crate) type NextRequest = Arc<dyn Fn(u64) -> (&'static str, String, String) + Send + Sync>;

/// Simulated users: one request every `every` through the gateway, from 127.0.0.2 (so a
/// flood from 127.0.0.1 is another client), and a line of narration a second.
#[derive(Clone)]
pub(crate) struct Users {
    gateway: Addr<ProxyMsg>,
    every: Duration,
    next: NextRequest,
    summarize: Summarize,
    /// This run's answers since the last report.
    answers: Option<Arc<Mutex<Vec<Answer>>>>,
}

impl Users {
    /// Users who `GET /` every `every`.
    pub(crate) fn get_root(gateway: Addr<ProxyMsg>, every: Duration, summarize: Summarize) -> Self {
        Self::new(
            gateway,
            every,
            Arc::new(|_| ("GET", "/".to_string(), String::new())),
            summarize,
        )
    }

    pub(crate) fn new(
        gateway: Addr<ProxyMsg>,
        every: Duration,
        next: NextRequest,
        summarize: Summarize,
    ) -> Self {
        Self {
            gateway,
            every,
            next,
            summarize,
            answers: None,
        }
    }
}

/// The users' own timer.
#[derive(Debug, serde::Serialize, serde::Deserialize, Message)]
#[message(name = "lessons.Users")]
pub(crate) enum UsersMsg {
    /// Say what the last second looked like.
    Report,
}

impl Actor for Users {
    type Msg = UsersMsg;

    async fn started(&mut self, ctx: &mut Ctx<UsersMsg>) -> Result<(), ActorError> {
        let answers: Arc<Mutex<Vec<Answer>>> = Arc::default();
        let this = self.clone();
        let seen = answers.clone();
        ctx.spawn(async move {
            let Some(addr) = gateway_addr(&this.gateway).await else {
                return Err("the gateway never said where it listens".into());
            };
            let client = http_client(Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2))));
            let mut tick = tokio::time::interval(this.every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            for n in 0.. {
                tick.tick().await;
                let (method, path, body) = (this.next)(n);
                let answer = request(&client, method, &format!("http://{addr}{path}"), body).await;
                seen.lock().expect("answers").push(answer);
            }
            Ok(())
        });
        self.answers = Some(answers);
        ctx.send_interval(Duration::from_secs(1), || UsersMsg::Report);
        Ok(())
    }

    async fn handle(&mut self, _: UsersMsg, _: &mut Ctx<UsersMsg>) -> Result<(), ActorError> {
        if let Some(answers) = &self.answers {
            let last: Vec<Answer> = std::mem::take(&mut *answers.lock().expect("answers"));
            say((self.summarize)(&last));
        }
        Ok(())
    }
}

/// How many answers had each status.
pub(crate) fn statuses(answers: &[Answer]) -> BTreeMap<u16, u64> {
    let mut tally = BTreeMap::new();
    for answer in answers {
        *tally.entry(answer.status).or_default() += 1;
    }
    tally
}

/// Prints the cluster events its node sees, in the lessons' terms: `edge sees app-2 down`.
pub(crate) struct Events;

impl Actor for Events {
    type Msg = NoMessages;

    async fn started(&mut self, ctx: &mut Ctx<NoMessages>) -> Result<(), ActorError> {
        use troupe::runtime::remote::NodeEvent;
        let me = ctx.node().name().to_string();
        let mut events = ctx.node().cluster_events();
        ctx.spawn(async move {
            loop {
                match events.recv().await {
                    Ok(NodeEvent::Up { node, .. }) => say(format!("{me} sees {node} up")),
                    Ok(NodeEvent::Down { node, reason }) => {
                        say(format!("{me} sees {node} down ({reason})"))
                    }
                    Ok(NodeEvent::Left { node }) => say(format!("{me} sees {node} leave")),
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return Ok(()),
                }
            }
        });
        Ok(())
    }
}
