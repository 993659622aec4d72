//! `troupe db status|promote` and `troupe queue stats|dead-letters|replay`: a process's
//! databases and queues, read from its admin endpoint (`/db`, `/queue`), and the two changes an
//! operator makes there over TLS with an operator certificate.

use std::net::SocketAddr;
use std::path::Path;

use troupe_admin::{DbState, DeadLetterState, PromotedState, QueueState};
use troupe_identity::OperatorIdentity;

use crate::admin::{AdminError, Endpoint, columns};

/// Who changes state: the operator's name and the directory holding its certificate.
pub(crate) struct Operator<'a> {
    pub(crate) ca: &'a Path,
    pub(crate) name: &'a str,
}

impl Operator<'_> {
    pub(crate) fn load(&self) -> Result<OperatorIdentity, AdminError> {
        OperatorIdentity::load(self.ca, self.name).map_err(AdminError::Operator)
    }
}

/// `troupe db status`: every replica of every database the process knows.
pub(crate) fn db_status(addr: SocketAddr, json: bool) -> Result<(), AdminError> {
    let dbs: Vec<DbState> = Endpoint::new(addr)?.get("/db")?;
    if json {
        return print_json(addr, &dbs);
    }
    if dbs.is_empty() {
        println!("no database in this topology");
    }
    for db in &dbs {
        println!("database {}", db.name);
        let rows: Vec<[String; 8]> = db
            .replicas
            .iter()
            .map(|r| {
                [
                    r.name.clone(),
                    r.node.clone(),
                    r.role.clone().unwrap_or_else(|| "-".into()),
                    r.epoch.to_string(),
                    r.last_index.to_string(),
                    r.applied_index.to_string(),
                    r.lag.map_or_else(|| "-".into(), |l| l.to_string()),
                    r.error.clone().unwrap_or_default(),
                ]
            })
            .collect();
        print!(
            "{}",
            columns(
                &[
                    "REPLICA", "NODE", "ROLE", "EPOCH", "LAST", "APPLIED", "LAG", "ERROR"
                ],
                &rows
            )
        );
    }
    Ok(())
}

/// The database a command names with `--db`, or the endpoint's only one.
fn db_name(addr: SocketAddr, endpoint: &Endpoint, db: Option<&str>) -> Result<String, AdminError> {
    match db {
        Some(name) => Ok(name.to_string()),
        None => only(
            addr,
            "database",
            "--db",
            endpoint
                .get::<Vec<DbState>>("/db")?
                .into_iter()
                .map(|d| d.name),
        ),
    }
}

/// `troupe db promote`: manual failover of database `db` (the only one if `None`).
pub(crate) fn db_promote(
    addr: SocketAddr,
    db: Option<&str>,
    operator: &Operator<'_>,
    json: bool,
) -> Result<(), AdminError> {
    let endpoint = Endpoint::new(addr)?;
    let identity = operator.load()?;
    let name = db_name(addr, &endpoint, db)?;
    let body = endpoint.post(&format!("/db/{name}/promote"), &identity)?;
    let promoted: PromotedState = decode(addr, &body)?;
    if json {
        return print_json(addr, &promoted);
    }
    println!(
        "database {name}: {} leads now, in epoch {}",
        promoted.leader, promoted.epoch
    );
    Ok(())
}

/// `troupe db add-replica|remove-replica`: replica `replica` of database `db` (the only one
/// if `None`) joins the voters (`add`) or leaves them.
pub(crate) fn db_members(
    addr: SocketAddr,
    db: Option<&str>,
    add: bool,
    replica: u64,
    operator: &Operator<'_>,
    json: bool,
) -> Result<(), AdminError> {
    let endpoint = Endpoint::new(addr)?;
    let identity = operator.load()?;
    let name = db_name(addr, &endpoint, db)?;
    let verb = if add { "add-replica" } else { "remove-replica" };
    let body = endpoint.post(&format!("/db/{name}/{verb}/{replica}"), &identity)?;
    let voters: Vec<u64> = decode(addr, &body)?;
    if json {
        return print_json(addr, &voters);
    }
    let voters: Vec<String> = voters.iter().map(u64::to_string).collect();
    println!("database {name}: voters now {}", voters.join(", "));
    Ok(())
}

