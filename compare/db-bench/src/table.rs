//! The markdown tables `db_compare.sh` prints: every run, then the mean per system and mode,
//! each with its ratio to etcd's mean (linearizable gets) for writes and reads.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;
use serde_json::Value;

/// One run: its put and get phase lines
#[derive(Default)]
struct Run {
    tag: String,
    system: String,
    mode: String,
    put: Option<Value>,
    get: Option<Value>,
}

fn num(v: Option<&Value>, field: &str) -> f64 {
    v.and_then(|v| v.get(field))
        .and_then(Value::as_f64)
        .unwrap_or(0.0)
}

fn text(v: &Value, field: &str) -> String {
    v.get(field)
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

fn mean(xs: &[f64]) -> f64 {
    if xs.is_empty() {
        0.0
    } else {
        xs.iter().sum::<f64>() / xs.len() as f64
    }
}

fn ratio(x: f64, reference: f64) -> String {
    if reference > 0.0 {
        format!("{:.2}x", x / reference)
    } else {
        "-".into()
    }
}

fn ms(us: f64) -> String {
    format!("{:.1}", us / 1000.0)
}

fn thousands(x: f64) -> String {
    let n = x.round() as u64;
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn read_lines(file: &Path) -> anyhow::Result<Vec<Value>> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    if text.trim_start().starts_with('[') {
        let all: Value = serde_json::from_str(&text)?;
        return Ok(all.as_array().cloned().unwrap_or_default());
    }
    text.lines()
        .filter(|l| l.trim_start().starts_with('{'))
        .map(|l| Ok(serde_json::from_str(l)?))
        .collect()
}

/// The tables for `file`
pub fn markdown(file: &Path) -> anyhow::Result<String> {
    let mut runs: Vec<Run> = Vec::new();
    for line in read_lines(file)? {
        let (tag, system, mode) = (
            text(&line, "run"),
            text(&line, "system"),
            text(&line, "mode"),
        );
        let at = match runs
            .iter()
            .position(|r| r.tag == tag && r.system == system && r.mode == mode)
        {
            Some(at) => at,
            None => {
                runs.push(Run {
                    tag,
                    system,
                    mode,
                    ..Run::default()
                });
                runs.len() - 1
            }
        };
        match text(&line, "phase").as_str() {
            "put" => runs[at].put = Some(line),
            "get" => runs[at].get = Some(line),
            _ => {}
        }
    }
    let etcd = |field_phase: fn(&Run) -> Option<&Value>| {
        mean(
            &runs
                .iter()
                .filter(|r| r.system == "etcd" && r.mode == "raft")
                .map(|r| num(field_phase(r), "ops_per_sec"))
                .collect::<Vec<_>>(),
        )
    };
    let (etcd_w, etcd_r) = (etcd(|r| r.put.as_ref()), etcd(|r| r.get.as_ref()));

    let mut out = String::new();
    writeln!(
        out,
        "| run | system | mode | writes/s | write p50 / p99 ms | reads/s | read p50 / p99 ms | writes vs etcd | reads vs etcd | errors (put / get) |"
    )?;
    writeln!(out, "|---|---|---|---:|---:|---:|---:|---:|---:|---:|")?;
    for r in &runs {
        let (w, g) = (r.put.as_ref(), r.get.as_ref());
        writeln!(
            out,
            "| {} | {} | {} | {} | {} / {} | {} | {} / {} | {} | {} | {} / {} |",
            r.tag,
            r.system,
            r.mode,
            thousands(num(w, "ops_per_sec")),
            ms(num(w, "p50_us")),
            ms(num(w, "p99_us")),
            thousands(num(g, "ops_per_sec")),
            ms(num(g, "p50_us")),
            ms(num(g, "p99_us")),
            ratio(num(w, "ops_per_sec"), etcd_w),
            ratio(num(g, "ops_per_sec"), etcd_r),
            num(w, "errors"),
            num(g, "errors"),
        )?;
    }

    // Means per system and mode, in first-seen order.
    let mut kinds: Vec<(String, String)> = Vec::new();
    for r in &runs {
        let kind = (r.system.clone(), r.mode.clone());
        if !kinds.contains(&kind) {
            kinds.push(kind);
        }
    }
    writeln!(out)?;
    writeln!(
        out,
        "| system | mode | runs | writes/s (mean) | reads/s (mean) | writes vs etcd | reads vs etcd |"
    )?;
    writeln!(out, "|---|---|---:|---:|---:|---:|---:|")?;
    for (system, mode) in kinds {
        let of: Vec<&Run> = runs
            .iter()
            .filter(|r| r.system == system && r.mode == mode)
            .collect();
        let w = mean(
            &of.iter()
                .map(|r| num(r.put.as_ref(), "ops_per_sec"))
                .collect::<Vec<_>>(),
        );
        let g = mean(
            &of.iter()
                .map(|r| num(r.get.as_ref(), "ops_per_sec"))
                .collect::<Vec<_>>(),
        );
        writeln!(
            out,
            "| {system} | {mode} | {} | {} | {} | {} | {} |",
            of.len(),
            thousands(w),
            thousands(g),
            ratio(w, etcd_w),
            ratio(g, etcd_r),
        )?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0.0), "0");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(thousands(6336.4), "6,336");
        assert_eq!(thousands(1_234_567.0), "1,234,567");
    }
}
