//! A training loop over allconv-cifar, allconv-models and candle-nn alone, as another project
//! would write it: load CIFAR-10, normalise it, build one of the 12 networks, take SGD steps with
//! momentum and weight decay, then measure the test accuracy.
//!
//! ```sh
//! cargo run --release -p allconv-models --example train_loop -- [DATA_DIR] [MODEL] [STEPS]
//! ```
//!
//! Without `DATA_DIR` (or with `-`) it trains on a small synthetic set written to a temporary
//! folder. Defaults: `all-cnn-c`, 30 steps of batch 32 at lr 0.01. The settings follow
//! `configs/quick.yaml` (He init, no final ReLU) so that a few steps already leave the ln(10)
//! plateau; the paper's own protocol is in docs/protocol.md, Training.

use allconv_cifar::{
    batches, load_dir, prepare, write_synthetic_dir, Order, PrepareOptions, Preprocessing,
};
use allconv_models::{ops::sgd_step, spec, Init, Mode, ModelOptions, Network};
use candle_core::{DType, Device, Tensor};
use candle_nn::{loss::cross_entropy, VarMap};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let model = args.get(1).map_or("all-cnn-c", String::as_str);
    let steps: usize = args.get(2).map_or(Ok(30), |s| s.parse())?;
    let (batch_size, lr, momentum, weight_decay) = (32, 0.01, 0.9, 0.001);
    let temporary = tempfile::tempdir()?;
    let dir = match args.first().filter(|a| *a != "-") {
        Some(dir) => dir.into(),
        None => {
            write_synthetic_dir(temporary.path(), 100, 200, 0)?;
            temporary.path().to_path_buf()
        }
    };

    // `standardize` fits in milliseconds; the paper's `gcn_zca` takes seconds to fit.
    let options = PrepareOptions {
        preprocessing: Preprocessing::Standardize,
        ..Default::default()
    };
    let data = prepare(&load_dir(&dir)?, &options, None)?;
    let device = Device::Cpu;
    let model_options = ModelOptions {
        init: Init::He,
        final_relu: false,
        ..Default::default()
    };
    let varmap = VarMap::new();
    let network = Network::new(&spec(model, &model_options)?, &varmap, &device, 0)?;
    let params = varmap.all_vars();
    let velocities = params
        .iter()
        .map(|p| p.zeros_like())
        .collect::<candle_core::Result<Vec<Tensor>>>()?;

    // A new shuffled order every epoch, the last smaller batch kept, as in the paper's protocol.
    let (mut step, mut epoch) = (0, 0);
    while step < steps {
        let order = Order::Shuffled { seed: 0, epoch };
        for batch in batches(&data.train, batch_size, order, true, &device)?.take(steps - step) {
            let (images, labels) = batch?;
            let dropout_seed = step as u64;
            let logits = network.forward(&images, Mode::Train { dropout_seed })?;
            let loss = cross_entropy(&logits, &labels)?;
            let grads = loss.backward()?;
            for (param, velocity) in params.iter().zip(&velocities) {
                if let Some(grad) = grads.get(param) {
                    sgd_step(param, velocity, grad, lr, momentum, weight_decay)?;
                }
            }
            step += 1;
            let loss = loss.to_scalar::<f32>()?;
            println!("epoch {epoch} step {step}: loss {loss:.4}");
        }
        epoch += 1;
    }

    let mut correct = 0u32;
    for batch in batches(&data.test, 100, Order::Sequential, true, &device)? {
        let (images, labels) = batch?;
        let predicted = network.forward(&images, Mode::Eval)?.argmax(1)?;
        correct += predicted
            .eq(&labels)?
            .to_dtype(DType::U32)?
            .sum_all()?
            .to_scalar::<u32>()?;
    }
    let accuracy = 100.0 * f64::from(correct) / data.test.len() as f64;
    println!(
        "{model} after {step} steps: test accuracy {accuracy:.1}% on {} images",
        data.test.len()
    );
    Ok(())
}