/// `troupe queue stats`: every queue's counts.
pub(crate) fn queue_stats(addr: SocketAddr, json: bool) -> Result<(), AdminError> {
    let queues: Vec<QueueState> = Endpoint::new(addr)?.get("/queue")?;
    if json {
        return print_json(addr, &queues);
    }
    if queues.is_empty() {
        println!("no queue in this topology");
        return Ok(());
    }
    let rows: Vec<[String; 8]> = queues
        .iter()
        .map(|q| {
            [
                q.name.clone(),
                q.ready.to_string(),
                q.leased.to_string(),
                q.dead.to_string(),
                q.enqueued.to_string(),
                q.acked.to_string(),
                q.redelivered.to_string(),
                q.error.clone().unwrap_or_default(),
            ]
        })
        .collect();
    print!(
        "{}",
        columns(
            &[
                "QUEUE",
                "READY",
                "LEASED",
                "DEAD",
                "ENQUEUED",
                "ACKED",
                "REDELIVERED",
                "ERROR"
            ],
            &rows
        )
    );
    Ok(())
}

/// `troupe queue dead-letters`: queue `queue`'s dead letters (the only queue's if `None`).
pub(crate) fn dead_letters(
    addr: SocketAddr,
    queue: Option<&str>,
    json: bool,
) -> Result<(), AdminError> {
    let endpoint = Endpoint::new(addr)?;
    let name = queue_name(addr, &endpoint, queue)?;
    let letters: Vec<DeadLetterState> = endpoint.get(&format!("/queue/{name}/dead-letters"))?;
    if json {
        return print_json(addr, &letters);
    }
    if letters.is_empty() {
        println!("queue {name} has no dead letter");
        return Ok(());
    }
    let rows: Vec<[String; 5]> = letters
        .iter()
        .map(|d| {
            [
                d.item.to_string(),
                d.attempts.to_string(),
                d.bytes.to_string(),
                d.reason.clone(),
                format!("{:?}", d.preview),
            ]
        })
        .collect();
    print!(
        "{}",
        columns(&["ITEM", "ATTEMPTS", "BYTES", "REASON", "PAYLOAD"], &rows)
    );
    Ok(())
}

/// `troupe queue replay ITEM`: puts a dead letter back at the tail of its queue's line.
pub(crate) fn replay(
    addr: SocketAddr,
    queue: Option<&str>,
    item: u64,
    operator: &Operator<'_>,
) -> Result<(), AdminError> {
    let endpoint = Endpoint::new(addr)?;
    let identity = operator.load()?;
    let name = queue_name(addr, &endpoint, queue)?;
    endpoint.post(&format!("/queue/{name}/replay/{item}"), &identity)?;
    println!("queue {name}: item {item} is back in line");
    Ok(())
}

fn queue_name(
    addr: SocketAddr,
    endpoint: &Endpoint,
    queue: Option<&str>,
) -> Result<String, AdminError> {
    match queue {
        Some(name) => Ok(name.to_string()),
        None => only(
            addr,
            "queue",
            "--queue",
            endpoint
                .get::<Vec<QueueState>>("/queue")?
                .into_iter()
                .map(|q| q.name),
        ),
    }
}

/// The one name of `names`, or an error saying to pick one with `flag`.
fn only(
    addr: SocketAddr,
    kind: &str,
    flag: &str,
    names: impl Iterator<Item = String>,
) -> Result<String, AdminError> {
    let names: Vec<String> = names.collect();
    match names.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(AdminError::Refused {
            addr,
            status: 404,
            message: format!("this topology has no {kind}"),
        }),
        many => Err(AdminError::Refused {
            addr,
            status: 400,
            message: format!(
                "it has {} of them; pick one with {flag} NAME: {}",
                many.len(),
                many.join(", ")
            ),
        }),
    }
}

fn decode<T: serde::de::DeserializeOwned>(addr: SocketAddr, body: &[u8]) -> Result<T, AdminError> {
    serde_json::from_slice(body).map_err(|e| AdminError::NotAdmin {
        addr,
        reason: e.to_string(),
    })
}

pub(crate) fn print_json(
    addr: SocketAddr,
    value: &impl serde::Serialize,
) -> Result<(), AdminError> {
    let text = serde_json::to_string_pretty(value).map_err(|e| AdminError::NotAdmin {
        addr,
        reason: e.to_string(),
    })?;
    println!("{text}");
    Ok(())
}

/// `troupe kill NODE/NAME`: the actor killed as a crash would; its supervisor restarts it.
pub(crate) fn kill(
    addr: SocketAddr,
    actor: &str,
    operator: &Operator<'_>,
) -> Result<(), AdminError> {
    let Some((node, name)) = actor
        .split_once('/')
        .filter(|(n, a)| !n.is_empty() && !a.is_empty())
    else {
        return Err(AdminError::Refused {
            addr,
            status: 400,
            message: format!("{actor:?} is not NODE/NAME (`troupe status` lists the actors)"),
        });
    };
    let endpoint = Endpoint::new(addr)?;
    let identity = operator.load()?;
    let said = endpoint.post(&format!("/actors/{node}/{name}/kill"), &identity)?;
    print!("{}", String::from_utf8_lossy(&said));
    Ok(())
}
