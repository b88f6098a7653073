//! The wire types of the sqlsvc HTTP API: defined once in the `contract` crate
//! (`contract::meta`, with the ids of `contract::ids`), which callers use too.

pub use contract::ids::{PASTE_ID_LEN, ParsePasteIdError, PasteId, PastePath, RandomIdError};
pub use contract::meta::{CreateMeta, DeletionPage, Meta, MetaPage};
