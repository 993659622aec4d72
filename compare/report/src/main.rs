//! compare-report: turns the comparison scripts' raw results into one report
//!
//! ```text
//! compare-report [--input target/compare] [--charts docs/benchmarks]
//! ```
//!
//! Reads the JSON (an array, or one object per line) each script wrote into the input
//! directory — `local.json`, `remote.json` (with `remote_scale`'s rows: the ring of three nodes
//! in 1, 2 and 3 processes), `http.json` (with shop's rows), `resp.json`, `db.json` —
//! and writes:
//!
//! - `results.json`: every measurement as `{pair, metric, system, value, unit}` (medians where a
//!   script ran rounds), and the headline comparisons as `{comparison, troupe, peer, ratio,
//!   target, meets}`;
//! - `results.md`: the headline table;
//! - `ratios.svg` and one `PAIR.svg` per pair in the charts directory, and `scale_nodes.svg`:
//!   the same work in 1, 2 and 3 processes (the remote ring, and shop's gateway), which has no
//!   peer and so no ratio.
//!
//! A file that is missing is skipped (its pair did not run); a line it cannot read is reported
//! on standard error and skipped.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;
use plotters::prelude::*;
use serde_json::{Value, json};

/// One measurement
#[derive(Debug, Clone)]
struct Row {
    pair: &'static str,
    metric: String,
    system: String,
    value: f64,
    unit: &'static str,
}

/// troupe against a peer, as a ratio where above 1 is better for troupe
#[derive(Debug, Clone)]
struct Headline {
    comparison: String,
    troupe: f64,
    peer: f64,
    unit: &'static str,
    /// troupe ÷ peer for throughputs; peer ÷ troupe for times and sizes
    ratio: f64,
    target: f64,
}

fn read_objects(path: &Path) -> Vec<Value> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    let trimmed = text.trim_start();
    if trimmed.starts_with('[') {
        match serde_json::from_str::<Vec<Value>>(trimmed) {
            Ok(v) => return v,
            Err(e) => {
                eprintln!("{}: {e}", path.display());
                return Vec::new();
            }
        }
    }
    text.lines()
        .filter(|l| l.trim_start().starts_with('{'))
        .filter_map(|l| match serde_json::from_str(l) {
            Ok(v) => Some(v),
            Err(e) => {
                eprintln!("{}: skipped a line: {e}", path.display());
                None
            }
        })
        .collect()
}

fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

fn f(v: &Value, key: &str) -> Option<f64> {
    v.get(key).and_then(Value::as_f64)
}

fn median(mut xs: Vec<f64>) -> Option<f64> {
    if xs.is_empty() {
        return None;
    }
    xs.sort_by(|a, b| a.total_cmp(b));
    let mid = xs.len() / 2;
    Some(if xs.len().is_multiple_of(2) {
        (xs[mid - 1] + xs[mid]) / 2.0
    } else {
        xs[mid]
    })
}

/// Groups `(pair, metric, system, unit) → values` and keeps their medians
fn medians(raw: Vec<Row>) -> Vec<Row> {
    let mut groups: BTreeMap<(&'static str, String, String, &'static str), Vec<f64>> =
        BTreeMap::new();
    for r in raw {
        groups
            .entry((r.pair, r.metric, r.system, r.unit))
            .or_default()
            .push(r.value);
    }
    groups
        .into_iter()
        .filter_map(|((pair, metric, system, unit), values)| {
            Some(Row {
                pair,
                metric,
                system,
                value: median(values)?,
                unit,
            })
        })
        .collect()
}

fn local_rows(objs: &[Value]) -> Vec<Row> {
    let mut out = Vec::new();
    for o in objs.iter().filter(|o| s(o, "stat") == "median") {
        let bench = s(o, "bench");
        let variant = s(o, "variant");
        let system = if variant.is_empty() || variant == "default" {
            s(o, "system").to_string()
        } else {
            format!("{} ({variant})", s(o, "system"))
        };
        match bench {
            "cast" | "call" | "drain" => {
                if let Some(v) = f(o, "per_sec") {
                    let metric = match bench {
                        "cast" => "casts/s",
                        // the actor held while the casts queue, then timed handling them alone
                        "drain" => "queued casts handled/s",
                        _ => "calls/s",
                    };
                    out.push(Row {
                        pair: "local",
                        metric: metric.into(),
                        system,
                        value: v,
                        unit: "/s",
                    });
                }
            }
            "scale" => {
                if let Some(v) = f(o, "per_sec") {
                    out.push(Row {
                        pair: "scale",
                        metric: "spawns/s".into(),
                        system: system.clone(),
                        value: v,
                        unit: "/s",
                    });
                }
                if let Some(v) = f(o, "bytes_per_actor") {
                    out.push(Row {
                        pair: "scale",
                        metric: "bytes per idle actor".into(),
                        system,
                        value: v,
                        unit: "B",
                    });
                }
            }
            _ => {}
        }
    }
    out
}

