//! The proxy's decisions, as plain functions: which route a request takes, and which HTTP
//! status a failure becomes.

use troupe_runtime::CallError;

/// A routing table: path prefix, optionally restricted to one host, to a target index.
///
/// Resolution: among the routes whose prefix matches the path (at a segment boundary: `/api`
/// matches `/api` and `/api/x`, not `/apix`) and whose host is the request's host or unset,
/// the longest prefix wins; at equal length a host-specific route beats a host-less one.
#[derive(Clone, Debug, Default)]
pub struct Routes {
    routes: Vec<Route>,
}

#[derive(Clone, Debug)]
struct Route {
    host: Option<String>,
    prefix: String,
    target: usize,
}

impl Routes {
    /// An empty table (every request is a 404).
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a route from `prefix` (on `host`, or any host) to `target`.
    pub fn add(&mut self, host: Option<&str>, prefix: &str, target: usize) {
        let prefix = if prefix.is_empty() { "/" } else { prefix };
        self.routes.push(Route {
            host: host.map(|h| h.to_ascii_lowercase()),
            prefix: prefix.trim_end_matches('/').to_string(),
            target,
        });
    }

    /// The target for a request to `path` on `host`, if any route matches.
    pub fn resolve(&self, host: Option<&str>, path: &str) -> Option<usize> {
        self.routes
            .iter()
            .filter(|r| match &r.host {
                Some(h) => host.is_some_and(|host| host.eq_ignore_ascii_case(h)),
                None => true,
            })
            .filter(|r| prefix_matches(&r.prefix, path))
            .max_by_key(|r| (r.prefix.len(), r.host.is_some()))
            .map(|r| r.target)
    }
}

/// The host a request names (its URI's authority or `host` header) as routes match it: any
/// port stripped, bracketed IPv6 literals kept whole, lowercase.
pub fn host_name(raw: &str) -> String {
    without_port(raw).to_ascii_lowercase()
}

/// `raw` (a URI authority or `host` header) without its port, if it has one; a bracketed
/// IPv6 literal is kept whole.
pub fn without_port(raw: &str) -> &str {
    match raw.rsplit_once(':') {
        Some((h, port)) if !h.ends_with(']') || raw.starts_with('[') => {
            if port.chars().all(|c| c.is_ascii_digit()) {
                h
            } else {
                raw
            }
        }
        _ => raw,
    }
}

fn prefix_matches(prefix: &str, path: &str) -> bool {
    // "" is the root route ("/" trimmed): it matches everything
    path.starts_with(prefix)
        && (prefix.is_empty()
            || path.len() == prefix.len()
            || path.as_bytes().get(prefix.len()) == Some(&b'/'))
}

/// The HTTP status and short text a failed call to a target becomes.
///
/// - the target timed out → `504 Gateway Timeout`;
/// - its node is down or unreachable → `502 Bad Gateway`;
/// - it is not registered (or is restarting and refused), or overloaded → `503 Service
///   Unavailable`;
/// - it failed while handling the request, or the reply was lost → `502 Bad Gateway`;
/// - the request was too large for the link → `413 Content Too Large`.
pub fn status_for(err: &CallError) -> (u16, &'static str) {
    match err {
        CallError::Timeout { .. } => (504, "the service did not answer in time"),
        CallError::Unreachable { .. } => (502, "the service's node is unreachable"),
        CallError::NotFound { .. } => (503, "the service is not available"),
        CallError::Overloaded { .. } => (503, "the service is overloaded"),
        CallError::TooLarge { .. } => (413, "the request is too large"),
        CallError::ActorFailed { .. } | CallError::NoReply { .. } => {
            (502, "the service failed while handling the request")
        }
        _ => (502, "the service answered with an error"),
    }
}

