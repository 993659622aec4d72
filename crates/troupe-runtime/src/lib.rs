//! troupe runtime (work in progress).
