//! Rendering a [`Summary`](crate::summary::Summary) as `report.md`, `report.csv` (one row per
//! grid point) and `table3.csv` (one row per model).
//!
//! `report.md` is written section by section, one module per section or group of related
//! sections; `text` holds how a single number or status is written in any of them.

mod comparison;
mod context;
mod csv;
mod grid;
mod markdown;
mod provenance;
mod runs;
mod settings;
mod text;

pub use context::RenderContext;
pub use csv::{runs_csv, table3_csv};
pub use markdown::markdown;
pub use text::{status_text, thousands, NOT_OFFICIAL_MARK};
