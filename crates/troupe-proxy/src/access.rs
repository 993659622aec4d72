//! Access logs: a line per request, in the combined log format (Apache's and nginx's default,
//! what log analysers read) or as JSON lines, written by a task of their own so that a slow or
//! full disk never holds a request. Lines wait in a bounded queue; when it is full, a line is
//! dropped and counted (`troupe_proxy_access_log_dropped_total`) rather than queued without end.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

/// Lines waiting to be written, at most.
const QUEUE: usize = 16_384;

/// How each line is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccessLogFormat {
    /// `127.0.0.1 - - [05/Dec/2026:23:40:01 +0000] "GET /x HTTP/1.1" 200 12 "-" "curl/8.5"`:
    /// the combined log format, times in UTC
    Combined,
    /// One JSON object per line: `time` (RFC 3339, UTC), `remote`, `method`, `target`,
    /// `protocol`, `status`, `bytes`, `referer`, `user_agent`, `duration_ms`, `route`
    Json,
}

/// An access-log format name other than `combined` and `json`.
#[derive(Debug, thiserror::Error)]
#[error("unknown access log format {0:?}: use combined or json")]
pub struct UnknownAccessLogFormat(String);

impl std::str::FromStr for AccessLogFormat {
    type Err = UnknownAccessLogFormat;

    /// `combined` or `json`, as a command-line flag names them.
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        match name {
            "combined" => Ok(Self::Combined),
            "json" => Ok(Self::Json),
            other => Err(UnknownAccessLogFormat(other.to_string())),
        }
    }
}

/// Where lines go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AccessLogTo {
    /// The process's standard output
    Stdout,
    /// A file, appended to (created if missing)
    File(PathBuf),
}

impl AccessLogTo {
    /// What an `--access-log PATH` flag means: `-` is standard output, anything else a file.
    pub fn from_flag(path: &std::path::Path) -> Self {
        if path.as_os_str() == "-" {
            Self::Stdout
        } else {
            Self::File(path.to_path_buf())
        }
    }
}

/// An access log: its format and where it goes. Set it with
/// [`Proxy::access_log`](crate::Proxy::access_log).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessLog {
    /// How each line is written
    pub format: AccessLogFormat,
    /// Where lines go
    pub to: AccessLogTo,
}

impl AccessLog {
    /// The combined log format, to `to`.
    pub fn combined(to: AccessLogTo) -> Self {
        Self {
            format: AccessLogFormat::Combined,
            to,
        }
    }

    /// JSON lines, to `to`.
    pub fn json(to: AccessLogTo) -> Self {
        Self {
            format: AccessLogFormat::Json,
            to,
        }
    }
}

/// One request, as its access-log line tells it.
#[derive(Clone, Debug)]
pub struct Entry<'a> {
    /// The client's address
    pub remote: IpAddr,
    /// When the request arrived
    pub time: SystemTime,
    /// Its method
    pub method: &'a str,
    /// Its target as sent (path and query)
    pub target: &'a str,
    /// `HTTP/1.1`, `HTTP/2.0`, ...
    pub protocol: &'a str,
    /// The status answered
    pub status: u16,
    /// The response body's length
    pub bytes: u64,
    /// Its `referer` header
    pub referer: Option<&'a str>,
    /// Its `user-agent` header
    pub user_agent: Option<&'a str>,
    /// From its head to its response
    pub duration: Duration,
    /// The target it was routed to, `-` if none
    pub route: &'a str,
}

impl Entry<'_> {
    /// The line, without its newline.
    pub fn line(&self, format: AccessLogFormat) -> String {
        match format {
            AccessLogFormat::Combined => self.combined(),
            AccessLogFormat::Json => self.json(),
        }
    }

    fn combined(&self) -> String {
        let (date, (h, m, s)) = civil(self.time);
        let (year, month, day) = date;
        const MONTHS: [&str; 12] = [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ];
        let month = MONTHS[(month as usize).saturating_sub(1).min(11)];
        let quoted = |v: Option<&str>| v.map_or_else(|| "-".to_string(), escape);
        format!(
            "{} - - [{day:02}/{month}/{year}:{h:02}:{m:02}:{s:02} +0000] \"{} {} {}\" {} {} \"{}\" \"{}\"",
            self.remote,
            escape(self.method),
            escape(self.target),
            escape(self.protocol),
            self.status,
            self.bytes,
            quoted(self.referer),
            quoted(self.user_agent),
        )
    }

    fn json(&self) -> String {
        let ((year, month, day), (h, m, s)) = civil(self.time);
        let millis = self
            .time
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_millis());
        serde_json::json!({
            "time": format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{millis:03}Z"),
            "remote": self.remote.to_string(),
            "method": self.method,
            "target": self.target,
            "protocol": self.protocol,
            "status": self.status,
            "bytes": self.bytes,
            "referer": self.referer,
            "user_agent": self.user_agent,
            "duration_ms": self.duration.as_secs_f64() * 1000.0,
            "route": self.route,
        })
        .to_string()
    }
}

