//! Crafted Parquet footers: a valid file's data pages with its footer rewritten, as an attacker
//! (or a broken writer) could leave it.
#![allow(dead_code)]

use bytes::Bytes;
use parquet::file::metadata::{
    FileMetaData, ParquetMetaData, ParquetMetaDataReader, ParquetMetaDataWriter,
};

/// `file` with its footer replaced by `edit` of the original; the data pages stay where they
/// were, so the column chunks' offsets still point at them.
pub fn rewrite_footer(
    file: &Bytes,
    edit: impl FnOnce(ParquetMetaData) -> ParquetMetaData,
) -> Bytes {
    let n = file.len();
    let footer_len = u32::from_le_bytes(file[n - 8..n - 4].try_into().expect("4 bytes")) as usize;
    let data_end = n - 8 - footer_len;
    let meta = ParquetMetaDataReader::new()
        .parse_and_finish(file)
        .expect("the original footer");
    let meta = edit(meta);
    let mut out = file[..data_end].to_vec();
    ParquetMetaDataWriter::new(&mut out, &meta)
        .finish()
        .expect("write the new footer");
    Bytes::from(out)
}

/// A footer whose row groups claim `group_rows` rows each (in order; the writer sums them
/// into the file's row count).
pub fn claim_rows(meta: ParquetMetaData, group_rows: &[i64]) -> ParquetMetaData {
    let f = meta.file_metadata();
    let file = FileMetaData::new(
        f.version(),
        group_rows.iter().sum(),
        f.created_by().map(str::to_owned),
        f.key_value_metadata().cloned(),
        f.schema_descr_ptr(),
        f.column_orders().cloned(),
    );
    let groups = meta
        .row_groups()
        .iter()
        .cloned()
        .zip(group_rows)
        .map(|(g, &rows)| {
            g.into_builder()
                .set_num_rows(rows)
                .build()
                .expect("row group")
        })
        .collect();
    ParquetMetaData::new(file, groups)
}
