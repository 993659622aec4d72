//! troupe's wire format (work in progress).
