//! `troupe placement`, `troupe move` and `troupe drain`: where a topology's failover groups run,
//! read from a process's admin endpoint (`/placement`), and an operator's directions to them
//! over TLS with an operator certificate (`/placement/GROUP/move/NODE`, `/nodes/NODE/drain`,
//! and `/leave` once a drained node runs nothing).

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use troupe_admin::{GroupPlacementState, PlacementState};

use crate::admin::{AdminError, Endpoint, columns};
use crate::parts::{Operator, print_json};

/// How often `troupe drain` reads `/placement` while it waits.
const POLL: Duration = Duration::from_millis(250);

/// `troupe placement`: every failover group, where it runs and may run, and the drained nodes.
pub(crate) fn placement(addr: SocketAddr, json: bool) -> Result<(), AdminError> {
    let state: PlacementState = Endpoint::new(addr)?.get("/placement")?;
    if json {
        return print_json(addr, &state);
    }
    print!("{}", table(&state));
    Ok(())
}

/// The placement as a table, one row per group, then the drained nodes.
fn table(state: &PlacementState) -> String {
    let mut out = String::new();
    if state.groups.is_empty() {
        out.push_str("no failover group in this topology\n");
    } else {
        let rows: Vec<[String; 4]> = state
            .groups
            .iter()
            .map(|g| {
                [
                    g.name.clone(),
                    g.holder.clone().unwrap_or_else(|| "-".into()),
                    order(g),
                    group_state(g, &state.drained),
                ]
            })
            .collect();
        out.push_str(&columns(&["GROUP", "HOLDER", "ORDER", "STATE"], &rows));
    }
    let drained = if state.drained.is_empty() {
        "none".to_string()
    } else {
        state.drained.join(", ")
    };
    out.push_str(&format!("drained: {drained}\n"));
    if let Some(error) = &state.error {
        out.push_str(&format!("error: {error}\n"));
    }
    out
}

/// A group's order as directed now, and as declared when that differs, then the roles
/// whose nodes follow.
fn order(g: &GroupPlacementState) -> String {
    let directed = if g.directed.is_empty() {
        "(none)".to_string()
    } else {
        g.directed.join(", ")
    };
    let mut order = if g.directed == g.order {
        directed
    } else {
        format!("{directed} (declared {})", g.order.join(", "))
    };
    if !g.roles.is_empty() {
        order.push_str(&format!(", then role {}", g.roles.join(", ")));
    }
    order
}

/// What a group's lease says, and its move (on hold while the node it was moved to is
/// drained).
fn group_state(g: &GroupPlacementState, drained: &[String]) -> String {
    let mut state = match (&g.error, &g.holder) {
        (Some(error), _) => format!("unknown: {error}"),
        (None, None) => "not placed yet".to_string(),
        (None, Some(_)) if g.released => "released (the next node claims it)".to_string(),
        (None, Some(_)) if g.draining => "handing over".to_string(),
        (None, Some(_)) => "running".to_string(),
    };
    if let Some(to) = &g.moved_to {
        state.push_str(&format!(", moved to {to}"));
        if drained.contains(to) {
            state.push_str(&format!(" (on hold: {to} is drained)"));
        } else if !g.order.contains(to) && g.roles.is_empty() {
            state.push_str(" (ignored: not in its order)");
        }
    }
    state
}

/// `troupe move GROUP NODE` (`node`), or `troupe move GROUP --clear` (`None`).
pub(crate) fn move_group(
    addr: SocketAddr,
    group: &str,
    node: Option<&str>,
    operator: &Operator<'_>,
) -> Result<(), AdminError> {
    let endpoint = Endpoint::new(addr)?;
    let identity = operator.load()?;
    let path = match node {
        Some(node) => format!("/placement/{group}/move/{node}"),
        None => format!("/placement/{group}/unmove"),
    };
    let said = endpoint.post(&path, &identity)?;
    print!("{}", String::from_utf8_lossy(&said));
    Ok(())
}

/// What `troupe drain` was asked to do besides draining.
pub(crate) struct DrainOptions {
    /// Put the node back in service instead.
    pub(crate) undo: bool,
    /// Once nothing runs on it, ask its process (the endpoint's) to leave the cluster.
    pub(crate) leave: bool,
    /// The bound on each wait: for the groups to move off, then for the process to stop.
    pub(crate) wait: Duration,
}

