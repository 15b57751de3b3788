//! The named variables of a `VarMap`, in a stable order: what the optimizer and the checkpoint
//! both key their tensors by.

use allconv_models::ModelError;

use crate::error::Result;

/// The named variables of a `VarMap`, sorted by name (a `VarMap`'s own iteration order differs
/// between processes). A lock poisoned by a panic in another thread is an error
/// ([`ModelError::Poisoned`]), not a second panic.
pub fn named_vars(varmap: &candle_nn::VarMap) -> Result<Vec<(String, candle_core::Var)>> {
    let mut vars: Vec<_> = varmap
        .data()
        .lock()
        .map_err(|_| ModelError::Poisoned)?
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(vars)
}

#[cfg(test)]
mod tests {
    use candle_core::{DType, Device};
    use candle_nn::{Init, VarMap};

    use super::*;
    use crate::TrainError;

    #[test]
    fn the_variables_come_sorted_by_name() {
        let varmap = VarMap::new();
        for name in ["conv2.weight", "conv1.bias", "conv1.weight"] {
            varmap
                .get(1, name, Init::Const(0.0), DType::F32, &Device::Cpu)
                .unwrap();
        }
        let names: Vec<String> = named_vars(&varmap)
            .unwrap()
            .into_iter()
            .map(|(name, _)| name)
            .collect();
        assert_eq!(names, ["conv1.bias", "conv1.weight", "conv2.weight"]);
    }

    #[test]
    fn a_lock_poisoned_by_another_thread_is_an_error_not_a_panic() {
        let varmap = VarMap::new();
        std::thread::scope(|s| {
            let holder = s.spawn(|| {
                let _held = varmap.data().lock().unwrap();
                panic!("a panic while holding the VarMap lock (this test poisons it on purpose)");
            });
            assert!(holder.join().is_err());
        });
        assert!(matches!(
            named_vars(&varmap),
            Err(TrainError::Model(ModelError::Poisoned))
        ));
    }
}