/// troupe's remote side with `spin_after_traffic`, 2 tokio workers per process.
const SPIN: &str = "troupe spin";
/// The same with 1 tokio worker per process.
const SPIN_ONE_WORKER: &str = "troupe spin 1 worker";

/// Raw quinn with one task between the connection and the code on each side (`--hop`).
const QUINN_HOP: &str = "quinn_raw_hop";

fn remote_rows(objs: &[Value]) -> Vec<Row> {
    let mut out = Vec::new();
    for o in objs.iter().filter(|o| s(o, "bench") == "remote_messaging") {
        let system = match (s(o, "system"), f(o, "spin_us"), f(o, "workers")) {
            // troupe with NetConfig::spin_after_traffic on
            ("", Some(spin), Some(w)) if spin > 0.0 && w == 1.0 => SPIN_ONE_WORKER.to_string(),
            ("", Some(spin), _) if spin > 0.0 => SPIN.to_string(),
            ("", _, _) => "troupe".to_string(),
            (other, _, _) => other.to_string(),
        };
        // `--hop` changes only the round trips: its frames are raw quinn's again
        let frames = f(o, "frames_per_sec").filter(|_| system != QUINN_HOP);
        if let Some(v) = f(o, "cast_per_sec").or(frames) {
            out.push(Row {
                pair: "remote",
                metric: "casts/s".into(),
                system: system.clone(),
                value: v,
                unit: "/s",
            });
        }
        if let Some(v) = f(o, "call_p50_us").or_else(|| f(o, "rtt_p50_us")) {
            out.push(Row {
                pair: "remote",
                metric: "call p50".into(),
                system,
                value: v,
                unit: "µs",
            });
        }
    }
    out
}

/// The metric of `remote_scale`'s rows: a ring of three nodes, each casting to the next.
const RING_METRIC: &str = "ring casts/s (3 nodes)";

/// "1 process", "2 processes", ...
fn processes_label(n: usize) -> String {
    if n == 1 {
        "1 process".into()
    } else {
        format!("{n} processes")
    }
}

/// `remote_scale`: the same three nodes in 1, 2 and 3 processes (scale rows, no peer)
fn remote_scale_rows(objs: &[Value]) -> Vec<Row> {
    objs.iter()
        .filter(|o| s(o, "bench") == "remote_scale")
        .filter_map(|o| {
            let processes = o.get("processes").and_then(Value::as_u64)?;
            Some(Row {
                pair: "remote",
                metric: RING_METRIC.into(),
                system: format!("troupe, {}", processes_label(processes as usize)),
                value: f(o, "casts_per_s")?,
                unit: "/s",
            })
        })
        .collect()
}

fn http_rows(objs: &[Value], pair: &'static str) -> Vec<Row> {
    let mut out = Vec::new();
    for o in objs {
        let named = if s(o, "system").is_empty() {
            s(o, "server")
        } else {
            s(o, "system")
        };
        let system = match (named, s(o, "layout")) {
            ("", "") => continue,
            ("", layout) => format!("shop {layout}"),
            (system, _) => system.to_string(),
        };
        if let Some(v) = f(o, "requests_per_sec").or_else(|| f(o, "rps")) {
            out.push(Row {
                pair,
                metric: "requests/s".into(),
                system,
                value: v,
                unit: "/s",
            });
        }
    }
    out
}

fn resp_rows(objs: &[Value]) -> Vec<Row> {
    objs.iter()
        .filter(|o| s(o, "bench") == "resp")
        .filter_map(|o| {
            let pipeline = f(o, "pipeline")?;
            Some(Row {
                pair: "resp",
                metric: format!("{} -P {pipeline}", s(o, "test")),
                system: s(o, "system").to_string(),
                value: f(o, "rps")?,
                unit: "/s",
            })
        })
        .collect()
}

