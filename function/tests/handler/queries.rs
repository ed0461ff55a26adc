//! Answers: every query kind against brute force, HTTP events, 50 concurrent invocations,
//! logs and metrics.

use std::sync::Arc;

use base64::Engine as _;
use serde_json::{Value, json};

use crate::bedrock::BedrockStub;
use crate::fixture::Outcome;
use crate::fixture::{
    self, CATEGORIES, DIM, Function, MODEL, Product, Rng, assert_results, base_env, brute_force,
};

const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDRtest-image";

async fn setup(products: &[Product]) -> (Function, BedrockStub) {
    let stub = BedrockStub::start(DIM).await;
    let path = fixture::catalog_file(products, DIM);
    let f = Function::ready(base_env(&path.to_string_lossy(), &stub.endpoint())).await;
    (f, stub)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_query_kind_is_answered_exactly() {
    let products = fixture::products(1, 600, DIM);
    let (f, stub) = setup(&products).await;
    let mut rng = Rng::new(99);

    // Text, embedded by Bedrock.
    let text_vec = rng.vector(DIM);
    stub.text("red running shoes", text_vec.clone());
    let r = f
        .invoke(&json!({"text": "red running shoes", "topK": 5, "categories": ["shoes"]}))
        .await
        .response();
    assert_results(
        &r,
        &brute_force(&products, &text_vec, 5, &["shoes"], None, &[]),
    );
    assert_eq!(r["model"], MODEL);
    assert_eq!(r["queryKind"], "text");
    assert!(r["timings"]["embedMs"].as_f64().expect("embedMs") >= 0.0);

    // Image (base64), embedded by Bedrock.
    let image_vec = rng.vector(DIM);
    let b64 = base64::engine::general_purpose::STANDARD.encode(PNG);
    stub.image(&b64, image_vec.clone());
    let r = f.invoke(&json!({"image": b64, "topK": 7})).await.response();
    assert_results(&r, &brute_force(&products, &image_vec, 7, &[], None, &[]));
    assert_eq!(r["model"], MODEL);
    assert_eq!(r["queryKind"], "image");

    // Raw vector, with every option.
    let v = rng.vector(DIM);
    let unfiltered = brute_force(&products, &v, 3, &["hats", "bags"], None, &[]);
    let excluded = [unfiltered[0].0.as_str()];
    let min = unfiltered[2].1 - 0.01;
    let r = f
        .invoke(
            &json!({"vector": v, "topK": 10, "categories": ["hats", "bags"],
                        "minScore": min, "excludeIds": excluded}),
        )
        .await
        .response();
    let expected = brute_force(&products, &v, 10, &["hats", "bags"], Some(min), &excluded);
    assert!(
        !expected.is_empty() && expected.len() < 10,
        "minScore must cut the list"
    );
    assert_results(&r, &expected);
    assert_eq!(r["model"], Value::Null);
    assert_eq!(r["timings"]["embedMs"], Value::Null);

    // Product id: similar to that product, without it.
    let p = &products[42];
    let r = f.invoke(&json!({"productId": p.id})).await.response();
    let expected = brute_force(&products, &p.vector, 10, &[], None, &[p.id.as_str()]);
    assert_results(&r, &expected);
    // Payload columns come back with each hit.
    let top = &r["results"][0];
    let product = products
        .iter()
        .find(|q| q.id == top["id"])
        .expect("known id");
    assert_eq!(top["category"], product.category.as_str());
    assert_eq!(
        top["payload"],
        json!({"name": product.name, "price": product.price})
    );
    assert!(r["scannedRows"].as_u64() == Some(600));
    assert!(r["batchSize"].as_u64() >= Some(1));
    for key in ["queueMs", "searchMs", "totalMs"] {
        assert!(
            r["timings"][key].as_f64().is_some(),
            "timings.{key} missing: {r}"
        );
    }

    // The stub saw exactly the two embedding requests, for the configured model.
    let received = stub.received();
    assert_eq!(received.len(), 2);
    assert!(
        received
            .iter()
            .all(|r| r.model_id == MODEL && r.status == 200)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_events_carry_the_same_json_and_get_status_codes() {
    let products = fixture::products(2, 300, DIM);
    let (f, _stub) = setup(&products).await;
    let p = &products[7];
    let body = json!({"productId": p.id, "topK": 4}).to_string();

    // Function URL / HTTP API (payload 2.0), body base64-encoded.
    let url_event = json!({
        "version": "2.0", "rawPath": "/", "routeKey": "$default",
        "requestContext": {"http": {"method": "POST", "path": "/"}},
        "headers": {"content-type": "application/json"},
        "body": base64::engine::general_purpose::STANDARD.encode(&body),
        "isBase64Encoded": true
    });
    let r = f.invoke(&url_event).await.response();
    assert_eq!(r["statusCode"], 200);
    assert_eq!(r["headers"]["content-type"], "application/json");
    let inner: Value = serde_json::from_str(r["body"].as_str().expect("body")).expect("json");
    assert_results(
        &inner,
        &brute_force(&products, &p.vector, 4, &[], None, &[p.id.as_str()]),
    );

    // API Gateway REST (payload 1.0).
    let rest = |method: &str, body: &str| {
        json!({"resource": "/similar", "path": "/similar", "httpMethod": method,
               "requestContext": {"stage": "prod"}, "body": body, "isBase64Encoded": false})
    };
    let r = f.invoke(&rest("POST", &body)).await.response();
    assert_eq!(r["statusCode"], 200);

    let cases = [
        (rest("GET", ""), 405, "MethodNotAllowed"),
        (rest("POST", ""), 400, "MissingQuery"),
        (rest("POST", "{\"productId\": "), 400, "InvalidJson"),
        (
            rest("POST", "{\"productId\": \"nope\"}"),
            404,
            "UnknownProduct",
        ),
        (
            rest("POST", "{\"productId\": \"sku-00001\", \"topK\": 0}"),
            400,
            "InvalidRequest",
        ),
    ];
    for (event, status, error_type) in cases {
        let r = f.invoke(&event).await.response();
        assert_eq!(r["statusCode"], status, "{event}: {r}");
        let inner: Value = serde_json::from_str(r["body"].as_str().expect("body")).expect("json");
        assert_eq!(inner["errorType"], error_type, "{inner}");
        assert!(inner["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_invocations_are_answered_correctly() {
    let products = Arc::new(fixture::products(3, 2000, DIM));
    let (f, _stub) = setup(&products).await;
    let f = Arc::new(f);
    let mut rng = Rng::new(5);
    let mut tasks = Vec::new();
    for i in 0..50 {
        let k = 1 + rng.below(20);
        let cats: Vec<&str> = match i % 3 {
            0 => vec![],
            1 => vec![CATEGORIES[rng.below(4)]],
            _ => vec![CATEGORIES[0], CATEGORIES[3]],
        };
        let (request, query_vec, excluded) = if i % 2 == 0 {
            let v = rng.vector(DIM);
            (json!({"vector": v, "topK": k, "categories": cats}), v, None)
        } else {
            let p = &products[rng.below(products.len())];
            (
                json!({"productId": p.id, "topK": k, "categories": cats}),
                p.vector.clone(),
                Some(p.id.clone()),
            )
        };
        let expected = brute_force(
            &products,
            &query_vec,
            k,
            &cats,
            None,
            &excluded.iter().map(String::as_str).collect::<Vec<_>>(),
        );
        let f = Arc::clone(&f);
        tasks.push(tokio::spawn(async move {
            let r = f.invoke(&request).await.response();
            assert_results(&r, &expected);
            r["batchSize"].as_u64().unwrap_or(0)
        }));
    }
    let mut batched = 0;
    for t in tasks {
        if t.await.expect("task") > 1 {
            batched += 1;
        }
    }
    // Lambda Managed Instances mode: several invocations were in the function at once.
    assert!(
        f.max_in_flight() > 1,
        "invocations never overlapped (max in flight {})",
        f.max_in_flight()
    );
    eprintln!(
        "max in flight {}, {batched}/50 queries shared a pass",
        f.max_in_flight()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_are_json_with_request_id_and_metrics_are_emf() {
    let products = fixture::products(4, 200, DIM);
    let (f, _stub) = setup(&products).await;
    f.invoke(&json!({"productId": products[0].id}))
        .await
        .response();
    let refused = f.invoke(&json!({"productId": "missing"})).await;
    assert!(
        matches!(&refused, Outcome::Error { header, .. } if header == "UnknownProduct"),
        "{refused:?}"
    );

    let lines = f
        .json_lines_until(std::time::Duration::from_secs(10), |l| {
            l.get("_aws").is_some() && l.get("Errors").is_some()
        })
        .await;
    let answered = lines
        .iter()
        .find(|l| l["message"] == "query answered")
        .unwrap_or_else(|| panic!("no 'query answered' log line in {lines:#?}"));
    assert!(
        answered["span"]["requestId"]
            .as_str()
            .is_some_and(|s| s.len() == 36 && s.split('-').count() == 5),
        "the request id the runtime gave: {answered}"
    );
    assert_eq!(answered["span"]["functionVersion"], "3");
    assert_eq!(answered["level"], "INFO");

    let emf: Vec<&Value> = lines.iter().filter(|l| l.get("_aws").is_some()).collect();
    let query = emf
        .iter()
        .find(|l| l.get("QueryLatency").is_some())
        .expect("a query metric line");
    assert_eq!(query["QueryKind"], "productId");
    assert_eq!(query["ScanRows"], 200);
    assert!(query["BatchSize"].as_u64() >= Some(1));
    assert_eq!(
        query["_aws"]["CloudWatchMetrics"][0]["Namespace"],
        "LmiSimilarity"
    );
    let error = emf
        .iter()
        .find(|l| l.get("Errors").is_some())
        .expect("an error metric line");
    assert_eq!(error["ErrorType"], "UnknownProduct");
    assert_eq!(error["functionVersion"], "3");
}