/// A field of a combined-format line: `"` and `\` escaped with a backslash, anything outside
/// printable ASCII as `\xHH` (as nginx writes them), so a line stays one parseable line.
fn escape(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    for byte in field.bytes() {
        match byte {
            b'"' | b'\\' => {
                out.push('\\');
                out.push(byte as char);
            }
            0x20..=0x7e => out.push(byte as char),
            _ => {
                let _ = write!(out, "\\x{byte:02X}");
            }
        }
    }
    out
}

/// `time` in UTC as ((year, month, day), (hour, minute, second)); times before 1970 as 1970.
fn civil(time: SystemTime) -> ((i64, u32, u32), (u64, u64, u64)) {
    let secs = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // days since 1970-01-01 to a civil date (the proleptic Gregorian calendar)
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (
        (year, month, day),
        (rest / 3_600, rest % 3_600 / 60, rest % 60),
    )
}

/// The sending side of an access log's writer task; the task ends once every clone is dropped
/// and what is queued is written.
#[derive(Clone, Debug)]
pub(crate) struct AccessLogger {
    format: AccessLogFormat,
    lines: mpsc::Sender<String>,
}

impl AccessLogger {
    /// Opens `log`'s destination and starts its writer.
    ///
    /// # Errors
    /// The file cannot be opened for appending.
    pub(crate) async fn start(log: &AccessLog) -> std::io::Result<Self> {
        let out: Box<dyn tokio::io::AsyncWrite + Send + Unpin> = match &log.to {
            AccessLogTo::Stdout => Box::new(tokio::io::stdout()),
            AccessLogTo::File(path) => Box::new(
                tokio::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .await?,
            ),
        };
        let (lines, queued) = mpsc::channel(QUEUE);
        tokio::spawn(write_lines(queued, out));
        Ok(Self {
            format: log.format,
            lines,
        })
    }

    /// Queues `entry`'s line; drops it (counted) if the queue is full.
    pub(crate) fn log(&self, entry: &Entry<'_>) {
        let mut line = entry.line(self.format);
        line.push('\n');
        if self.lines.try_send(line).is_err() {
            metrics::counter!("troupe_proxy_access_log_dropped_total").increment(1);
        }
    }
}

async fn write_lines(
    mut queued: mpsc::Receiver<String>,
    mut out: Box<dyn tokio::io::AsyncWrite + Send + Unpin>,
) {
    let mut failed = false;
    while let Some(line) = queued.recv().await {
        let mut batch = line;
        // what else is waiting goes out in the same write
        while batch.len() < 64 * 1024 {
            match queued.try_recv() {
                Ok(more) => batch.push_str(&more),
                Err(_) => break,
            }
        }
        let written = match out.write_all(batch.as_bytes()).await {
            Ok(()) => out.flush().await,
            Err(err) => Err(err),
        };
        match written {
            Ok(()) => failed = false,
            Err(err) => {
                metrics::counter!("troupe_proxy_access_log_dropped_total")
                    .increment(batch.lines().count() as u64);
                if !failed {
                    tracing::warn!(cause = %err, "the access log cannot be written; dropping lines");
                    failed = true;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(time: SystemTime) -> Entry<'static> {
        Entry {
            remote: "127.0.0.1".parse().unwrap(),
            time,
            method: "GET",
            target: "/items/tea?x=\"1\"",
            protocol: "HTTP/1.1",
            status: 200,
            bytes: 12,
            referer: None,
            user_agent: Some("curl/8.5 \u{1}"),
            duration: Duration::from_micros(1500),
            route: "lb",
        }
    }

    #[test]
    fn a_combined_line_reads_as_apache_and_nginx_write_it() {
        // 2026-12-05 23:40:01 UTC
        let time = UNIX_EPOCH + Duration::from_secs(1_796_514_001);
        assert_eq!(
            entry(time).line(AccessLogFormat::Combined),
            "127.0.0.1 - - [05/Dec/2026:23:40:01 +0000] \"GET /items/tea?x=\\\"1\\\" HTTP/1.1\" 200 12 \"-\" \"curl/8.5 \\x01\""
        );
    }

    #[test]
    fn a_json_line_holds_every_field() {
        let time = UNIX_EPOCH + Duration::from_millis(1_796_514_001_250);
        let line = entry(time).line(AccessLogFormat::Json);
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["time"], "2026-12-05T23:40:01.250Z");
        assert_eq!(v["remote"], "127.0.0.1");
        assert_eq!(v["target"], "/items/tea?x=\"1\"");
        assert_eq!(v["status"], 200);
        assert_eq!(v["bytes"], 12);
        assert_eq!(v["referer"], serde_json::Value::Null);
        assert_eq!(v["duration_ms"], 1.5);
        assert_eq!(v["route"], "lb");
    }

    #[test]
    fn civil_dates_cross_leap_days_and_centuries() {
        let day = |days: u64| civil(UNIX_EPOCH + Duration::from_secs(days * 86_400)).0;
        assert_eq!(day(0), (1970, 1, 1));
        assert_eq!(day(11_016), (2000, 2, 29));
        assert_eq!(day(11_017), (2000, 3, 1));
        assert_eq!(day(19_782), (2024, 2, 29));
        assert_eq!(day(47_540), (2100, 2, 28));
        assert_eq!(day(47_541), (2100, 3, 1));
    }
}
