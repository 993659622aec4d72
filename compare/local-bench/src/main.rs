//! local-bench: local messaging and per-actor scale, troupe vs raw ractor, kameo and actix, with
//! a raw tokio channel as the practical limit (issue 9).
//!
//! Every measurement runs in a fresh child process of this binary (`--child SYSTEM --bench B
//! --variant V --n N --limit-secs S`), so no two systems share an allocator heap, a registry
//! or a runtime; the parent runs rounds that interleave the systems (the order is reversed
//! every other round: A/B/A/B), prints one JSON line per sample as it comes, then the medians,
//! the ratios against ractor and a table.
//!
//! - `cast`: N = 1,000,000 casts of `Add(u64)` from one sender task to a counting actor, after
//!   N/10 warm-up casts; the time runs from the first send until the actor has handled the N-th
//!   (it wakes a `tokio::sync::Notify`).
//! - `call`: M = 100,000 sequential round trips (`Get` → `u64`), after M/10 warm-up ones.
//! - `scale`: N = 100,000 idle actors, supervised and registered; spawn rate and
//!   (RSS after − RSS before) / N; then all stopped again (`shutdown_secs`, bounded by 30 s; a
//!   stop over the bound, or troupe names left registered after it, fails the sample).
//!
//! - `drain`: the same casts with sending and handling timed apart: after the warm-up the actor
//!   is held (a `Hold` message waits on a gate) while the N casts queue, then released; the
//!   rate is N over the time from the release to the N-th handled (`send_secs`: the queueing).
//! `--quick` divides every count by 10. `--rounds R` (default 3), `--only cast,drain,call,scale`.

mod common;
mod sys_actix;
mod sys_kameo;
mod sys_ractor;
mod sys_tokio;
mod sys_troupe;

use std::collections::BTreeMap;
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use common::Sample;

const CAST_N: u64 = 1_000_000;
const CALL_M: u64 = 100_000;
const SCALE_N: u64 = 100_000;
/// Time bound of one measurement inside a child; the parent kills a child after twice this
/// plus a margin.
const LIMIT: Duration = Duration::from_secs(60);
/// Target from the issue: troupe may use at most this many bytes per idle actor over ractor.
const MEMORY_TARGET_BYTES: f64 = 1024.0;
/// Target from the issue: local messaging at least this fraction of ractor's throughput.
const LOCAL_TARGET: f64 = 0.9;

/// (bench, system, variant), in the order of a forward round.
const PLAN: &[(&str, &str, &str)] = &[
    ("cast", "troupe", "cast"),
    ("cast", "troupe", "cast_observed"),
    ("cast", "ractor", "cast"),
    ("cast", "kameo", "tell_unbounded"),
    ("cast", "kameo", "tell_bounded64"),
    ("cast", "actix", "same_thread"),
    ("cast", "actix", "arbiter"),
    ("cast", "tokio", "mpsc_unbounded"),
    ("drain", "troupe", "held"),
    ("drain", "ractor", "held"),
    ("call", "troupe", "call_timeout"),
    ("call", "troupe", "call_untimed"),
    ("call", "troupe", "call_untimed_observed"),
    ("call", "ractor", "call"),
    ("call", "ractor", "call_timeout"),
    ("call", "kameo", "ask"),
    ("call", "kameo", "ask_timeout"),
    ("call", "actix", "same_thread"),
    ("call", "actix", "arbiter"),
    ("call", "tokio", "mpsc_oneshot"),
    ("call", "tokio", "mpsc_oneshot_timeout"),
    ("scale", "troupe", "supervised_named"),
    ("scale", "ractor", "linked_named"),
    ("scale", "ractor", "linked_unnamed"),
    ("scale", "kameo", "supervised_registered"),
    ("scale", "tokio", "task_mpsc"),
];

fn run_in_child(
    bench: &str,
    system: &str,
    variant: &str,
    n: u64,
    limit: Duration,
) -> anyhow::Result<Sample> {
    match (bench, system) {
        ("cast", "troupe") => sys_troupe::cast(variant, n, limit),
        ("cast", "ractor") => sys_ractor::cast(variant, n, limit),
        ("cast", "kameo") => sys_kameo::cast(variant, n, limit),
        ("cast", "actix") => sys_actix::cast(variant, n, limit),
        ("cast", "tokio") => sys_tokio::cast(variant, n, limit),
        ("drain", "troupe") => sys_troupe::drain(variant, n, limit),
        ("drain", "ractor") => sys_ractor::drain(variant, n, limit),
        ("call", "troupe") => sys_troupe::call(variant, n, limit),
        ("call", "ractor") => sys_ractor::call(variant, n, limit),
        ("call", "kameo") => sys_kameo::call(variant, n, limit),
        ("call", "actix") => sys_actix::call(variant, n, limit),
        ("call", "tokio") => sys_tokio::call(variant, n, limit),
        ("scale", "troupe") => sys_troupe::scale(variant, n, limit),
        ("scale", "ractor") => sys_ractor::scale(variant, n, limit),
        ("scale", "kameo") => sys_kameo::scale(variant, n, limit),
        ("scale", "tokio") => sys_tokio::scale(variant, n, limit),
        _ => bail!("no {bench} bench for {system}"),
    }
}

