//! Rendering a [`Summary`](crate::summary::Summary) as `report.md`, `report.csv` (one row per
//! grid point) and `table3.csv` (one row per model).

mod context;
mod csv;
mod markdown;
mod text;

pub use context::RenderContext;
pub use csv::{runs_csv, table3_csv};
pub use markdown::markdown;
pub use text::{status_text, NOT_OFFICIAL_MARK};
