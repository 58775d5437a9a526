//! Output: result documents (JSON with the environment, CSV from the same row type), written
//! atomically and rewritten after every finished row so that a crash loses at most the row in
//! progress; plus the shared helpers for human tables and progress bars.

pub mod diag;
pub mod envelope;
pub mod html;
pub mod markdown;
pub mod plots;
pub mod sink;
pub mod table;

pub use sink::{Document, OutFormat, ResultSink, SCHEMA, SCHEMA_VERSION, write_atomic};
pub use table::{Progress, bullet_section, new_table};