/// Runs one measurement in a fresh child process, killing it if it overruns.
fn spawn_child(
    bench: &str,
    system: &str,
    variant: &str,
    n: u64,
    limit: Duration,
) -> anyhow::Result<Sample> {
    let exe = std::env::current_exe().context("locate this binary")?;
    let mut child = Command::new(exe)
        .args(["--child", system, "--bench", bench, "--variant", variant])
        .args([
            "--n",
            &n.to_string(),
            "--limit-secs",
            &limit.as_secs().to_string(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("spawn a child")?;
    let mut stdout = child.stdout.take().context("child stdout")?;
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        let _ = stdout.read_to_string(&mut out);
        out
    });
    let deadline = Instant::now() + 2 * limit + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "{bench}/{system}/{variant}: killed after {:?}",
                2 * limit + Duration::from_secs(30)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = reader.join().unwrap_or_default();
    if !status.success() {
        bail!("{bench}/{system}/{variant} failed ({status}): {out}");
    }
    let line = out
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .with_context(|| format!("{bench}/{system}/{variant} printed no result: {out}"))?;
    serde_json::from_str(line).context("parse a child's result")
}

struct Args {
    quick: bool,
    rounds: u32,
    only: Vec<String>,
    child: Option<String>,
    bench: Option<String>,
    variant: Option<String>,
    n: Option<u64>,
    limit: Duration,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        quick: false,
        rounds: 3,
        only: vec!["cast".into(), "drain".into(), "call".into(), "scale".into()],
        child: None,
        bench: None,
        variant: None,
        n: None,
        limit: LIMIT,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || it.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "--quick" => args.quick = true,
            "--rounds" => args.rounds = value()?.parse().context("--rounds")?,
            "--only" => args.only = value()?.split(',').map(str::to_string).collect(),
            "--child" => args.child = Some(value()?),
            "--bench" => args.bench = Some(value()?),
            "--variant" => args.variant = Some(value()?),
            "--n" => args.n = Some(value()?.parse().context("--n")?),
            "--limit-secs" => {
                args.limit = Duration::from_secs(value()?.parse().context("--limit-secs")?)
            }
            "-h" | "--help" => {
                println!(
                    "local-bench [--quick] [--rounds R] [--only cast,drain,call,scale]\n\
                     (internal: --child SYSTEM --bench B --variant V --n N --limit-secs S)"
                );
                std::process::exit(0);
            }
            other => bail!("unknown argument {other}"),
        }
    }
    if args.rounds == 0 {
        bail!("--rounds must be at least 1");
    }
    Ok(args)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let k = v.len();
    if k % 2 == 1 {
        v[k / 2]
    } else {
        (v[k / 2 - 1] + v[k / 2]) / 2.0
    }
}

/// Medians over the rounds of one (bench, system, variant).
struct Summary {
    bench: String,
    system: String,
    variant: String,
    n: u64,
    rounds: usize,
    per_sec: f64,
    per_sec_min: f64,
    per_sec_max: f64,
    bytes_per_actor: Option<f64>,
    bytes_min: Option<f64>,
    bytes_max: Option<f64>,
    shutdown_secs: Option<f64>,
}

fn summarize(samples: &[Sample]) -> Vec<Summary> {
    let mut groups: BTreeMap<(usize, String, String, String), Vec<&Sample>> = BTreeMap::new();
    for s in samples {
        let pos = PLAN
            .iter()
            .position(|(b, sy, v)| *b == s.bench && *sy == s.system && *v == s.variant)
            .unwrap_or(usize::MAX);
        groups
            .entry((pos, s.bench.clone(), s.system.clone(), s.variant.clone()))
            .or_default()
            .push(s);
    }
    groups
        .into_iter()
        .map(|((_, bench, system, variant), g)| {
            let rates: Vec<f64> = g.iter().filter_map(|s| s.per_sec).collect();
            let bytes: Vec<f64> = g.iter().filter_map(|s| s.bytes_per_actor).collect();
            let shut: Vec<f64> = g.iter().filter_map(|s| s.shutdown_secs).collect();
            let min = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
            let max = |v: &[f64]| v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            Summary {
                n: g[0].n,
                rounds: g.len(),
                per_sec: median(rates.clone()),
                per_sec_min: min(&rates),
                per_sec_max: max(&rates),
                bytes_per_actor: (!bytes.is_empty()).then(|| median(bytes.clone())),
                bytes_min: (!bytes.is_empty()).then(|| min(&bytes)),
                bytes_max: (!bytes.is_empty()).then(|| max(&bytes)),
                shutdown_secs: (!shut.is_empty()).then(|| median(shut)),
                bench,
                system,
                variant,
            }
        })
        .collect()
}

