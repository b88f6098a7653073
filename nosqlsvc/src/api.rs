//! The JSON wire types of nosqlsvc: defined once in the `contract` crate
//! (`contract::text`, with the paths of `contract::ids`), which callers use too.

pub use contract::ids::{MAX_PATH_LEN, PastePath};
pub use contract::text::{
    Affected, Deleted, GetMany, InsertText, Inserted, MAX_BATCH_PATHS, MAX_UNSETTLED_LIMIT, Paths,
    TextDoc, Texts,
};
