//! Loading catalogs from Parquet: layouts, payload, and every refusal with its row number.

mod common;

use std::sync::Arc;

use arrow_array::builder::{FixedSizeListBuilder, Float32Builder, LargeListBuilder, ListBuilder};
use arrow_array::types::Int32Type;
use arrow_array::{ArrayRef, DictionaryArray, Float64Array, Int64Array, RecordBatch, StringArray};
use bytes::Bytes;
use lmi_similarity::{
    Catalog, Engine, LoadError, LoadOptions, PayloadColumns, PayloadValue, Query, Storage,
};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

/// Embedding column layouts the loader accepts.
#[derive(Clone, Copy)]
enum Layout {
    Fixed,
    List,
    Large,
}

fn embeddings(rows: &[Option<Vec<Option<f32>>>], layout: Layout) -> ArrayRef {
    let dim = rows.iter().flatten().map(Vec::len).next().unwrap_or(0);
    match layout {
        Layout::Fixed => {
            let mut b = FixedSizeListBuilder::new(Float32Builder::new(), dim as i32);
            for r in rows {
                match r {
                    Some(v) => {
                        assert_eq!(v.len(), dim, "fixed-size rows share a length");
                        for x in v {
                            b.values().append_option(*x);
                        }
                        b.append(true);
                    }
                    None => {
                        for _ in 0..dim {
                            b.values().append_null();
                        }
                        b.append(false);
                    }
                }
            }
            Arc::new(b.finish())
        }
        Layout::List => {
            let mut b = ListBuilder::new(Float32Builder::new());
            for r in rows {
                b.append_option(r.clone());
            }
            Arc::new(b.finish())
        }
        Layout::Large => {
            let mut b = LargeListBuilder::new(Float32Builder::new());
            for r in rows {
                b.append_option(r.clone());
            }
            Arc::new(b.finish())
        }
    }
}

fn dense(rows: &[Vec<f32>]) -> Vec<Option<Vec<Option<f32>>>> {
    rows.iter()
        .map(|v| Some(v.iter().map(|&x| Some(x)).collect()))
        .collect()
}

fn strings(v: &[&str]) -> ArrayRef {
    Arc::new(StringArray::from(v.to_vec()))
}

fn parquet(columns: Vec<(&str, ArrayRef)>, row_group: usize) -> Bytes {
    let batch = RecordBatch::try_from_iter(columns).expect("columns form a batch");
    let props = WriterProperties::builder()
        .set_max_row_group_row_count(Some(row_group))
        .set_compression(Compression::SNAPPY)
        .build();
    let mut buf = Vec::new();
    let mut w = ArrowWriter::try_new(&mut buf, batch.schema(), Some(props)).expect("writer");
    w.write(&batch).expect("write batch");
    w.close().expect("close writer");
    Bytes::from(buf)
}

fn load(bytes: Bytes) -> Result<Catalog, LoadError> {
    Catalog::from_parquet_bytes(bytes, &LoadOptions::default())
}

fn three() -> Vec<Vec<f32>> {
    vec![
        vec![1.0, 0.0, 0.0],
        vec![0.0, 2.0, 0.0],
        vec![3.0, 4.0, 0.0],
    ]
}

#[test]
fn loads_every_embedding_layout_and_normalises() {
    for layout in [Layout::Fixed, Layout::List, Layout::Large] {
        let bytes = parquet(
            vec![
                ("id", strings(&["a", "b", "c"])),
                ("category", strings(&["x", "y", "x"])),
                ("embedding", embeddings(&dense(&three()), layout)),
            ],
            2,
        );
        let c = load(bytes).unwrap();
        assert_eq!((c.len(), c.dim()), (3, 3));
        assert_eq!(c.vector(c.row_of("c").unwrap()), &[0.6, 0.8, 0.0]);
        assert_eq!(c.vector(c.row_of("b").unwrap()), &[0.0, 1.0, 0.0]);
        assert_eq!(c.category_rows("x"), Some(0..2));
        assert!(c.payload_columns().is_empty());
    }
}

#[test]
fn many_row_groups_and_batches_land_in_the_right_rows() {
    let rows = common::random_rows(5, 2500, 20, 3);
    let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    let cats: Vec<&str> = rows.iter().map(|r| r.category.as_str()).collect();
    let vecs: Vec<Vec<f32>> = rows.iter().map(|r| r.vector.clone()).collect();
    let bytes = parquet(
        vec![
            ("id", strings(&ids)),
            ("category", strings(&cats)),
            ("embedding", embeddings(&dense(&vecs), Layout::Fixed)),
            (
                "n",
                Arc::new(Int64Array::from_iter_values(0..2500)) as ArrayRef,
            ),
        ],
        300,
    );
    let c = load(bytes).unwrap();
    let from_rows = common::catalog(&rows, Storage::F32);
    for (i, r) in rows.iter().enumerate() {
        let row = c.row_of(&r.id).unwrap();
        assert_eq!(c.category(row), r.category);
        assert_eq!(
            c.vector(row),
            from_rows.vector(from_rows.row_of(&r.id).unwrap())
        );
        assert_eq!(c.payload(row), vec![("n", PayloadValue::Int(i as i64))]);
    }
}

