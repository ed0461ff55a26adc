//! Bad input gets the handler's own function error (`errorType`, an `errorMessage` naming the
//! problem) under AWS's runtime emulator, and the environment keeps answering; Bedrock failures
//! are mapped and throttling is retried.

use base64::Engine as _;
use serde_json::{Value, json};

use crate::bedrock::{BedrockStub, Failure};
use crate::fixture::Outcome;
use crate::fixture::{self, DIM, Function, base_env, brute_force, with};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_bad_input_is_answered_with_its_error() {
    let products = fixture::products(10, 100, DIM);
    let stub = BedrockStub::start(DIM).await;
    let path = fixture::catalog_file(&products, DIM);
    let f = Function::ready(base_env(&path.to_string_lossy(), &stub.endpoint())).await;
    let id = products[0].id.as_str();
    // (request, HTTP status an HTTP event gets, errorType, field the message names)
    let cases: Vec<(Value, u16, &str, Option<&str>)> = vec![
        (
            json!({"vector": [1.0, 2.0]}),
            400,
            "InvalidRequest",
            Some("vector"),
        ),
        (
            json!({"vector": vec![0.0; DIM]}),
            400,
            "InvalidRequest",
            Some("vector"),
        ),
        (
            json!({"productId": "sku-nope"}),
            404,
            "UnknownProduct",
            Some("productId"),
        ),
        (json!({"text": ""}), 400, "InvalidRequest", Some("text")),
        (
            json!({"text": "x".repeat(9000)}),
            413,
            "PayloadTooLarge",
            Some("text"),
        ),
        (json!({"image": ""}), 400, "InvalidRequest", Some("image")),
        (
            json!({"image": "***"}),
            400,
            "InvalidRequest",
            Some("image"),
        ),
        (
            // Over the 4 MiB decoded limit, under Lambda's 6 MB payload.
            json!({"image": "A".repeat(5_700_000)}),
            413,
            "PayloadTooLarge",
            Some("image"),
        ),
        (
            json!({"image": "aGVsbG8gd29ybGQ="}),
            415,
            "UnsupportedImage",
            Some("image"),
        ),
        (
            json!({"productId": id, "topK": 0}),
            400,
            "InvalidRequest",
            Some("topK"),
        ),
        (
            json!({"productId": id, "topK": 51}),
            400,
            "InvalidRequest",
            Some("topK"),
        ),
        (
            json!({"productId": id, "topK": 2.5}),
            400,
            "InvalidRequest",
            Some("topK"),
        ),
        (
            json!({"productId": id, "categories": ["shoes", "spaceships"]}),
            400,
            "UnknownCategory",
            Some("categories[1]"),
        ),
        (
            json!({"productId": id, "minScore": -3}),
            400,
            "InvalidRequest",
            Some("minScore"),
        ),
        (
            json!({"productId": id, "excludeIds": "sku-1"}),
            400,
            "InvalidRequest",
            Some("excludeIds"),
        ),
        (
            json!({"productId": id, "colour": "red"}),
            400,
            "InvalidRequest",
            Some("colour"),
        ),
        (
            json!({"text": "a", "vector": [1.0]}),
            400,
            "InvalidRequest",
            Some("vector"),
        ),
        (
            json!({"productId": id, "topK": -1}),
            400,
            "InvalidRequest",
            Some("topK"),
        ),
        (
            json!({"productId": id, "topK": 1e12}),
            400,
            "InvalidRequest",
            Some("topK"),
        ),
        (
            json!({"productId": id, "topK": "5"}),
            400,
            "InvalidRequest",
            Some("topK"),
        ),
        (
            json!({"vector": vec![json!("0.5"); DIM]}),
            400,
            "InvalidRequest",
            Some("vector[0]"),
        ),
        (
            json!({"productId": id, "minScore": "high"}),
            400,
            "InvalidRequest",
            Some("minScore"),
        ),
        (json!({}), 400, "MissingQuery", None),
        (json!("just a string"), 400, "InvalidRequest", None),
    ];
    for (request, status, error_type, field) in &cases {
        let shown = request.to_string().chars().take(80).collect::<String>();
        let body = match f.invoke(request).await {
            Outcome::Error { body, .. } => body,
            other => panic!("{shown}: expected a function error, got {other:?}"),
        };
        assert_eq!(body["errorType"], *error_type, "{shown}: {body}");
        let message = body["errorMessage"].as_str().expect("errorMessage");
        if let Some(field) = field {
            let name = field.split('[').next().unwrap_or(field);
            assert!(
                message.contains(name),
                "{shown}: errorMessage '{message}' names no field"
            );
        }
        // The same request over HTTP (a function URL) is answered with its status.
        let event = json!({"requestContext": {"http": {"method": "POST"}},
                           "body": request.to_string(), "isBase64Encoded": false});
        let response = f.invoke(&event).await.response();
        assert_eq!(response["statusCode"], *status, "{shown}: {response}");
        let http_body: Value =
            serde_json::from_str(response["body"].as_str().expect("body")).expect("JSON body");
        assert_eq!(http_body["errorType"], *error_type, "{shown}: {http_body}");
        assert_eq!(http_body["field"].as_str(), *field, "{shown}: {http_body}");
    }

    // Malformed JSON reaches the handler as it came (AWS's runtime passes the body on
    // untouched) and gets the handler's own error naming where the syntax broke.
    for raw in [
        &b"{\"productId\": "[..],
        b"not json at all",
        b"",
        b"\xff\xfe",
    ] {
        let invocation = f.environment.invoke(raw).await.expect("invoke");
        let body = invocation.json();
        assert_eq!(body["errorType"], "InvalidJson", "{raw:?}: {body}");
        assert!(
            body["errorMessage"]
                .as_str()
                .is_some_and(|m| m.contains("not valid JSON") && m.contains("line 1")),
            "{raw:?}: {body}"
        );
    }
    // Nothing reached Bedrock, and the function still answers.
    assert!(stub.received().is_empty());
    let r = f
        .invoke(&json!({"productId": id, "topK": 1}))
        .await
        .response();
    assert_eq!(r["results"].as_array().map(Vec::len), Some(1));
}

