//! The tantivy schema of the chunk store.

use crate::analysis;
use tantivy::schema::{
    Field, IndexRecordOption, Schema, TextFieldIndexing, TextOptions, FAST, INDEXED, STORED, STRING,
};

pub(crate) const CHUNK_ID: &str = "chunk_id";
pub(crate) const DOC_ID: &str = "doc_id";
pub(crate) const TITLE: &str = "title";
pub(crate) const BODY: &str = "body";
/// The chunk's heading path, stored as a JSON array (it reaches BM25
/// through `text`, the passage).
pub(crate) const SECTION: &str = "section";
/// The one field BM25 scores: title and body together (see [`build_schema`]).
pub(crate) const TEXT: &str = "text";
pub(crate) const ORDINAL: &str = "ordinal";
pub(crate) const CHAR_START: &str = "char_start";
pub(crate) const CHAR_END: &str = "char_end";
pub(crate) const METADATA: &str = "metadata";
pub(crate) const VECTOR: &str = "vector";

/// Handles on every field of the schema.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Fields {
    pub chunk_id: Field,
    pub doc_id: Field,
    pub title: Field,
    pub body: Field,
    pub section: Field,
    pub text: Field,
    pub ordinal: Field,
    pub char_start: Field,
    pub char_end: Field,
    pub metadata: Field,
    pub vector: Field,
}

/// The schema of the chunk store.
///
/// BM25 scores one field, `text` = title + heading path + chunk text
/// ([`Chunk::passage`](sift_core::Chunk::passage), indexed, not stored),
/// the way BEIR's and Anserini's "flat" BM25 runs index a document. Scoring
/// title and body as two fields and summing them counts a title word about
/// twice (its idf is added once per field) and cost 0.029 nDCG@10 on SciFact
/// (see eval/README.md, "Why BM25 fell short"). `title`, `section` and
/// `body` are kept stored-only, for display.
pub(crate) fn build_schema() -> Schema {
    build_schema_with(analysis::CURRENT)
}

/// The schema with `analyzer` on the `text` field: [`build_schema`]'s, or
/// that of an index made before [`analysis::CURRENT`] (see
/// [`analysis::LEGACY`]).
pub(crate) fn build_schema_with(analyzer: &str) -> Schema {
    let indexed_text = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer(analyzer)
            .set_index_option(IndexRecordOption::WithFreqsAndPositions),
    );
    let mut builder = Schema::builder();
    builder.add_u64_field(CHUNK_ID, FAST | INDEXED | STORED);
    builder.add_text_field(DOC_ID, STRING | STORED | FAST);
    builder.add_text_field(TITLE, STORED);
    builder.add_text_field(BODY, STORED);
    builder.add_text_field(SECTION, STORED);
    builder.add_text_field(TEXT, indexed_text);
    // FAST so a document's chunks can be put in order without reading the store.
    builder.add_u64_field(ORDINAL, STORED | FAST);
    builder.add_u64_field(CHAR_START, STORED);
    builder.add_u64_field(CHAR_END, STORED);
    builder.add_text_field(METADATA, STORED);
    builder.add_bytes_field(VECTOR, STORED);
    builder.build()
}

impl Fields {
    /// Field handles of a schema built by [`build_schema`].
    pub(crate) fn of(schema: &Schema) -> Fields {
        let get = |name: &str| {
            schema
                .get_field(name)
                .expect("the schema was checked against build_schema")
        };
        Fields {
            chunk_id: get(CHUNK_ID),
            doc_id: get(DOC_ID),
            title: get(TITLE),
            body: get(BODY),
            section: get(SECTION),
            text: get(TEXT),
            ordinal: get(ORDINAL),
            char_start: get(CHAR_START),
            char_end: get(CHAR_END),
            metadata: get(METADATA),
            vector: get(VECTOR),
        }
    }
}