fn find<'a>(sums: &'a [Summary], bench: &str, system: &str, variant: &str) -> Option<&'a Summary> {
    sums.iter()
        .find(|s| s.bench == bench && s.system == system && s.variant == variant)
}

fn json_opt(v: Option<f64>) -> String {
    v.map_or("null".into(), |v| format!("{v:.1}"))
}

fn report(sums: &[Summary]) {
    let ref_of = |bench: &str| match bench {
        "cast" => find(sums, "cast", "ractor", "cast"),
        "drain" => find(sums, "drain", "ractor", "held"),
        "call" => find(sums, "call", "ractor", "call"),
        _ => find(sums, "scale", "ractor", "linked_named"),
    };

    // medians as JSON lines
    for s in sums {
        let reference = ref_of(&s.bench);
        let ratio = reference.map(|r| s.per_sec / r.per_sec);
        let extra = match (s.bytes_per_actor, reference.and_then(|r| r.bytes_per_actor)) {
            (Some(b), Some(r)) => Some(b - r),
            _ => None,
        };
        println!(
            "{{\"bench\":\"{}\",\"system\":\"{}\",\"variant\":\"{}\",\"stat\":\"median\",\"rounds\":{},\
             \"n\":{},\"per_sec\":{:.1},\"per_sec_min\":{:.1},\"per_sec_max\":{:.1},\
             \"ratio_vs_ractor\":{},\"bytes_per_actor\":{},\"bytes_min\":{},\"bytes_max\":{},\
             \"extra_bytes_vs_ractor\":{},\"shutdown_secs\":{}}}",
            s.bench,
            s.system,
            s.variant,
            s.rounds,
            s.n,
            s.per_sec,
            s.per_sec_min,
            s.per_sec_max,
            ratio.map_or("null".into(), |r| format!("{r:.4}")),
            json_opt(s.bytes_per_actor),
            json_opt(s.bytes_min),
            json_opt(s.bytes_max),
            json_opt(extra),
            s.shutdown_secs.map_or("null".into(), |v| format!("{v:.3}")),
        );
    }

    println!();
    println!(
        "medians over the rounds; ratio = system / ractor (cast: ractor cast; call: ractor call!; scale: ractor linked_named)"
    );
    println!(
        "{:<6} {:<7} {:<22} {:>9} {:>14} {:>24} {:>8} {:>10} {:>16} {:>11}",
        "bench",
        "system",
        "variant",
        "n",
        "per s (median)",
        "min .. max",
        "ratio",
        "B/actor",
        "B min .. max",
        "B vs ractor"
    );
    for s in sums {
        let reference = ref_of(&s.bench);
        let ratio = reference.map_or(String::from("-"), |r| {
            format!("{:.2}x", s.per_sec / r.per_sec)
        });
        let (bytes, extra) = match (s.bytes_per_actor, reference.and_then(|r| r.bytes_per_actor)) {
            (Some(b), Some(r)) => (format!("{b:.0}"), format!("{:+.0}", b - r)),
            (Some(b), None) => (format!("{b:.0}"), "-".into()),
            _ => ("-".into(), "-".into()),
        };
        let range = match (s.bytes_min, s.bytes_max) {
            (Some(lo), Some(hi)) => format!("{lo:.0} .. {hi:.0}"),
            _ => "-".into(),
        };
        println!(
            "{:<6} {:<7} {:<22} {:>9} {:>14.0} {:>24} {:>8} {:>10} {:>16} {:>11}",
            s.bench,
            s.system,
            s.variant,
            s.n,
            s.per_sec,
            format!("{:.0} .. {:.0}", s.per_sec_min, s.per_sec_max),
            ratio,
            bytes,
            range,
            extra,
        );
    }

    println!();
    println!("targets (issue 9):");
    let verdict = |ok: bool| if ok { "meets" } else { "MISSES" };
    if let (Some(t), Some(r)) = (
        find(sums, "cast", "troupe", "cast"),
        find(sums, "cast", "ractor", "cast"),
    ) {
        let x = t.per_sec / r.per_sec;
        println!(
            "  cast: troupe / ractor = {x:.3}x (target >= {LOCAL_TARGET}x): {}",
            verdict(x >= LOCAL_TARGET)
        );
    }
    for (bench, off, on) in [
        ("cast", "cast", "cast_observed"),
        ("call", "call_untimed", "call_untimed_observed"),
    ] {
        if let (Some(off), Some(on)) = (
            find(sums, bench, "troupe", off),
            find(sums, bench, "troupe", on),
        ) {
            let x = on.per_sec / off.per_sec;
            println!(
                "  {bench}: troupe with metrics and tracing on / off = {x:.3}x (target >= {LOCAL_TARGET}x, issue 18): {}",
                verdict(x >= LOCAL_TARGET)
            );
        }
    }
    if let (Some(t), Some(r)) = (
        find(sums, "drain", "troupe", "held"),
        find(sums, "drain", "ractor", "held"),
    ) {
        println!(
            "  drain (handling alone, the casts queued while the actor was held): troupe / ractor = {:.3}x (no target; the cast target above covers it)",
            t.per_sec / r.per_sec
        );
    }
    if let Some(t) = find(sums, "call", "troupe", "call_timeout") {
        if let Some(r) = find(sums, "call", "ractor", "call") {
            let x = t.per_sec / r.per_sec;
            println!(
                "  call: troupe (timed) / ractor call! (untimed) = {x:.3}x (target >= {LOCAL_TARGET}x): {}",
                verdict(x >= LOCAL_TARGET)
            );
            if let Some(u) = find(sums, "call", "troupe", "call_untimed") {
                let x = u.per_sec / r.per_sec;
                println!(
                    "  call: troupe untimed (Duration::MAX) / ractor call! (untimed) = {x:.3}x (target >= {LOCAL_TARGET}x): {}",
                    verdict(x >= LOCAL_TARGET)
                );
            }
        }
        if let Some(r) = find(sums, "call", "ractor", "call_timeout") {
            let x = t.per_sec / r.per_sec;
            println!(
                "  call: troupe / ractor call_t! (same timeout) = {x:.3}x (target >= {LOCAL_TARGET}x): {}",
                verdict(x >= LOCAL_TARGET)
            );
        }
    }
    if let (Some(t), Some(r)) = (
        find(sums, "scale", "troupe", "supervised_named"),
        find(sums, "scale", "ractor", "linked_named"),
    ) {
        if let (Some(tb), Some(rb)) = (t.bytes_per_actor, r.bytes_per_actor) {
            println!(
                "  memory per idle actor: troupe {tb:.0} B, ractor (named) {rb:.0} B, {:+.0} B (target <= +{MEMORY_TARGET_BYTES:.0} B): {}",
                tb - rb,
                verdict(tb - rb <= MEMORY_TARGET_BYTES)
            );
        }
        println!(
            "  spawn rate: troupe / ractor (named) = {:.3}x (no target)",
            t.per_sec / r.per_sec
        );
    }
}

