//! libmemcached's `memcapable` (Debian ships it as `memccapable`, in `libmemcached-tools`)
//! checks a server's protocol: run in ASCII mode (`-a`) against the memcached front end,
//! every case it has must pass.
//!
//! The ASCII cases are version, quit, verbosity, set, get, gets, mget, flush, add, replace,
//! cas, delete, incr, decr, append, prepend and stat, each with and without `noreply`
//! where it has one: none is skipped. Its binary-protocol cases are not run: the front end
//! speaks the text protocol only (memcached deprecates the binary one).
//!
//! Without the binary, the test prints why and passes without checking; `.ci/run` installs
//! `libmemcached-tools`.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use troupe_cache::{CacheSpec, MemcacheServerMsg};
use troupe_runtime::{Mesh, Node, NodeConfig, SupervisorSpec};
use troupe_testkit::eventually;

const T: Duration = Duration::from_secs(10);

/// How long memcapable may run in all (it takes well under a second).
const DEADLINE: Duration = Duration::from_secs(60);

fn memcapable() -> Option<&'static str> {
    [
        "/usr/bin/memccapable",
        "/usr/bin/memcapable",
        "/usr/local/bin/memcapable",
    ]
    .into_iter()
    .find(|p| Path::new(p).exists())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memcapable_passes_every_ascii_case() {
    let Some(binary) = memcapable() else {
        println!("SKIPPED: no memccapable here (apt-get install libmemcached-tools)");
        return;
    };
    let node = Node::new("n", &Mesh::new(), NodeConfig::default()).expect("node");
    let spec = CacheSpec::lru(10_000).shards(2).memcached("127.0.0.1:0");
    let (children, _client) = spec.children(&node, "cache").expect("names free");
    node.start(SupervisorSpec::one_for_one(), children)
        .await
        .expect("started");
    let server = node.addr::<MemcacheServerMsg>("n", "cache.memcached");
    let addr = eventually("the memcached server bound", T, async || {
        server
            .call(MemcacheServerMsg::LocalAddr, T)
            .await
            .ok()
            .flatten()
    })
    .await;
    let port = addr.port().to_string();
    let output = tokio::task::spawn_blocking(move || {
        let mut child = Command::new(binary)
            .args(["-h", "127.0.0.1", "-p", &port, "-a", "-v", "-t", "5"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("memcapable starts");
        let start = Instant::now();
        // polled with a deadline: a hang fails the test rather than the job
        loop {
            if child.try_wait().expect("wait").is_some() {
                break;
            }
            if start.elapsed() > DEADLINE {
                let _ = child.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        child.wait_with_output().expect("output")
    })
    .await
    .expect("joined");
    node.shutdown().await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}{stderr}");
    let cases: Vec<&str> = stdout.lines().filter(|l| l.starts_with("ascii ")).collect();
    assert!(
        cases.len() >= 27,
        "memcapable ran {} cases:\n{stdout}{stderr}",
        cases.len()
    );
    let failed: Vec<&&str> = cases.iter().filter(|l| !l.ends_with("[pass]")).collect();
    assert!(
        failed.is_empty(),
        "cases not passed: {failed:?}\n{stdout}{stderr}"
    );
    assert!(stdout.contains("All tests passed"), "{stdout}{stderr}");
    assert!(
        output.status.success(),
        "memcapable exited {:?}",
        output.status
    );
}