/// `troupe drain NODE`: the node drained, then waits until no failover group's lease names it,
/// printing each group that moves off; with `leave`, its process then leaves the cluster.
pub(crate) fn drain(
    addr: SocketAddr,
    node: &str,
    options: &DrainOptions,
    operator: &Operator<'_>,
) -> Result<(), AdminError> {
    let endpoint = Endpoint::new(addr)?;
    let identity = operator.load()?;
    if options.undo {
        let said = endpoint.post(&format!("/nodes/{node}/undrain"), &identity)?;
        print!("{}", String::from_utf8_lossy(&said));
        return Ok(());
    }
    if options.leave {
        // before anything changes: the endpoint must be the node's own process
        let state = endpoint.state()?;
        let runs: Vec<&str> = state.nodes.iter().map(|n| n.name.as_str()).collect();
        if !runs.contains(&node) {
            return Err(AdminError::NotItsProcess {
                addr,
                node: node.to_string(),
                runs: if runs.is_empty() {
                    "no node".to_string()
                } else {
                    runs.join(", ")
                },
            });
        }
        let others: Vec<&str> = runs.into_iter().filter(|n| *n != node).collect();
        if !others.is_empty() {
            println!(
                "note: the process at {addr} also runs {}; they leave with it",
                others.join(", ")
            );
        }
    }
    let before: PlacementState = endpoint.get("/placement")?;
    let said = endpoint.post(&format!("/nodes/{node}/drain"), &identity)?;
    print!("{}", String::from_utf8_lossy(&said));
    let mut on_node: BTreeSet<String> = before
        .groups
        .iter()
        .filter(|g| g.held_by(node))
        .map(|g| g.name.clone())
        .collect();
    let ran_there = !on_node.is_empty();
    let started = Instant::now();
    let mut last_error: Option<String>;
    loop {
        match endpoint.get::<PlacementState>("/placement") {
            Ok(state) => {
                last_error = state.error.clone();
                for g in &state.groups {
                    if let Some(error) = &g.error {
                        // unknown for now: neither gone nor still there
                        last_error = Some(format!("{}: {error}", g.name));
                        continue;
                    }
                    if g.held_by(node) {
                        on_node.insert(g.name.clone());
                    } else if on_node.remove(&g.name) {
                        match &g.holder {
                            Some(holder) => println!("{} moved from {node} to {holder}", g.name),
                            None => println!("{} left {node}", g.name),
                        }
                    }
                }
                if on_node.is_empty() && last_error.is_none() {
                    break;
                }
            }
            Err(err) => last_error = Some(err.to_string()),
        }
        if started.elapsed() >= options.wait {
            let mut still = on_node.iter().cloned().collect::<Vec<_>>().join(", ");
            still.push_str(if on_node.len() == 1 { " is" } else { " are" });
            if on_node.is_empty() {
                still = format!(
                    "the placement could not be read ({}), so groups may be",
                    last_error.unwrap_or_default()
                );
            }
            return Err(AdminError::StillPlaced {
                node: node.to_string(),
                waited: options.wait,
                still,
                left: if options.leave {
                    "; its process was not asked to leave".into()
                } else {
                    String::new()
                },
            });
        }
        std::thread::sleep(POLL);
    }
    if ran_there {
        println!("{node} is drained: no failover group runs there");
    } else {
        println!("{node} is drained: no failover group ran there");
    }
    if !options.leave {
        return Ok(());
    }
    let said = endpoint.post("/leave", &identity)?;
    print!("{}", String::from_utf8_lossy(&said));
    let asked = Instant::now();
    while endpoint.answers("/health") {
        if asked.elapsed() >= options.wait {
            return Err(AdminError::StillServing {
                addr,
                waited: options.wait,
            });
        }
        std::thread::sleep(POLL);
    }
    println!("{node}'s process has left the cluster");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(name: &str, holder: Option<&str>) -> GroupPlacementState {
        GroupPlacementState {
            name: name.into(),
            order: vec!["b".into(), "c".into()],
            directed: vec!["b".into(), "c".into()],
            roles: Vec::new(),
            takeover: false,
            moved_to: None,
            holder: holder.map(str::to_string),
            generation: 3,
            draining: false,
            released: false,
            error: None,
        }
    }

    #[test]
    fn the_table_has_a_row_per_group_and_the_drained_nodes() {
        let mut moved = group("counter.failover", Some("c"));
        moved.directed = vec!["c".into(), "b".into()];
        moved.moved_to = Some("c".into());
        moved.draining = true;
        let mut unread = group("app", None);
        unread.error = Some("the placement register is unavailable".into());
        let mut on_hold = group("held", Some("b"));
        on_hold.moved_to = Some("a".into());
        let state = PlacementState {
            groups: vec![moved, group("idle", None), unread, on_hold],
            drained: vec!["a".into()],
            error: None,
        };
        assert_eq!(
            table(&state),
            "GROUP             HOLDER  ORDER                 STATE\n\
             counter.failover  c       c, b (declared b, c)  handing over, moved to c\n\
             idle              -       b, c                  not placed yet\n\
             app               -       b, c                  unknown: the placement register is unavailable\n\
             held              b       b, c                  running, moved to a (on hold: a is drained)\n\
             drained: a\n"
        );
        assert_eq!(
            table(&PlacementState::default()),
            "no failover group in this topology\ndrained: none\n"
        );
    }
}