async fn embedding_function(attempts: &str) -> (Function, BedrockStub, Vec<fixture::Product>) {
    let products = fixture::products(11, 200, DIM);
    let stub = BedrockStub::start(DIM).await;
    let path = fixture::catalog_file(&products, DIM);
    let env = with(
        base_env(&path.to_string_lossy(), &stub.endpoint()),
        &[("LMI_BEDROCK_MAX_ATTEMPTS", attempts)],
    );
    let f = Function::ready(env).await;
    (f, stub, products)
}

fn throttled() -> Failure {
    Failure {
        status: 429,
        code: "ThrottlingException",
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bedrock_throttling_is_retried_until_it_succeeds() {
    let (f, stub, products) = embedding_function("3").await;
    let v = fixture::Rng::new(1).vector(DIM);
    stub.text("blue hat", v.clone());
    stub.fail_next([throttled(), throttled()]);
    let r = f
        .invoke(&json!({"text": "blue hat", "topK": 3}))
        .await
        .response();
    fixture::assert_results(&r, &brute_force(&products, &v, 3, &[], None, &[]));
    let statuses: Vec<u16> = stub.received().iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![429, 429, 200]);
    // Every attempt carried the same documented request.
    let bodies: Vec<Value> = stub.received().into_iter().map(|r| r.body).collect();
    assert!(bodies.windows(2).all(|w| w[0] == w[1]));
    assert_eq!(
        bodies[0]["singleEmbeddingParams"]["text"]["value"],
        "blue hat"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bedrock_failures_are_mapped_to_clear_errors() {
    let (f, stub, _) = embedding_function("2").await;
    stub.text("green bag", fixture::Rng::new(2).vector(DIM));

    // Throttled beyond the attempts: a function error (direct) ...
    stub.fail_next([throttled(), throttled()]);
    match f.invoke(&json!({"text": "green bag"})).await {
        Outcome::Error { body, .. } => {
            assert_eq!(body["errorType"], "EmbeddingThrottled", "{body}");
        }
        other => panic!("expected a function error, got {other:?}"),
    }
    // ... and a 429 over HTTP.
    stub.fail_next([throttled(), throttled()]);
    let event = json!({"requestContext": {"http": {"method": "POST"}},
                       "body": "{\"text\": \"green bag\"}", "isBase64Encoded": false});
    let r = f.invoke(&event).await.response();
    assert_eq!(r["statusCode"], 429);

    // Access denied is not retried and says what permission is missing.
    stub.fail_next([Failure {
        status: 403,
        code: "AccessDeniedException",
    }]);
    let before = stub.received().len();
    match f.invoke(&json!({"text": "green bag"})).await {
        Outcome::Error { body, .. } => {
            assert_eq!(body["errorType"], "EmbeddingAccessDenied");
            let message = body["errorMessage"].as_str().unwrap_or_default();
            assert!(message.contains("bedrock:InvokeModel"), "{body}");
            // Bedrock's own message names the function's role: the caller never sees it, the
            // log has it under the request id the message gives.
            assert!(!message.contains("arn:aws:"), "the role leaked: {body}");
            let request_id = message
                .split("request id ")
                .nth(1)
                .and_then(|rest| rest.split(':').next())
                .unwrap_or_else(|| panic!("no request id in {message}"))
                .to_owned();
            let lines = f
                .json_lines_until(std::time::Duration::from_secs(5), |l| {
                    l["errorType"] == "EmbeddingAccessDenied"
                })
                .await;
            let logged = lines
                .iter()
                .find(|l| l["errorType"] == "EmbeddingAccessDenied")
                .expect("the failure is logged");
            assert!(
                logged["detail"]
                    .as_str()
                    .is_some_and(|d| d.contains(crate::bedrock::ROLE_ARN)),
                "{logged}"
            );
            assert_eq!(
                logged["span"]["requestId"].as_str(),
                Some(request_id.as_str()),
                "{logged}"
            );
        }
        other => panic!("expected a function error, got {other:?}"),
    }
    assert_eq!(
        stub.received().len(),
        before + 1,
        "access denied must not be retried"
    );

    // Bedrock refusing the input is the caller's problem, named by field.
    let bmp = base64::engine::general_purpose::STANDARD.encode(b"\xff\xd8\xffnot really a jpeg");
    match f.invoke(&json!({"image": bmp})).await {
        Outcome::Error { body, .. } => {
            assert_eq!(body["errorType"], "EmbeddingInputRejected", "{body}");
            assert!(
                body["errorMessage"]
                    .as_str()
                    .is_some_and(|m| m.contains("image")),
                "{body}"
            );
        }
        other => panic!("expected a function error, got {other:?}"),
    }

    // And the function keeps answering.
    let r = f.invoke(&json!({"text": "green bag"})).await.response();
    assert!(r["results"].as_array().is_some_and(|a| !a.is_empty()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_embedding_model_text_and_image_are_refused_and_vectors_answered() {
    let products = fixture::products(12, 60, DIM);
    let stub = BedrockStub::start(DIM).await;
    let path = fixture::catalog_file(&products, DIM);
    let mut env = base_env(&path.to_string_lossy(), &stub.endpoint());
    env.retain(|(name, _)| name != "LMI_EMBEDDING_MODEL_ID");
    let f = Function::ready(env).await;
    for (request, field) in [
        (json!({"text": "red running shoes"}), "text"),
        (
            json!({"image": base64::engine::general_purpose::STANDARD.encode(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDRtest-image")}),
            "image",
        ),
    ] {
        let body = match f.invoke(&request).await {
            Outcome::Error { body, .. } => body,
            other => panic!("{field}: expected a function error, got {other:?}"),
        };
        assert_eq!(body["errorType"], "EmbeddingNotConfigured", "{body}");
        assert!(
            body["errorMessage"]
                .as_str()
                .is_some_and(|m| m.contains("spec.embedding")),
            "{body}"
        );
    }
    assert!(stub.received().is_empty(), "Bedrock was called");
    let query = products[3].vector.clone();
    let r = f
        .invoke(&json!({"vector": query, "topK": 3}))
        .await
        .response();
    let expected = brute_force(&products, &products[3].vector, 3, &[], None, &[]);
    let ids: Vec<&str> = r["results"]
        .as_array()
        .expect("results")
        .iter()
        .filter_map(|h| h["id"].as_str())
        .collect();
    assert_eq!(
        ids,
        expected
            .iter()
            .map(|(id, _)| id.as_str())
            .collect::<Vec<_>>()
    );
    assert_eq!(r["model"], Value::Null, "{r}");
}
