//! troupe (work in progress).
