//! The named variables of a `VarMap`, in a stable order: what the optimizer and the checkpoint
//! both key their tensors by.

/// The named variables of a `VarMap`, sorted by name (a `VarMap`'s own iteration order differs
/// between processes).
pub fn named_vars(varmap: &candle_nn::VarMap) -> Vec<(String, candle_core::Var)> {
    let mut vars: Vec<_> = varmap
        .data()
        .lock()
        .expect("VarMap mutex poisoned")
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    vars
}