fn db_rows(objs: &[Value]) -> Vec<Row> {
    objs.iter()
        .filter_map(|o| {
            let system = match s(o, "system") {
                "etcd" => "etcd".to_string(),
                sys => format!("{sys} {}", s(o, "mode")),
            };
            Some(Row {
                pair: "db",
                metric: format!("{}s/s", s(o, "phase")),
                system,
                value: f(o, "ops_per_sec")?,
                unit: "/s",
            })
        })
        .collect()
}

fn find(rows: &[Row], pair: &str, metric: &str, system: &str) -> Option<f64> {
    rows.iter()
        .find(|r| r.pair == pair && r.metric == metric && r.system == system)
        .map(|r| r.value)
}

/// The value of the first system starting with `prefix`
fn find_prefix(rows: &[Row], pair: &str, metric: &str, prefix: &str) -> Option<(String, f64)> {
    rows.iter()
        .find(|r| r.pair == pair && r.metric == metric && r.system.starts_with(prefix))
        .map(|r| (r.system.clone(), r.value))
}

fn headlines(rows: &[Row]) -> Vec<Headline> {
    let mut out = Vec::new();
    let mut push = |comparison: String,
                    troupe: Option<f64>,
                    peer: Option<f64>,
                    unit,
                    higher_better: bool,
                    target: f64| {
        if let (Some(t), Some(p)) = (troupe, peer)
            && t > 0.0
            && p > 0.0
        {
            let ratio = if higher_better { t / p } else { p / t };
            out.push(Headline {
                comparison,
                troupe: t,
                peer: p,
                unit,
                ratio,
                target,
            });
        }
    };
    push(
        "local casts/s: troupe vs ractor".into(),
        find_prefix(rows, "local", "casts/s", "troupe").map(|(_, v)| v),
        find(rows, "local", "casts/s", "ractor (cast)"),
        "/s",
        true,
        0.9,
    );
    let troupe_calls = find(rows, "local", "calls/s", "troupe (call_timeout)");
    push(
        "local calls/s: troupe (with a 30 s timeout) vs ractor call! (untimed)".into(),
        troupe_calls,
        find(rows, "local", "calls/s", "ractor (call)"),
        "/s",
        true,
        0.9,
    );
    push(
        "local calls/s: troupe untimed (Duration::MAX) vs ractor call! (untimed)".into(),
        find(rows, "local", "calls/s", "troupe (call_untimed)"),
        find(rows, "local", "calls/s", "ractor (call)"),
        "/s",
        true,
        0.9,
    );
    push(
        "local calls/s: troupe vs ractor call_t! (same timeout)".into(),
        troupe_calls,
        find(rows, "local", "calls/s", "ractor (call_timeout)"),
        "/s",
        true,
        0.9,
    );
    let troupe_bytes = find_prefix(rows, "scale", "bytes per idle actor", "troupe").map(|(_, v)| v);
    let ractor_bytes = find_prefix(rows, "scale", "bytes per idle actor", "ractor").map(|(_, v)| v);
    if let (Some(t), Some(r)) = (troupe_bytes, ractor_bytes) {
        // Target: at most ractor's + 1 KB, as the ratio (ractor + 1024) ÷ troupe ≥ 1.
        push(
            "memory per idle actor: troupe vs ractor + 1 KB".into(),
            Some(t),
            Some(r + 1024.0),
            "B",
            false,
            1.0,
        );
    }
    push(
        "remote casts/s: troupe (QUIC) vs ractor_cluster (TCP)".into(),
        find(rows, "remote", "casts/s", "troupe"),
        find(rows, "remote", "casts/s", "ractor_cluster"),
        "/s",
        true,
        2.0,
    );
    push(
        "remote call p50: troupe vs the 50 µs target".into(),
        find(rows, "remote", "call p50", "troupe"),
        Some(50.0),
        "µs",
        false,
        1.0,
    );
    push(
        "remote call p50: troupe with spin_after_traffic vs the 50 µs target".into(),
        find(rows, "remote", "call p50", SPIN),
        Some(50.0),
        "µs",
        false,
        1.0,
    );
    push(
        "remote call p50: troupe, spin_after_traffic, 1 worker per process vs the 50 µs target"
            .into(),
        find(rows, "remote", "call p50", SPIN_ONE_WORKER),
        Some(50.0),
        "µs",
        false,
        1.0,
    );
    // issue 17: troupe's call p50 at most 1.1x raw quinn's round trip in the same run, as
    // the ratio quinn ÷ troupe ≥ 1 ÷ 1.1
    push(
        "remote call p50: troupe vs raw quinn's round trip (troupe ≤ 1.1x of it)".into(),
        find(rows, "remote", "call p50", "troupe"),
        find(rows, "remote", "call p50", "quinn_raw"),
        "µs",
        false,
        1.0 / 1.1,
    );
    // what any mailbox design pays on quinn: a reader task between the connection and the
    // actor, and between the connection and the caller
    push(
        "remote call p50: troupe vs raw quinn with one task hop per side (troupe ≤ 1.1x of it)"
            .into(),
        find(rows, "remote", "call p50", "troupe"),
        find(rows, "remote", "call p50", QUINN_HOP),
        "µs",
        false,
        1.0 / 1.1,
    );
    push(
        "remote call p50: troupe vs ractor_cluster".into(),
        find(rows, "remote", "call p50", "troupe"),
        find(rows, "remote", "call p50", "ractor_cluster"),
        "µs",
        false,
        1.0,
    );
    push(
        "HTTP requests/s: troupe gateway vs nginx".into(),
        find_prefix(rows, "http", "requests/s", "troupe").map(|(_, v)| v),
        find_prefix(rows, "http", "requests/s", "nginx").map(|(_, v)| v),
        "/s",
        true,
        1.0,
    );
    let resp_metrics: Vec<String> = rows
        .iter()
        .filter(|r| r.pair == "resp")
        .map(|r| r.metric.clone())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    for metric in resp_metrics {
        push(
            format!("RESP {metric}: troupe vs redis-server"),
            find(rows, "resp", &metric, "troupe"),
            find(rows, "resp", &metric, "redis"),
            "/s",
            true,
            1.0,
        );
    }
    for metric in ["puts/s", "gets/s"] {
        push(
            format!("DB {metric}: troupe (majority) vs etcd"),
            find(rows, "db", metric, "troupe majority"),
            find(rows, "db", metric, "etcd"),
            "/s",
            true,
            1.0,
        );
    }
    out
}