#[test]
fn payload_columns_are_returned_with_results() {
    let cats: DictionaryArray<Int32Type> = vec!["shoes", "hats", "shoes"].into_iter().collect();
    let bytes = parquet(
        vec![
            (
                "id",
                Arc::new(Int64Array::from(vec![10, 20, 30])) as ArrayRef,
            ),
            ("category", Arc::new(cats) as ArrayRef),
            ("embedding", embeddings(&dense(&three()), Layout::List)),
            (
                "title",
                Arc::new(StringArray::from(vec![Some("red"), None, Some("blue")])) as ArrayRef,
            ),
            (
                "price",
                Arc::new(Float64Array::from(vec![1.5, 2.5, 3.5])) as ArrayRef,
            ),
        ],
        10,
    );
    let c = load(bytes.clone()).unwrap();
    assert_eq!(c.payload_columns(), ["title", "price"]);
    let engine = Engine::new(c, Default::default()).unwrap();
    let hits = engine
        .search_blocking(&Query::by_id("10").with_top_k(1))
        .unwrap();
    assert_eq!(&*hits[0].id, "30");
    assert_eq!(&*hits[0].category, "shoes");
    let payload = engine.catalog().payload(hits[0].row);
    assert_eq!(
        payload,
        vec![
            ("title", PayloadValue::Str("blue")),
            ("price", PayloadValue::Float(3.5))
        ]
    );
    let b = engine.catalog().row_of("20").unwrap();
    assert_eq!(
        engine.catalog().payload(b)[0],
        ("title", PayloadValue::Null)
    );
    assert_eq!(
        serde_json::to_string(&engine.catalog().payload(b)).unwrap(),
        r#"[["title",null],["price",2.5]]"#
    );

    let only = LoadOptions {
        payload: PayloadColumns::Only(vec!["price".into()]),
        ..Default::default()
    };
    assert_eq!(
        Catalog::from_parquet_bytes(bytes.clone(), &only)
            .unwrap()
            .payload_columns(),
        ["price"]
    );
    let none = LoadOptions {
        payload: PayloadColumns::None,
        ..Default::default()
    };
    assert!(
        Catalog::from_parquet_bytes(bytes, &none)
            .unwrap()
            .payload_columns()
            .is_empty()
    );
}

#[test]
fn int8_storage_is_selected_per_catalog() {
    let bytes = parquet(
        vec![
            ("id", strings(&["a", "b", "c"])),
            ("category", strings(&["x", "x", "x"])),
            ("embedding", embeddings(&dense(&three()), Layout::Fixed)),
        ],
        10,
    );
    let opts = LoadOptions {
        storage: Storage::Int8,
        ..Default::default()
    };
    let c = Catalog::from_parquet_bytes(bytes, &opts).unwrap();
    assert_eq!(c.storage(), Storage::Int8);
    assert!(c.memory().int8_matrix > 0);
}