/// What went wrong with a failed call to a target, as a short label for the
/// `troupe_proxy_upstream_errors_total` counter (a fixed set: the label stays bounded).
pub fn upstream_error_kind(err: &CallError) -> &'static str {
    match err {
        CallError::Timeout { .. } => "timeout",
        CallError::Unreachable { .. } => "unreachable",
        CallError::NotFound { .. } => "not_found",
        CallError::Overloaded { .. } => "overloaded",
        CallError::TooLarge { .. } => "too_large",
        CallError::ActorFailed { .. } | CallError::NoReply { .. } => "failed",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn table() -> Routes {
        let mut r = Routes::new();
        r.add(None, "/", 0);
        r.add(None, "/api", 1);
        r.add(None, "/api/v2/", 2);
        r.add(Some("Admin.example"), "/api", 3);
        r
    }

    #[test]
    fn longest_prefix_at_a_segment_boundary_wins() {
        let r = table();
        assert_eq!(r.resolve(None, "/"), Some(0));
        assert_eq!(r.resolve(None, "/index.html"), Some(0));
        assert_eq!(r.resolve(None, "/api"), Some(1));
        assert_eq!(r.resolve(None, "/api/items/1"), Some(1));
        assert_eq!(r.resolve(None, "/apix"), Some(0));
        assert_eq!(r.resolve(None, "/api/v2"), Some(2));
        assert_eq!(r.resolve(None, "/api/v2/x"), Some(2));
    }

    #[test]
    fn a_host_route_beats_a_hostless_one_for_its_host_only() {
        let r = table();
        assert_eq!(r.resolve(Some("admin.example"), "/api/x"), Some(3));
        assert_eq!(r.resolve(Some("other.example"), "/api/x"), Some(1));
        assert_eq!(r.resolve(Some("ADMIN.EXAMPLE"), "/api"), Some(3));
    }

    #[test]
    fn no_route_is_none() {
        let mut r = Routes::new();
        r.add(None, "/only", 0);
        assert_eq!(r.resolve(None, "/"), None);
        assert_eq!(Routes::new().resolve(None, "/"), None);
    }

    #[test]
    fn failures_map_to_gateway_statuses() {
        let t = |e: CallError| status_for(&e).0;
        assert_eq!(
            t(CallError::Timeout {
                target: "x".into(),
                after: Duration::ZERO
            }),
            504
        );
        assert_eq!(t(CallError::Unreachable { node: "n".into() }), 502);
        assert_eq!(
            upstream_error_kind(&CallError::Unreachable { node: "n".into() }),
            "unreachable"
        );
        assert_eq!(
            upstream_error_kind(&CallError::NoReply { target: "x".into() }),
            "failed"
        );
        assert_eq!(t(CallError::NotFound { target: "x".into() }), 503);
        assert_eq!(
            t(CallError::Overloaded {
                target: "x".into(),
                limit: 1
            }),
            503
        );
        assert_eq!(t(CallError::TooLarge { len: 2, max: 1 }), 413);
        assert_eq!(
            t(CallError::ActorFailed {
                target: "x".into(),
                reason: "r".into()
            }),
            502
        );
        assert_eq!(t(CallError::NoReply { target: "x".into() }), 502);
        assert_eq!(t(CallError::Decode("d".into())), 502);
    }

    proptest::proptest! {
        /// Whatever the table and path, a resolved route's prefix matches the path at a
        /// segment boundary, and no matching route has a longer prefix.
        #[test]
        fn resolution_is_the_longest_matching_prefix(
            prefixes in proptest::collection::vec("(/[a-c]{0,2}){1,3}", 1..6),
            path in "(/[a-c]{0,2}){0,4}",
        ) {
            let mut r = Routes::new();
            for (i, p) in prefixes.iter().enumerate() {
                r.add(None, p, i);
            }
            let path = if path.is_empty() { "/".to_string() } else { path };
            let trimmed: Vec<String> = prefixes.iter().map(|p| p.trim_end_matches('/').to_string()).collect();
            match r.resolve(None, &path) {
                Some(i) => {
                    proptest::prop_assert!(prefix_matches(&trimmed[i], &path));
                    for t in &trimmed {
                        if prefix_matches(t, &path) {
                            proptest::prop_assert!(t.len() <= trimmed[i].len());
                        }
                    }
                }
                None => {
                    for t in &trimmed {
                        proptest::prop_assert!(!prefix_matches(t, &path));
                    }
                }
            }
        }
    }
}