/// A target ratio as the table prints it: one decimal where that is exact (`1.0`, `0.9`),
/// two otherwise (`0.91`).
fn target_text(target: f64) -> String {
    if ((target * 10.0).round() - target * 10.0).abs() < 1e-9 {
        format!("{target:.1}")
    } else {
        format!("{target:.2}")
    }
}

fn fmt_value(v: f64, unit: &str) -> String {
    match unit {
        "/s" if v >= 1000.0 => format!("{:.0}k/s", v / 1000.0),
        "/s" => format!("{v:.0}/s"),
        "µs" => format!("{v:.1} µs"),
        "B" => format!("{v:.0} B"),
        _ => format!("{v:.2} {unit}"),
    }
}

fn markdown(heads: &[Headline], rows: &[Row]) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "| comparison | troupe | peer | ratio (>1: troupe better) | target | |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|");
    for h in heads {
        let verdict = if h.ratio >= h.target {
            "meets"
        } else {
            "**misses**"
        };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {:.2}x | ≥ {}x | {verdict} |",
            h.comparison,
            fmt_value(h.troupe, h.unit),
            fmt_value(h.peer, h.unit),
            h.ratio,
            target_text(h.target)
        );
    }
    let _ = writeln!(md, "\nAll measurements (medians):\n");
    let _ = writeln!(md, "| pair | metric | system | value |");
    let _ = writeln!(md, "|---|---|---|---|");
    for r in rows {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} |",
            r.pair,
            r.metric,
            r.system,
            fmt_value(r.value, r.unit)
        );
    }
    md
}

type DrawResult = Result<(), Box<dyn std::error::Error>>;

