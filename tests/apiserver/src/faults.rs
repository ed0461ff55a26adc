//! Faults injected on demand: failing requests with a chosen status, added latency.

use std::time::Duration;

use axum::http::Method;

use crate::status::ApiError;

/// Fail matching requests with `status` (409, 429, 500, 503, …) `times` times.
#[derive(Clone, Debug)]
pub struct Fault {
    pub status: u16,
    pub times: usize,
    pub method: Option<Method>,
    pub path_contains: Option<String>,
    /// Whether watch requests (`?watch=true`) match; by default they do not, so that a fault aimed
    /// at writes is not spent on a watcher's reconnect.
    pub include_watches: bool,
}

impl Fault {
    /// Fails the next matching request with `status`.
    pub fn status(status: u16) -> Self {
        Self {
            status,
            times: 1,
            method: None,
            path_contains: None,
            include_watches: false,
        }
    }
    /// How many matching requests fail.
    pub fn times(mut self, n: usize) -> Self {
        self.times = n;
        self
    }
    /// Only requests with this method (`GET`, `PATCH`, …).
    pub fn method(mut self, m: Method) -> Self {
        self.method = Some(m);
        self
    }
    /// Only requests whose path contains this text (e.g. `/status`, `capacityproviders`).
    pub fn path_contains(mut self, s: impl Into<String>) -> Self {
        self.path_contains = Some(s.into());
        self
    }
    /// Let the fault also hit watch requests.
    pub fn include_watches(mut self) -> Self {
        self.include_watches = true;
        self
    }

    fn matches(&self, method: &Method, path: &str, is_watch: bool) -> bool {
        (self.include_watches || !is_watch)
            && self.method.as_ref().is_none_or(|m| m == method)
            && self
                .path_contains
                .as_deref()
                .is_none_or(|p| path.contains(p))
    }

    /// The error answered for this fault, worded like the real server's.
    pub fn error(&self) -> ApiError {
        let (reason, message) = match self.status {
            409 => (
                "Conflict",
                "Operation cannot be fulfilled: the object has been modified; please apply your changes to the latest version and try again (injected fault)",
            ),
            410 => ("Expired", "too old resource version (injected fault)"),
            429 => (
                "TooManyRequests",
                "the server has received too many requests and has asked us to try again later (injected fault)",
            ),
            500 => (
                "InternalError",
                "an error on the server (\"injected fault\") has prevented the request from succeeding",
            ),
            503 => (
                "ServiceUnavailable",
                "the server is currently unable to handle the request (injected fault)",
            ),
            504 => (
                "Timeout",
                "the server was unable to return a response in the time allotted (injected fault)",
            ),
            _ => ("InternalError", "injected fault"),
        };
        let mut e = ApiError::new(self.status, reason, message);
        if self.status == 429 || self.status == 503 {
            e.retry_after = Some(1);
        }
        e
    }
}

/// The active faults.
#[derive(Debug, Default)]
pub struct Faults {
    rules: Vec<Fault>,
    pub latency: Duration,
}

impl Faults {
    pub fn add(&mut self, f: Fault) {
        if f.times > 0 {
            self.rules.push(f);
        }
    }
    pub fn clear(&mut self) {
        self.rules.clear();
        self.latency = Duration::ZERO;
    }
    /// Consumes one use of the first matching fault.
    pub fn take(&mut self, method: &Method, path: &str, is_watch: bool) -> Option<ApiError> {
        let i = self
            .rules
            .iter()
            .position(|f| f.matches(method, path, is_watch))?;
        let err = self.rules[i].error();
        self.rules[i].times -= 1;
        if self.rules[i].times == 0 {
            self.rules.remove(i);
        }
        Some(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fault_fires_the_given_number_of_times_on_matching_requests_only() {
        let mut f = Faults::default();
        f.add(
            Fault::status(503)
                .times(2)
                .method(Method::PATCH)
                .path_contains("/status"),
        );
        assert!(
            f.take(&Method::GET, "/apis/x/v1/things/a/status", false)
                .is_none()
        );
        assert!(
            f.take(&Method::PATCH, "/apis/x/v1/things/a", false)
                .is_none()
        );
        assert_eq!(
            f.take(&Method::PATCH, "/apis/x/v1/things/a/status", false)
                .unwrap()
                .code,
            503
        );
        assert!(
            f.take(&Method::PATCH, "/apis/x/v1/things/a/status", false)
                .is_some()
        );
        assert!(
            f.take(&Method::PATCH, "/apis/x/v1/things/a/status", false)
                .is_none()
        );
    }
}
