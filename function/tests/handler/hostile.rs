//! What must not take an execution environment down: a Bedrock that never answers, and an
//! answer larger than Lambda can return.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::bedrock::BedrockStub;
use crate::fixture::{self, DIM, Function, Outcome, base_env, brute_force, with};

/// Text queries end before the function's timeout with the handler's own error when Bedrock
/// stops answering, and a worker is always left for vector queries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bedrock_that_never_answers_holds_no_worker() {
    const WORKERS: usize = 4;
    // Long enough that "answered while Bedrock holds the text queries" cannot be confused with
    // "answered after they timed out", however loaded the machine.
    let timeout = Duration::from_secs(10);
    let products = fixture::products(31, 300, DIM);
    let stub = BedrockStub::start(DIM).await;
    let path = fixture::catalog_file(&products, DIM);
    let env = with(
        base_env(&path.to_string_lossy(), &stub.endpoint()),
        &[
            ("AWS_LAMBDA_MAX_CONCURRENCY", &WORKERS.to_string()),
            (
                "AWS_LAMBDA_FUNCTION_TIMEOUT",
                &timeout.as_secs().to_string(),
            ),
            // The SDK's own per-attempt timeout is far away: the invocation's deadline is what
            // must end the call.
            ("LMI_BEDROCK_TIMEOUT_MS", "120000"),
            ("LMI_BEDROCK_MAX_ATTEMPTS", "1"),
        ],
    );
    let f = std::sync::Arc::new(Function::ready(env).await);
    stub.text("lost in transit", fixture::Rng::new(5).vector(DIM));
    stub.hang(true);

    // As many text queries as there are workers.
    let texts: Vec<_> = (0..WORKERS)
        .map(|_| {
            let f = std::sync::Arc::clone(&f);
            tokio::spawn(async move {
                let started = Instant::now();
                let outcome = f.invoke(&json!({"text": "lost in transit"})).await;
                (outcome, started.elapsed())
            })
        })
        .collect();
    // Wait until Bedrock holds what it will hold.
    let waiting = Instant::now();
    while stub.received().len() < WORKERS - 1 && waiting.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Vector queries sent right after are answered, exactly, while Bedrock still holds the text
    // queries (all but the one refused for the slot kept from Bedrock): beside them, not
    // behind them.
    for (i, p) in products.iter().take(5).enumerate() {
        let r = f
            .invoke(&json!({"vector": p.vector, "topK": 3}))
            .await
            .response();
        fixture::assert_results(&r, &brute_force(&products, &p.vector, 3, &[], None, &[]));
        let held = texts.iter().filter(|t| !t.is_finished()).count();
        assert!(
            held >= WORKERS - 1,
            "vector query {i} was answered only after Bedrock's text queries ended"
        );
    }

    let mut timed_out = 0;
    for text in texts {
        let (outcome, took) = text.await.expect("text query task");
        let Outcome::Error { header, body } = outcome else {
            panic!(
                "a text query was answered by a Bedrock that never answers: {outcome:?}\n{}",
                f.output().join("\n")
            );
        };
        assert!(
            took < timeout,
            "{header} came after the function's timeout ({took:?})"
        );
        match header.as_str() {
            "EmbeddingTimeout" => {
                timed_out += 1;
                assert!(
                    body["errorMessage"]
                        .as_str()
                        .is_some_and(|m| m.contains("Bedrock did not answer")),
                    "{body}"
                );
            }
            // The slot kept from Bedrock: refused at once, not at the deadline.
            "EmbeddingBusy" => assert!(took < timeout / 2, "{took:?}"),
            other => {
                panic!("unexpected error {other}: {body} (not the emulator's Sandbox.Timedout)")
            }
        }
    }
    assert_eq!(
        timed_out,
        WORKERS - 1,
        "one slot of {WORKERS} is kept from Bedrock"
    );
    assert!(
        !f.output().iter().any(|l| l.contains("Sandbox.Timedout")),
        "an invocation ran into the emulator's timeout"
    );

    // Every slot came back: with Bedrock answering again, text queries are answered.
    stub.hang(false);
    let v = fixture::Rng::new(5).vector(DIM);
    let r = f
        .invoke(&json!({"text": "lost in transit", "topK": 4}))
        .await
        .response();
    fixture::assert_results(&r, &brute_force(&products, &v, 4, &[], None, &[]));
}

