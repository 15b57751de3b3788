//! The command-line commands, one module each.

pub mod acquire;
pub mod bench;
pub mod check;
pub mod config_flags;
pub mod data;
pub mod device_gate;
pub mod evaluate;
pub mod models;
pub mod report;
pub mod reproduce;
pub mod source;
pub mod stop_signal;
pub mod train;
pub mod visualize;
