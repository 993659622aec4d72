//! troupe-placement: where a failover child runs, decided by pure cores with time passed in
//!
//! A failover child may run on any of a list of nodes, in an order ([`Placement`]); which one
//! runs it is recorded in a linearizable register (the cluster's metadata group) as a lease
//! ([`lease`]), so that it runs on **at most one node at any time**, even when nodes disagree
//! on who is alive, a holder is cut off from the register, or its process is paused. Each node
//! runs a [`Seat`] per child: fed the time, its membership view and the register's answers, it
//! says when to read or compare-and-set the lease and when to start or stop the child.
//! A node where the child keeps failing gives it up to the next node and sits out for a
//! while, longer each time ([`bench`]): restart intensity and backoff across nodes.
//!
//! Nothing here does I/O or reads a clock: the runtime (and the simulator) drive it, and the
//! property test in `tests/model.rs` drives three seats against a register with delays, lost
//! answers, clocks running at different rates, partitions, pauses and crashes, checking that
//! two nodes never run the child at once and that one runs it once faults stop.

pub mod bench;
pub mod lease;
mod place;
mod seat;

pub use bench::{GIVE_UP_AFTER_FAILED_STARTS, GaveUp, SitOut};
pub use lease::{Benched, Holding, LeaseConfig, LeaseConfigError, LeaseRecord, Watching};
pub use place::Placement;
pub use seat::{Action, RequestId, Seat, WriteOutcome};
