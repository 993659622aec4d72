//! troupe-failover: children that outlive their node
//!
//! A failover child runs on one node of a list at a time ([`FailoverChild`], its order a
//! [`Placement`](troupe_placement::Placement)). Which node is decided by the cluster's agreed
//! state, not by each node's view: a lease per child in a linearizable register
//! ([`LeaseRegister`]; [`DbRegister`] keeps it in a troupe database in Raft mode, the
//! cluster's metadata group). Each node runs a [`PlacementDriver`] that carries out the pure
//! rules of `troupe-placement`: the first live node of the order claims a lease nobody
//! renews, runs the child while it holds the lease, and stops it before the lease can have
//! run out anywhere else; every node keeps its process's
//! [`Placed`](troupe_runtime::placed::Placed) entry current, so handles to the child reach
//! whoever holds it and park casts while nobody does.

pub mod driver;
pub mod register;

pub use driver::{
    DRIVER_NAME, DriverMsg, FailoverChild, FailoverUnit, PlacementDriver, Prepared, TICK,
};
pub use register::{
    DRAIN_PREFIX, DbRegister, Directions, LEASE_PREFIX, LeaseRegister, MOVE_PREFIX, RegisterError,
};
pub use troupe_placement::{LeaseConfig, Placement};
