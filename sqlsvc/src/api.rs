//! The wire types of the sqlsvc HTTP API: defined once in the `contract` crate
//! (`contract::meta`, with the ids of `contract::ids`), which callers use too.

pub use contract::ids::{DELETE_TOKEN_LEN, random_token};
pub use contract::ids::{PASTE_ID_LEN, ParsePasteIdError, PasteId, PastePath, RandomIdError};
pub use contract::meta::{
    CreateMeta, Created, CreationPage, DeleteRequest, DeletionPage, MAX_VIEW_ENTRIES, Meta,
    MetaPage, PasteStats, ViewCount, ViewCounts, valid_month,
};
