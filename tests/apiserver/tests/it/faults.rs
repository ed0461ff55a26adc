//! Fault injection: failing requests with a chosen status, latency, restarts.

use std::time::{Duration, Instant};

use kube::api::{ListParams, Patch, PatchParams};
use lmi_test_apiserver::{Fault, Method};
use serde_json::json;

use crate::support::*;

/// A client without kube's default retries (which retry 429, 503 and 504).
fn no_retry_widgets(s: &lmi_test_apiserver::TestApiServer) -> kube::Api<Widget> {
    let mut config = kube::Config::new(s.url().parse().unwrap());
    config.default_retry = false;
    kube::Api::namespaced(kube::Client::try_from(config).unwrap(), "default")
}

#[tokio::test]
async fn the_next_n_matching_requests_fail_with_the_given_status() {
    let s = server().await;
    let api = no_retry_widgets(&s);
    create_widget(&api, "a", "z").await;
    s.inject(
        Fault::status(503)
            .times(2)
            .method(Method::PATCH)
            .path_contains("/status"),
    );
    let patch = Patch::Merge(json!({"status": {"observedGeneration": 1}}));
    for _ in 0..2 {
        // Requests that do not match are unaffected.
        api.get("a").await.unwrap();
        let err = status_of(api.patch_status("a", &PatchParams::default(), &patch).await);
        assert_eq!((err.code, err.reason.as_str()), (503, "ServiceUnavailable"));
    }
    api.patch_status("a", &PatchParams::default(), &patch)
        .await
        .unwrap();

    for (code, reason) in [
        (409, "Conflict"),
        (429, "TooManyRequests"),
        (500, "InternalError"),
    ] {
        s.fail_next(1, code);
        let err = status_of(api.list(&ListParams::default()).await);
        assert_eq!((err.code, err.reason.as_str()), (code, reason));
    }
    api.list(&ListParams::default()).await.unwrap();
}

#[tokio::test]
async fn kube_default_retries_ride_out_503s_but_not_500s() {
    let s = server().await;
    let api = widgets(&s, "default");
    create_widget(&api, "a", "z").await;
    s.inject(Fault::status(503).times(2).method(Method::GET));
    api.get("a").await.expect("kube retries 503");
    s.inject(Fault::status(500).method(Method::GET));
    assert_eq!(status_of(api.get("a").await).code, 500);
}

#[tokio::test]
async fn latency_delays_every_request_until_cleared() {
    let s = server().await;
    let api = widgets(&s, "default");
    s.set_latency(Duration::from_millis(1500));
    let t = Instant::now();
    api.list(&ListParams::default()).await.unwrap();
    assert!(t.elapsed() >= Duration::from_millis(1500));
    s.clear_faults();
    let t = Instant::now();
    api.list(&ListParams::default()).await.unwrap();
    assert!(t.elapsed() < Duration::from_millis(1500));
}

#[tokio::test]
async fn restart_keeps_objects_and_resource_versions_continue() {
    let s = server().await;
    let api = widgets(&s, "default");
    let a = create_widget(&api, "a", "z").await;
    s.stop().await;
    assert!(api.get("a").await.is_err(), "nothing listens while stopped");
    s.resume().await.unwrap();
    let got = api.get("a").await.unwrap();
    assert_eq!(got.metadata.uid, a.metadata.uid);
    let b = create_widget(&api, "b", "z").await;
    let rv = |w: &Widget| {
        w.metadata
            .resource_version
            .as_deref()
            .unwrap()
            .parse::<u64>()
            .unwrap()
    };
    assert!(rv(&b) > rv(&a));
}
