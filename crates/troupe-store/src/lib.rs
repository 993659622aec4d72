//! Opening the redb files of troupe's parts, and the one error type for them
//!
//! The durable queue and every database replica keep their state in one redb file each. This
//! crate holds what they share about those files, so it is written once:
//!
//! - [`create`] opens (or creates, with its directory) a file, with a typed [`StoreError`]
//!   naming the path.
//! - [`create_when_released`] does the same for an actor that restarts after a crash: the
//!   crashed instance's handle on the file may still be on its way out, so while redb reports
//!   the file as already open it retries on tokio's clock, bounded by a number of attempts and
//!   a total wait ([`Reopen`]), and then fails with [`StoreError::Held`].
//! - [`StoreError`] converts from every redb error (so `?` works inside a transaction), keeps
//!   the cause as its [`source()`](std::error::Error::source), and says what kind of failure
//!   it is ([`StoreErrorKind`]).
//! - [`StoreFault`] is the serializable form a part sends in a reply to a remote caller: a
//!   kind and a message, built from the typed error at the point where it leaves the process.
//!
//! What the tables hold, and what a transaction commits, stays with each part.
//!
//! # Layout
//!
//! - `error.rs`: [`StoreError`], [`StoreErrorKind`], [`StoreFault`].
//! - `by_path.rs`: the map from paths to what a test armed for them, shared by [`faults`] and
//!   [`power`].
//! - `degraded.rs`: [`Degraded`], a part whose file failed and when it next tries to reopen it
//!   (a pause doubling from [`REOPEN_PAUSE`]`.0` to `.1`), shared by the queue and the database.
//! - `open.rs`: [`create`], [`create_when_released`], [`Reopen`], [`has_tables`].
//! - [`faults`]: a backend that fails writes with `ENOSPC` or `EIO` on a switch, for tests of
//!   what the parts do on a full disk or a failing device.
//! - [`power`]: a backend that keeps a file in memory with its unsynced writes apart and drops
//!   them at a simulated power loss, for tests of what a part loses when the power goes.
//!
//! # Examples
//!
//! ```
//! # async fn demo() -> Result<(), troupe_store::StoreError> {
//! use troupe_store::{Reopen, create_when_released};
//!
//! let dir = std::env::temp_dir().join(format!("troupe-store-doc-{}", std::process::id()));
//! let db = create_when_released(&dir.join("part.redb"), Reopen::default()).await?;
//! let txn = db.begin_write()?; // redb errors convert with `?`
//! txn.commit()?;
//! # Ok(())
//! # }
//! # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap()
//! #     .block_on(demo()).unwrap();
//! ```

mod by_path;
mod degraded;
mod error;
pub mod faults;
mod open;
pub mod power;

pub use degraded::{Degraded, REOPEN_PAUSE};
pub use error::{StoreError, StoreErrorKind, StoreFault};
pub use open::{Reopen, create, create_when_released, has_tables};
