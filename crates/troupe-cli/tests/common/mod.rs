//! Running the `troupe` binary from the tests.

#![allow(dead_code)] // each test binary uses a different part

use std::process::{Command, Output};

/// Runs the binary with `args` and waits for it.
pub(crate) fn troupe_blocking(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_troupe"))
        .args(args)
        .output()
        .expect("run troupe")
}

/// Runs the binary off the runtime's threads (it waits for the endpoint the test serves).
pub(crate) async fn troupe(args: &[&str]) -> Output {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        troupe_blocking(&args)
    })
    .await
    .expect("the command ran")
}

/// Output bytes as text.
pub(crate) fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