/// An answer over Lambda's 6 MB response limit is the handler's own error saying what to ask
/// for instead, not the runtime's `Function.ResponseSizeTooLarge`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_over_six_megabytes_is_refused_with_a_way_out() {
    let mut products = fixture::products(32, 60, DIM);
    for (i, p) in products.iter_mut().enumerate() {
        p.name = format!("{i:03} {}", "a very long description ".repeat(9_000));
    }
    let path = fixture::catalog_file(&products, DIM);
    let f = Function::ready(base_env(&path.to_string_lossy(), "http://127.0.0.1:9")).await;
    let id = products[0].id.as_str();

    match f.invoke(&json!({"productId": id, "topK": 40})).await {
        Outcome::Error { header, body } => {
            assert_eq!(header, "ResponseTooLarge", "{body}");
            let message = body["errorMessage"].as_str().unwrap_or_default();
            assert!(
                message.contains("topK") && message.contains("6 MB"),
                "{message}"
            );
        }
        other => panic!("an answer of about 8 MB was sent: {other:?}"),
    }
    // A smaller page of the same query is answered, and exactly.
    let r = f
        .invoke(&json!({"productId": id, "topK": 5}))
        .await
        .response();
    fixture::assert_results(
        &r,
        &brute_force(&products, &products[0].vector, 5, &[], None, &[id]),
    );
}

/// A panic in a search pass (a bug) fails the invocations of that pass with the handler's own
/// error, and the process exits so that Lambda replaces the execution environment: a runtime
/// whose engine is gone would otherwise keep taking invocations it can never answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_in_a_search_fails_its_invocation_and_ends_the_environment() {
    let products = fixture::products(33, 100, DIM);
    let path = fixture::catalog_file(&products, DIM);
    let env = with(
        base_env(&path.to_string_lossy(), "http://127.0.0.1:9"),
        &[("LMI_TEST_FAULT", "panic-in-first-search")],
    );
    let mut f = Function::ready(env).await;
    let started = Instant::now();
    match f
        .invoke(&json!({"productId": products[0].id, "topK": 3}))
        .await
    {
        Outcome::Error { header, body } => {
            assert_eq!(header, "SearchFailed", "{body}");
            let message = body["errorMessage"].as_str().unwrap_or_default();
            assert!(
                message.contains("replaced") && message.contains("request id"),
                "{body}"
            );
        }
        other => panic!("the failed pass was answered: {other:?}"),
    }
    // A hung engine never answers; anything short of the invocation timeout proves it did.
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the failed pass was answered only after {:?}",
        started.elapsed()
    );
    let status = f.exit(Duration::from_secs(15)).await;
    let log = f.output().join("\n");
    assert!(
        status.is_some(),
        "the environment kept running with a dead engine:\n{log}"
    );
    assert!(log.contains("exiting so that Lambda replaces"), "{log}");
}

/// Requests built to exhaust memory (arrays far past their limits, huge strings, deep nesting,
/// large ignored fields, the same inside HTTP bodies) are each refused with a 4xx, concurrently,
/// and the environment keeps answering. (Their memory cost is measured by
/// `scripts/bench-handler --hostile`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_requests_are_refused_and_the_environment_keeps_answering() {
    const SIZE: usize = 5_800_000;
    let products = fixture::products(34, 300, DIM);
    let path = fixture::catalog_file(&products, DIM);
    let env = with(
        base_env(&path.to_string_lossy(), "http://127.0.0.1:9"),
        &[("AWS_LAMBDA_MAX_CONCURRENCY", "16")],
    );
    let f = std::sync::Arc::new(Function::ready(env).await);
    let requests = lmi_test_support::lambda::hostile_requests(SIZE);
    let tasks: Vec<_> = requests
        .into_iter()
        .cycle()
        .take(32)
        .map(|(name, body)| {
            let f = std::sync::Arc::clone(&f);
            tokio::spawn(async move {
                let invocation = f.environment.invoke(&body).await.expect("invoke");
                (name, invocation.error_type(), invocation.json())
            })
        })
        .collect();
    for task in tasks {
        let (name, error_type, body) = task.await.expect("task");
        if let Some(status) = body["statusCode"].as_u64() {
            // An HTTP event: the error is the response.
            assert!((400..500).contains(&status), "{name}: {body}");
            assert!(error_type.is_none(), "{name}: {body}");
        } else {
            let error_type = error_type.unwrap_or_else(|| panic!("{name} was answered: {body}"));
            assert!(
                [
                    "InvalidRequest",
                    "PayloadTooLarge",
                    "InvalidJson",
                    "UnsupportedImage"
                ]
                .contains(&error_type.as_str()),
                "{name}: {error_type} {body}"
            );
        }
    }
    let r = f
        .invoke(&json!({"vector": products[1].vector, "topK": 3}))
        .await
        .response();
    fixture::assert_results(
        &r,
        &brute_force(&products, &products[1].vector, 3, &[], None, &[]),
    );
}
