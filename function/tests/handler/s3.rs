//! The catalog from S3 (moto's S3 through lmi-test-support's emulator).

use aws_sdk_s3::primitives::ByteStream;
use lmi_test_support::AwsEmulator;
use serde_json::json;

use crate::fixture::{self, DIM, Function, base_env, brute_force, with};

fn s3_env(aws: &AwsEmulator, uri: &str) -> Vec<(String, String)> {
    let mut env = base_env(uri, "http://127.0.0.1:9");
    for (k, v) in aws.client_env() {
        env = with(env, &[(k, v.as_str())]);
    }
    env
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_catalog_in_s3_is_streamed_in_and_served() {
    let aws = AwsEmulator::start().await.expect("aws emulator");
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&aws.sdk_config())
            .force_path_style(true)
            .build(),
    );
    s3.create_bucket()
        .bucket("catalogs")
        .send()
        .await
        .expect("create bucket");
    let products = fixture::products(21, 1500, DIM);
    let bytes = fixture::parquet(&products, DIM);
    s3.put_object()
        .bucket("catalogs")
        .key("prod/products.parquet")
        .body(ByteStream::from(bytes))
        .send()
        .await
        .expect("put catalog");

    // The bucket's owner is checked on the read (ExpectedBucketOwner): moto's account reads it.
    let f = Function::ready(with(
        s3_env(&aws, "s3://catalogs/prod/products.parquet"),
        &[("LMI_CATALOG_BUCKET_OWNER", lmi_test_support::ACCOUNT_ID)],
    ))
    .await;
    let p = &products[1234];
    let r = f
        .invoke(&json!({"productId": p.id, "topK": 8, "categories": [p.category]}))
        .await
        .response();
    fixture::assert_results(
        &r,
        &brute_force(
            &products,
            &p.vector,
            8,
            &[p.category.as_str()],
            None,
            &[p.id.as_str()],
        ),
    );
    let loaded = f
        .json_lines()
        .into_iter()
        .find(|l| l["message"] == "catalog loaded")
        .expect("catalog loaded log line");
    assert_eq!(loaded["rows"], 1500);
    assert_eq!(
        loaded["bytes"].as_u64(),
        Some(fixture::parquet(&products, DIM).len() as u64)
    );

    // A key that is not there is an init error naming the object.
    let e = Function::init_failure(s3_env(&aws, "s3://catalogs/prod/missing.parquet")).await;
    assert_eq!(e.error_type, "CatalogNotFound", "{e:?}");
    assert!(
        e.message.contains("s3://catalogs/prod/missing.parquet"),
        "{e:?}"
    );

    // An object the function cannot read: archived to S3 Glacier and not restored (GetObject
    // answers InvalidObjectState). The init error names the object and what to do.
    s3.put_object()
        .bucket("catalogs")
        .key("archive/products.parquet")
        .storage_class(aws_sdk_s3::types::StorageClass::Glacier)
        .body(ByteStream::from(fixture::parquet(&products, DIM)))
        .send()
        .await
        .expect("put archived catalog");
    let e = Function::init_failure(s3_env(&aws, "s3://catalogs/archive/products.parquet")).await;
    assert_eq!(e.error_type, "CatalogArchived", "{e:?}");
    assert!(
        e.message.contains("s3://catalogs/archive/products.parquet")
            && e.message.contains("restore"),
        "{e:?}"
    );

    // A bucket of that name owned by another account than the one the function expects (the
    // name was deleted and taken): S3 refuses the read, and nothing is loaded from it.
    let e = Function::init_failure(with(
        s3_env(&aws, "s3://catalogs/prod/products.parquet"),
        &[("LMI_CATALOG_BUCKET_OWNER", "210987654321")],
    ))
    .await;
    assert_eq!(e.error_type, "CatalogAccessDenied", "{e:?}");
}