#[test]
fn loads_from_a_path() {
    let dir = std::env::temp_dir().join(format!("lmi-similarity-load-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("catalog.parquet");
    let bytes = parquet(
        vec![
            ("id", strings(&["a", "b", "c"])),
            ("category", strings(&["x", "y", "z"])),
            ("embedding", embeddings(&dense(&three()), Layout::Fixed)),
        ],
        1,
    );
    std::fs::write(&path, &bytes).unwrap();
    let c = Catalog::from_parquet_path(&path, &LoadOptions::default()).unwrap();
    assert_eq!(c.len(), 3);
    std::fs::remove_dir_all(&dir).unwrap();

    let err = Catalog::from_parquet_path(dir.join("missing.parquet"), &LoadOptions::default());
    let err = err.unwrap_err();
    assert_eq!(err.reason(), "Open");
    assert!(err.to_string().contains("missing.parquet"), "{err}");
}

// ---- refusals --------------------------------------------------------------------------

fn good_columns() -> Vec<(&'static str, ArrayRef)> {
    vec![
        ("id", strings(&["a", "b", "c"])),
        ("category", strings(&["x", "y", "x"])),
        ("embedding", embeddings(&dense(&three()), Layout::List)),
    ]
}

fn without(name: &str) -> Vec<(&'static str, ArrayRef)> {
    good_columns()
        .into_iter()
        .filter(|(n, _)| *n != name)
        .collect()
}

fn with(name: &'static str, array: ArrayRef) -> Vec<(&'static str, ArrayRef)> {
    let mut cols = without(name);
    cols.push((name, array));
    cols
}

fn refused(columns: Vec<(&str, ArrayRef)>) -> LoadError {
    load(parquet(columns, 2)).expect_err("the loader refuses this file")
}

#[test]
fn missing_columns_are_named() {
    for name in ["id", "category", "embedding"] {
        let err = refused(without(name));
        assert!(
            matches!(&err, LoadError::MissingColumn { column, .. } if column == name),
            "{err}"
        );
        assert!(
            err.to_string()
                .starts_with(&format!("missing column '{name}'")),
            "{err}"
        );
    }
}

#[test]
fn wrong_column_types_are_named() {
    let doubles = {
        let mut b = ListBuilder::new(arrow_array::builder::Float64Builder::new());
        for _ in 0..3 {
            b.append_value([Some(1.0), Some(0.0)]);
        }
        Arc::new(b.finish()) as ArrayRef
    };
    let err = refused(with("embedding", doubles));
    assert!(
        matches!(&err, LoadError::WrongType { column, expected: "list of float32", .. } if column == "embedding")
    );
    assert!(err.to_string().contains("List"), "{err}");

    let err = refused(with("category", Arc::new(Int64Array::from(vec![1, 2, 3]))));
    assert!(
        matches!(&err, LoadError::WrongType { column, .. } if column == "category"),
        "{err}"
    );
    let err = refused(with(
        "id",
        Arc::new(Float64Array::from(vec![1.0, 2.0, 3.0])),
    ));
    assert!(
        matches!(&err, LoadError::WrongType { column, .. } if column == "id"),
        "{err}"
    );
    let err = refused(with("embedding", strings(&["1", "2", "3"])));
    assert_eq!(err.reason(), "WrongType");
}

#[test]
fn unsupported_payload_types_are_refused_unless_left_out() {
    let nested = embeddings(&dense(&three()), Layout::List);
    let mut cols = good_columns();
    cols.push(("tags", nested));
    let bytes = parquet(cols, 2);
    let err = load(bytes.clone()).unwrap_err();
    assert!(
        matches!(&err, LoadError::WrongType { column, .. } if column == "tags"),
        "{err}"
    );
    let none = LoadOptions {
        payload: PayloadColumns::None,
        ..Default::default()
    };
    assert!(Catalog::from_parquet_bytes(bytes.clone(), &none).is_ok());
    let only = LoadOptions {
        payload: PayloadColumns::Only(vec!["nope".into()]),
        ..Default::default()
    };
    let err = Catalog::from_parquet_bytes(bytes, &only).unwrap_err();
    assert!(matches!(&err, LoadError::MissingColumn { column, .. } if column == "nope"));
}

#[test]
fn nulls_are_refused_with_their_row() {
    let err = refused(with(
        "id",
        Arc::new(StringArray::from(vec![Some("a"), Some("b"), None])),
    ));
    assert!(
        matches!(&err, LoadError::Null { column, row: 2 } if column == "id"),
        "{err}"
    );
    assert_eq!(err.to_string(), "column 'id' is null at row 2");
    let err = refused(with(
        "category",
        Arc::new(StringArray::from(vec![Some("a"), None, Some("c")])),
    ));
    assert!(
        matches!(&err, LoadError::Null { column, row: 1 } if column == "category"),
        "{err}"
    );
    let mut rows = dense(&three());
    rows[1] = None;
    let err = refused(with("embedding", embeddings(&rows, Layout::List)));
    assert!(matches!(&err, LoadError::Null { row: 1, .. }), "{err}");
    let mut rows = dense(&three());
    rows[2].as_mut().unwrap()[1] = None;
    for layout in [Layout::Fixed, Layout::List] {
        let err = refused(with("embedding", embeddings(&rows, layout)));
        assert!(matches!(&err, LoadError::Null { row: 2, .. }), "{err}");
    }
}

#[test]
fn inconsistent_dimensions_are_refused_with_their_row() {
    let rows = vec![vec![1.0, 0.0, 0.0], vec![0.0, 1.0, 0.0], vec![1.0, 1.0]];
    let err = refused(with("embedding", embeddings(&dense(&rows), Layout::List)));
    assert!(
        matches!(
            err,
            LoadError::Dimension {
                row: 2,
                expected: 3,
                found: 2
            }
        ),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "embedding at row 2 has 2 values, expected 3"
    );

    let opts = LoadOptions {
        dimension: Some(4),
        ..Default::default()
    };
    let err = Catalog::from_parquet_bytes(parquet(good_columns(), 2), &opts).unwrap_err();
    assert!(
        matches!(
            err,
            LoadError::Dimension {
                row: 0,
                expected: 4,
                found: 3
            }
        ),
        "{err}"
    );
}

#[test]
fn of_bad_rows_in_several_row_groups_the_first_in_the_file_is_reported() {
    // Row groups of 100 rows are decoded on several threads; whichever finishes first, the
    // error names the first bad row of the file.
    let rows = common::random_rows(9, 1000, 8, 2);
    let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    let cats: Vec<&str> = rows.iter().map(|r| r.category.as_str()).collect();
    let mut vecs: Vec<Vec<f32>> = rows.iter().map(|r| r.vector.clone()).collect();
    vecs[950] = vec![0.0; 8];
    vecs[420][3] = f32::NAN;
    vecs[777][1] = f32::INFINITY;
    let bytes = parquet(
        vec![
            ("id", strings(&ids)),
            ("category", strings(&cats)),
            ("embedding", embeddings(&dense(&vecs), Layout::List)),
        ],
        100,
    );
    for _ in 0..20 {
        let err = load(bytes.clone()).unwrap_err();
        assert!(
            matches!(err, LoadError::NonFinite { row: 420, index: 3 }),
            "{err}"
        );
    }
}

#[test]
fn non_finite_and_zero_vectors_are_refused_with_their_row() {
    for (bad, index) in [(f32::NAN, 2), (f32::INFINITY, 0), (f32::NEG_INFINITY, 1)] {
        let mut rows = three();
        rows[1][index] = bad;
        let err = refused(with("embedding", embeddings(&dense(&rows), Layout::Fixed)));
        assert!(
            matches!(err, LoadError::NonFinite { row: 1, index: i } if i == index),
            "{err}"
        );
    }
    let mut rows = three();
    rows[2] = vec![0.0; 3];
    let err = refused(with("embedding", embeddings(&dense(&rows), Layout::List)));
    assert!(matches!(err, LoadError::ZeroVector { row: 2 }), "{err}");
    assert_eq!(err.to_string(), "embedding at row 2 is a zero vector");
}

#[test]
fn duplicate_ids_are_refused_with_both_rows() {
    let err = refused(with("id", strings(&["a", "b", "a"])));
    assert!(
        matches!(&err, LoadError::DuplicateId { id, first: 0, row: 2 } if id == "a"),
        "{err}"
    );
    assert_eq!(err.to_string(), "duplicate id 'a' at rows 0 and 2");
}

#[test]
fn empty_and_corrupt_files_are_refused() {
    let empty = parquet(
        vec![
            ("id", strings(&[])),
            ("category", strings(&[])),
            ("embedding", embeddings(&[], Layout::List)),
        ],
        2,
    );
    assert!(matches!(load(empty).unwrap_err(), LoadError::Empty));
    let err = load(Bytes::from_static(b"not a parquet file at all")).unwrap_err();
    assert_eq!(err.reason(), "ReadParquet");
    let mut truncated = parquet(good_columns(), 2).to_vec();
    truncated.truncate(truncated.len() / 2);
    assert_eq!(
        load(Bytes::from(truncated)).unwrap_err().reason(),
        "ReadParquet"
    );
}

/// A footer whose figures the file cannot hold is refused before anything is sized by it:
/// without the check, `2^40` claimed rows reserve terabytes and abort the process.
#[test]
fn crafted_footers_are_refused_before_anything_is_sized_by_them() {
    use common::footer::{claim_rows, rewrite_footer};

    let good = parquet(good_columns(), 2);
    // The helper leaves a good file good when nothing is edited.
    assert_eq!(
        load(rewrite_footer(&good, |m| m)).expect("rewritten").len(),
        3
    );
    let groups = parquet::file::metadata::ParquetMetaDataReader::new()
        .parse_and_finish(&good)
        .expect("metadata")
        .num_row_groups() as i64;
    assert_eq!(groups, 2);

    // (The footer writer sums the row groups into the file's count, so a file count that
    // disagrees with its groups cannot be written this way; the loader checks that too.)
    let cases: Vec<(Bytes, &str)> = vec![
        (
            rewrite_footer(&good, |m| claim_rows(m, &[1 << 40, 1 << 40])),
            "the footer claims 2199023255552 rows in a file of",
        ),
        (
            rewrite_footer(&good, |m| claim_rows(m, &[-1, 4])),
            "row group 0 claims -1 rows",
        ),
        (
            rewrite_footer(&good, |m| claim_rows(m, &[-3, -3])),
            "the footer claims -6 rows",
        ),
    ];
    for (file, expected) in cases {
        match load(file) {
            Err(LoadError::ReadParquet(e)) => {
                assert!(
                    e.to_string().contains(expected),
                    "{e} (expected: {expected})"
                );
            }
            other => panic!("{expected}: {other:?}"),
        }
    }
}