fn ratio_chart(path: &Path, heads: &[Headline]) -> DrawResult {
    let height = 80 + 34 * heads.len() as u32;
    let root = SVGBackend::new(path, (960, height)).into_drawing_area();
    root.fill(&WHITE)?;
    let max = heads
        .iter()
        .map(|h| h.ratio.max(h.target))
        .fold(1.0f64, f64::max)
        * 1.15;
    let n = heads.len() as i32;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "troupe ÷ peer (above 1: troupe better; | marks the target)",
            ("sans-serif", 18),
        )
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(360)
        .build_cartesian_2d(0f64..max, (0..n).into_segmented())?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(heads.len())
        .y_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => heads
                .get(*i as usize)
                .map(|h| h.comparison.clone())
                .unwrap_or_default(),
            _ => String::new(),
        })
        .x_desc("ratio")
        .draw()?;
    for (i, h) in heads.iter().enumerate() {
        let i = i as i32;
        let color = if h.ratio >= h.target {
            GREEN.mix(0.7)
        } else {
            RED.mix(0.7)
        };
        chart.draw_series(std::iter::once(Rectangle::new(
            [
                (0.0, SegmentValue::Exact(i)),
                (h.ratio, SegmentValue::Exact(i + 1)),
            ],
            color.filled(),
        )))?;
        chart.draw_series(std::iter::once(PathElement::new(
            vec![
                (h.target, SegmentValue::Exact(i)),
                (h.target, SegmentValue::Exact(i + 1)),
            ],
            BLACK.stroke_width(2),
        )))?;
        chart.draw_series(std::iter::once(Text::new(
            format!("{:.2}x", h.ratio),
            (h.ratio + max * 0.01, SegmentValue::CenterOf(i)),
            ("sans-serif", 14),
        )))?;
    }
    root.present()?;
    Ok(())
}

/// How many processes shop ran in, from its row's system ("shop-two-processes" from
/// http_compare.sh, "shop two-processes" from shop_bench.sh's layout)
fn shop_processes(system: &str) -> Option<usize> {
    let layout = system.strip_prefix("shop")?.trim_start_matches(['-', ' ']);
    match layout {
        "one-process" => Some(1),
        "two-processes" => Some(2),
        "three-processes" => Some(3),
        _ => None,
    }
}

/// The rows of `scale_nodes.svg`: the remote ring and shop's gateway, each in 1, 2 and 3
/// processes, one panel each
fn scale_nodes_rows(rows: &[Row]) -> Vec<Row> {
    let mut out: Vec<Row> = rows
        .iter()
        .filter(|r| r.pair == "remote" && r.metric == RING_METRIC)
        .map(|r| Row {
            metric: "remote ring casts/s (3 nodes, QUIC)".into(),
            ..r.clone()
        })
        .collect();
    let mut shop: Vec<(usize, &Row)> = rows
        .iter()
        .filter(|r| r.pair == "http" && r.metric == "requests/s")
        .filter_map(|r| Some((shop_processes(&r.system)?, r)))
        .collect();
    shop.sort_by_key(|(n, _)| *n);
    out.extend(shop.into_iter().map(|(n, r)| Row {
        metric: "shop GET /items/bench requests/s (HTTP)".into(),
        system: format!("shop, {}", processes_label(n)),
        ..r.clone()
    }));
    out
}

