//! Init failures end the execution environment's init under AWS's runtime emulator, and the
//! log names the cause in one line (`init failed`, with a specific `errorType`).

use crate::fixture::{self, DIM, Function, base_env, with};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_catalog_is_an_init_error() {
    let missing = fixture::temp_dir("missing").join("nope.parquet");
    let e =
        Function::init_failure(base_env(&missing.to_string_lossy(), "http://127.0.0.1:9")).await;
    assert_eq!(e.error_type, "CatalogNotFound");
    assert!(e.message.contains("nope.parquet"), "{e:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_catalog_of_another_dimension_is_an_init_error() {
    let path = fixture::catalog_file(&fixture::products(1, 20, DIM), DIM);
    let env = with(
        base_env(&path.to_string_lossy(), "http://127.0.0.1:9"),
        &[("LMI_EMBEDDING_DIMENSIONS", "384")],
    );
    let e = Function::init_failure(env).await;
    assert_eq!(e.error_type, "CatalogDimensionMismatch");
    assert!(
        e.message.contains("256") && e.message.contains("384"),
        "{e:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_that_is_not_a_catalog_is_an_init_error() {
    let path = fixture::temp_dir("garbage").join("catalog.parquet");
    std::fs::write(&path, b"this is not parquet").expect("write");
    let e = Function::init_failure(base_env(&path.to_string_lossy(), "http://127.0.0.1:9")).await;
    assert_eq!(e.error_type, "CatalogInvalid");
}

/// A catalog whose footer claims more rows than its file can hold is an init error reported to
/// the runtime (`/init/error`), not an allocation failure that aborts the process unreported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_catalog_whose_footer_claims_a_trillion_rows_is_an_init_error() {
    let products = fixture::products(2, 40, DIM);
    let good = bytes::Bytes::from(fixture::parquet(&products, DIM));
    let crafted = crate::footer::rewrite_footer(&good, |m| {
        let groups = vec![1_i64 << 40; m.num_row_groups()];
        crate::footer::claim_rows(m, &groups)
    });
    let path = fixture::temp_dir("crafted-footer").join("catalog.parquet");
    std::fs::write(&path, &crafted).expect("write");
    let e = Function::init_failure(base_env(&path.to_string_lossy(), "http://127.0.0.1:9")).await;
    assert_eq!(e.error_type, "CatalogInvalid", "{}", e.log);
    assert!(e.message.contains("rows in a file of"), "{}", e.message);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_environment_is_an_init_error_naming_every_variable() {
    let path = fixture::catalog_file(&fixture::products(1, 20, DIM), DIM);
    let env = with(
        base_env(&path.to_string_lossy(), "http://127.0.0.1:9"),
        &[
            ("LMI_EMBEDDING_DIMENSIONS", "1000"),
            ("LMI_MAX_TOP_K", "0"),
            ("LMI_INT8", "perhaps"),
            ("LMI_EMBEDDING_MODEL_ID", " "),
        ],
    );
    let e = Function::init_failure(env).await;
    assert_eq!(e.error_type, "InvalidConfiguration");
    for name in [
        "LMI_EMBEDDING_DIMENSIONS",
        "LMI_MAX_TOP_K",
        "LMI_INT8",
        "LMI_EMBEDDING_MODEL_ID",
    ] {
        assert!(e.message.contains(name), "{name} not named in {e:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_required_variable_is_an_init_error_naming_it() {
    let path = fixture::catalog_file(&fixture::products(1, 20, DIM), DIM);
    let env = with(
        base_env(&path.to_string_lossy(), "http://127.0.0.1:9"),
        &[("LMI_CATALOG_URI", "")],
    );
    let e = Function::init_failure(env).await;
    assert_eq!(e.error_type, "InvalidConfiguration", "{e:?}");
    assert!(e.message.contains("LMI_CATALOG_URI"), "{e:?}");
    // One line says it all: the variable and what to do.
    let line = e
        .log
        .lines()
        .find(|l| l.contains("\"init failed\""))
        .expect("init failed line");
    assert!(line.contains("LMI_CATALOG_URI"), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_int8_catalog_loads_and_answers_exact_scores() {
    let products = fixture::products(7, 400, DIM);
    let path = fixture::catalog_file(&products, DIM);
    let env = with(
        base_env(&path.to_string_lossy(), "http://127.0.0.1:9"),
        &[("LMI_INT8", "true")],
    );
    let f = Function::ready(env).await;
    let p = &products[3];
    let r = f
        .invoke(&serde_json::json!({"productId": p.id, "topK": 5}))
        .await
        .response();
    fixture::assert_results(
        &r,
        &fixture::brute_force(&products, &p.vector, 5, &[], None, &[p.id.as_str()]),
    );
}
