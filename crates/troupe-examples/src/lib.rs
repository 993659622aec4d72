//! Builds the repository's examples as binaries (see this package's `Cargo.toml`); the
//! multi-process tests in `tests/` spawn them.