/// One chart per metric of `pair`: a bar per system
fn pair_chart(path: &Path, pair: &str, rows: &[Row]) -> DrawResult {
    let metrics: Vec<String> = rows
        .iter()
        .map(|r| r.metric.clone())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let panel_h = 60
        + 30 * rows
            .iter()
            .filter(|r| r.metric == metrics[0])
            .count()
            .max(2) as u32;
    let per_metric: Vec<Vec<&Row>> = metrics
        .iter()
        .map(|m| rows.iter().filter(|r| &r.metric == m).collect())
        .collect();
    let total_h: u32 = per_metric
        .iter()
        .map(|rs| 60 + 30 * rs.len().max(1) as u32)
        .sum();
    let _ = panel_h;
    let root = SVGBackend::new(path, (900, total_h.max(120))).into_drawing_area();
    root.fill(&WHITE)?;
    let heights: Vec<u32> = per_metric
        .iter()
        .map(|rs| 60 + 30 * rs.len().max(1) as u32)
        .collect();
    let mut rest = root.clone();
    for (m, rs) in metrics.iter().zip(&per_metric) {
        let h = 60 + 30 * rs.len().max(1) as u32;
        let (area, below) = rest.split_vertically(h);
        rest = below;
        let max = rs.iter().map(|r| r.value).fold(0.0f64, f64::max) * 1.2;
        let n = rs.len() as i32;
        let unit = rs.first().map_or("", |r| r.unit);
        let mut chart = ChartBuilder::on(&area)
            .caption(format!("{pair}: {m}"), ("sans-serif", 16))
            .margin(8)
            .x_label_area_size(24)
            .y_label_area_size(260)
            .build_cartesian_2d(0f64..max.max(1.0), (0..n).into_segmented())?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(rs.len())
            .y_label_formatter(&|v| match v {
                SegmentValue::CenterOf(i) => rs
                    .get(*i as usize)
                    .map(|r| r.system.clone())
                    .unwrap_or_default(),
                _ => String::new(),
            })
            .draw()?;
        for (i, r) in rs.iter().enumerate() {
            let i = i as i32;
            let color = if r.system.starts_with("troupe") || r.system.starts_with("shop") {
                BLUE.mix(0.7)
            } else {
                RGBColor(150, 150, 150).mix(0.8)
            };
            chart.draw_series(std::iter::once(Rectangle::new(
                [
                    (0.0, SegmentValue::Exact(i)),
                    (r.value, SegmentValue::Exact(i + 1)),
                ],
                color.filled(),
            )))?;
            chart.draw_series(std::iter::once(Text::new(
                fmt_value(r.value, unit),
                (r.value + max * 0.01, SegmentValue::CenterOf(i)),
                ("sans-serif", 13),
            )))?;
        }
    }
    let _ = heights;
    root.present()?;
    Ok(())
}

fn flag(args: &[String], name: &str, default: &str) -> PathBuf {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map_or_else(|| PathBuf::from(default), PathBuf::from)
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let input = flag(&args, "--input", "target/compare");
    let charts = flag(&args, "--charts", "docs/benchmarks");
    let mut raw = Vec::new();
    raw.extend(local_rows(&read_objects(&input.join("local.json"))));
    let remote = read_objects(&input.join("remote.json"));
    raw.extend(remote_rows(&remote));
    raw.extend(remote_scale_rows(&remote));
    raw.extend(http_rows(&read_objects(&input.join("http.json")), "http"));
    raw.extend(resp_rows(&read_objects(&input.join("resp.json"))));
    raw.extend(db_rows(&read_objects(&input.join("db.json"))));
    let rows = medians(raw);
    let heads = headlines(&rows);

    let results = json!({
        "measurements": rows.iter().map(|r| json!({
            "pair": r.pair, "metric": r.metric, "system": r.system, "value": r.value, "unit": r.unit,
        })).collect::<Vec<_>>(),
        "comparisons": heads.iter().map(|h| json!({
            "comparison": h.comparison, "troupe": h.troupe, "peer": h.peer, "unit": h.unit,
            "ratio": h.ratio, "target": h.target, "meets": h.ratio >= h.target,
        })).collect::<Vec<_>>(),
    });
    std::fs::write(
        input.join("results.json"),
        serde_json::to_string_pretty(&results)?,
    )
    .context("write results.json")?;
    let md = markdown(&heads, &rows);
    std::fs::write(input.join("results.md"), &md).context("write results.md")?;
    std::fs::create_dir_all(&charts).context("create the charts directory")?;
    if !heads.is_empty() {
        ratio_chart(&charts.join("ratios.svg"), &heads)
            .map_err(|e| anyhow::anyhow!("ratios.svg: {e}"))?;
    }
    let pairs: std::collections::BTreeSet<&str> = rows.iter().map(|r| r.pair).collect();
    for pair in pairs {
        let of_pair: Vec<Row> = rows.iter().filter(|r| r.pair == pair).cloned().collect();
        pair_chart(&charts.join(format!("{pair}.svg")), pair, &of_pair)
            .map_err(|e| anyhow::anyhow!("{pair}.svg: {e}"))?;
    }
    let across = scale_nodes_rows(&rows);
    if !across.is_empty() {
        pair_chart(
            &charts.join("scale_nodes.svg"),
            "1, 2, 3 processes",
            &across,
        )
        .map_err(|e| anyhow::anyhow!("scale_nodes.svg: {e}"))?;
    }
    print!("{md}");
    Ok(())
}