fn main() -> anyhow::Result<()> {
    let args = parse_args()?;

    if let Some(system) = &args.child {
        let bench = args.bench.as_deref().context("--child needs --bench")?;
        let variant = args.variant.as_deref().context("--child needs --variant")?;
        let n = args.n.context("--child needs --n")?;
        let sample = run_in_child(bench, system, variant, n, args.limit)?;
        println!("RESULT {}", serde_json::to_string(&sample)?);
        return Ok(());
    }

    let div = if args.quick { 10 } else { 1 };
    let count = |bench: &str| match bench {
        "cast" | "drain" => CAST_N / div,
        "call" => CALL_M / div,
        _ => SCALE_N / div,
    };
    eprintln!(
        "local-bench: {} rounds, cast N = {}, call M = {}, scale N = {}, 2 tokio workers",
        args.rounds,
        count("cast"),
        count("call"),
        count("scale")
    );
    let mut samples = Vec::new();
    let mut failures = Vec::new();
    for round in 1..=args.rounds {
        for bench in ["cast", "drain", "call", "scale"] {
            if !args.only.iter().any(|o| o == bench) {
                continue;
            }
            let mut entries: Vec<_> = PLAN.iter().filter(|(b, _, _)| *b == bench).collect();
            if round % 2 == 0 {
                entries.reverse();
            }
            for (bench, system, variant) in entries {
                eprintln!("round {round}: {bench} {system} {variant} ...");
                match spawn_child(bench, system, variant, count(bench), args.limit) {
                    Ok(mut s) => {
                        s.round = Some(round);
                        println!("{}", serde_json::to_string(&s)?);
                        samples.push(s);
                    }
                    Err(e) => {
                        eprintln!("  FAILED: {e:#}");
                        failures.push(format!("round {round} {bench}/{system}/{variant}: {e:#}"));
                    }
                }
            }
        }
    }
    report(&summarize(&samples));
    if !failures.is_empty() {
        println!();
        println!("failures:");
        for f in &failures {
            println!("  {f}");
        }
        bail!("{} measurement(s) failed", failures.len());
    }
    Ok(())
}
