//! Headless Chromium driven over the DevTools protocol: one page kept open (so what it shows
//! comes from its live feed, not a reload), its DOM read and its screenshot taken on demand.
//! Chromium's one-shot `--dump-dom` cannot serve here: its virtual time never advances while
//! a request is open, and the live view keeps one open (`/events`).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use futures::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// How long one DevTools command may take.
const COMMAND_DEADLINE: Duration = Duration::from_secs(20);

/// A headless Chromium with one page open; the browser is killed when this is dropped.
pub(crate) struct Browser {
    child: Child,
    socket: Socket,
    session: String,
    next_id: u64,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Browser {
    /// Opens `url` in a new headless Chromium (Debian's `chromium`, which `.ci/run` installs);
    /// `None`, with the reason printed, where there is none.
    pub(crate) async fn open(url: &str) -> Option<Self> {
        let Some(binary) = ["chromium", "chromium-browser", "google-chrome"]
            .into_iter()
            .find(|b| {
                Command::new(b)
                    .arg("--version")
                    .output()
                    .is_ok_and(|o| o.status.success())
            })
        else {
            eprintln!("skipped: no headless Chromium here (.ci/run installs Debian's chromium)");
            return None;
        };
        let profile = tempfile::tempdir().expect("a profile directory");
        let mut child = Command::new(binary)
            .args(["--headless", "--no-sandbox", "--disable-gpu"])
            .args(["--remote-debugging-port=0", "--window-size=1280,900"])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start chromium");
        // it names its DevTools socket on standard error once it listens
        let stderr = child.stderr.take().expect("piped");
        let endpoint = tokio::task::spawn_blocking(move || {
            let mut lines = BufReader::new(stderr).lines();
            let found = lines.by_ref().map_while(Result::ok).find_map(|line| {
                line.split_once("DevTools listening on ")
                    .map(|(_, ws)| ws.trim().to_string())
            });
            // keep draining, so chromium never blocks on a full pipe
            std::thread::spawn(move || lines.for_each(drop));
            found
        });
        let endpoint = tokio::time::timeout(COMMAND_DEADLINE, endpoint)
            .await
            .expect("chromium names its DevTools socket in time")
            .expect("the reading thread")
            .expect("chromium's DevTools socket");
        let (socket, _) = tokio::time::timeout(
            COMMAND_DEADLINE,
            tokio_tungstenite::connect_async(&endpoint),
        )
        .await
        .expect("DevTools answers in time")
        .expect("a DevTools connection");
        let mut browser = Self {
            child,
            socket,
            session: String::new(),
            next_id: 0,
            _profile: profile,
        };
        let target = browser
            .command(None, "Target.createTarget", json!({ "url": url }))
            .await;
        let target = target["targetId"]
            .as_str()
            .expect("a target id")
            .to_string();
        let attached = browser
            .command(
                None,
                "Target.attachToTarget",
                json!({ "targetId": target, "flatten": true }),
            )
            .await;
        browser.session = attached["sessionId"]
            .as_str()
            .expect("a session id")
            .to_string();
        Some(browser)
    }

    /// The page's whole DOM, as it is now.
    pub(crate) async fn dom(&mut self) -> String {
        let session = self.session.clone();
        let result = self
            .command(
                Some(&session),
                "Runtime.evaluate",
                json!({ "expression": "document.documentElement.outerHTML", "returnByValue": true }),
            )
            .await;
        result["result"]["value"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Saves what the page shows now as a PNG at `path`.
    pub(crate) async fn screenshot(&mut self, path: &Path) {
        let session = self.session.clone();
        let shot = self
            .command(
                Some(&session),
                "Page.captureScreenshot",
                json!({ "format": "png" }),
            )
            .await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().expect("image data"))
            .expect("base64 image data");
        std::fs::write(path, png).expect("write the screenshot");
    }

    /// Sends one DevTools command (to the page's session, or the browser) and waits for its
    /// answer, skipping the events in between.
    async fn command(&mut self, session: Option<&str>, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut command = json!({ "id": id, "method": method, "params": params });
        if let Some(session) = session {
            command["sessionId"] = json!(session);
        }
        self.socket
            .send(Message::text(command.to_string()))
            .await
            .expect("send a DevTools command");
        tokio::time::timeout(COMMAND_DEADLINE, async {
            loop {
                let message = self
                    .socket
                    .next()
                    .await
                    .expect("DevTools stays open")
                    .expect("a DevTools message");
                let Message::Text(text) = message else {
                    continue;
                };
                let answer: Value = serde_json::from_str(&text).expect("DevTools speaks JSON");
                if answer["id"] == json!(id) {
                    assert!(answer.get("error").is_none(), "{method} failed: {answer}");
                    return answer["result"].clone();
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{method} answered in time"))
    }
}
