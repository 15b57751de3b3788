//! The command-line commands, one module each.

pub mod acquire;
pub mod bench;
pub mod check;
pub mod check_table;
pub mod choices;
pub mod config;
pub mod config_flags;
pub mod cpu_kernels;
pub mod data;
pub mod data_stats;
pub mod deprecated;
pub mod device_gate;
pub mod evaluate;
pub mod models;
pub mod preset;
pub mod report;
pub mod reproduce;
pub mod source;
pub mod stop_signal;
pub mod train;
pub mod visualize;
#[cfg(test)]
mod vocabulary_tests;

/// The source this binary was built from (embedded by `build.rs`), for the runs' provenance.
pub fn source_revision() -> allconv_train::config::SourceRevision {
    allconv_train::config::SourceRevision {
        revision: env!("ALLCONV_GIT_REVISION").to_string(),
        dirty: match env!("ALLCONV_GIT_DIRTY") {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        },
    }
}
