//! cumemlab: what GPU memory really costs. The library behind the `cumemlab` command; see the
//! README for the commands and DESIGN.md for the layers.
pub mod driver;
pub mod error;
pub mod host;
pub mod memory;
pub mod plan;
pub mod units;
