//! Flags whose value is one of a closed set: parsed in any letter case into the set's type, and
//! their choices listed by `--help` and named in the error for anything else. The vocabulary's
//! words (device, data set, precision) have their own parser (`allconv_vocab::WordParser`); this
//! one serves the sets defined by other crates (preprocessing, convolution engine, CPU kernels,
//! backward rule, model names).

use std::ffi::OsStr;

use allconv_cifar::Preprocessing;
use allconv_models::ops::{ConvEngine, CpuKernelsChoice};
use allconv_models::{ReluBackward, MODEL_NAMES};
use clap::builder::{PossibleValue, TypedValueParser};
use clap::error::ErrorKind;

/// The value parser of a closed set: each value with its spelling (`name`) and one line saying
/// what it is.
#[derive(Clone)]
pub struct Choices<T: 'static> {
    /// What a value names, for the error ("model").
    what: &'static str,
    values: &'static [(T, &'static str)],
    name: fn(T) -> &'static str,
}

impl<T: Copy + Send + Sync + 'static> TypedValueParser for Choices<T> {
    type Value = T;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &OsStr,
    ) -> Result<T, clap::Error> {
        let flag = arg.map_or_else(|| "...".to_string(), |a| a.to_string());
        let text = value.to_string_lossy();
        self.values
            .iter()
            .map(|&(v, _)| v)
            .find(|&v| (self.name)(v).eq_ignore_ascii_case(text.trim()))
            .ok_or_else(|| {
                // Worded as the vocabulary's words are (`allconv_vocab::VocabError`).
                let names: Vec<String> = self
                    .values
                    .iter()
                    .map(|&(v, _)| format!("`{}`", (self.name)(v)))
                    .collect();
                let expected = match names.split_last() {
                    Some((last, rest)) if !rest.is_empty() => {
                        format!("{} or {last}", rest.join(", "))
                    }
                    _ => names.join(""),
                };
                clap::Error::raw(
                    ErrorKind::InvalidValue,
                    format!(
                        "invalid value '{text}' for '{flag}': unknown {} `{text}`, expected \
                         {expected}\n",
                        self.what
                    ),
                )
                .with_cmd(cmd)
            })
    }

    fn possible_values(&self) -> Option<Box<dyn Iterator<Item = PossibleValue> + '_>> {
        Some(Box::new(self.values.iter().map(|&(v, help)| {
            PossibleValue::new((self.name)(v)).help(help)
        })))
    }
}

/// `data.preprocessing`'s choices.
pub fn preprocessing() -> Choices<Preprocessing> {
    Choices {
        what: "preprocessing",
        values: &[
            (Preprocessing::Scale, "x / 255"),
            (
                Preprocessing::Standardize,
                "per-channel mean and std of the training part",
            ),
            (
                Preprocessing::GcnZca,
                "global contrast normalisation, then ZCA whitening (the paper's)",
            ),
        ],
        name: Preprocessing::name,
    }
}

/// The convolution engines.
pub fn conv_engine() -> Choices<ConvEngine> {
    Choices {
        what: "convolution engine",
        values: &[
            (ConvEngine::Own, "im2col + GEMM on the CPU, cuDNN on CUDA"),
            (ConvEngine::Candle, "candle's conv2d and autograd, no cuDNN"),
        ],
        name: ConvEngine::name,
    }
}

/// The CPU kernel requests of `--cpu-kernels` (`training.cpu_kernels`; `super::cpu_kernels`).
pub fn cpu_kernels() -> Choices<CpuKernelsChoice> {
    Choices {
        what: "CPU kernels",
        values: &[
            (
                CpuKernelsChoice::Auto,
                "ALLCONV_CPU_KERNELS when set, else the widest path this CPU runs",
            ),
            (CpuKernelsChoice::Avx512, "512-bit kernels (needs AVX-512F)"),
            (
                CpuKernelsChoice::Avx2,
                "256-bit kernels (needs AVX2 and FMA)",
            ),
            (
                CpuKernelsChoice::Portable,
                "the gemm crate's own dispatch and plain loops (any CPU)",
            ),
        ],
        name: CpuKernelsChoice::name,
    }
}

/// The backward rules of `allconv visualize --method`.
pub fn relu_backward() -> Choices<ReluBackward> {
    Choices {
        what: "backward rule",
        values: &[
            (ReluBackward::Backprop, "plain backpropagation"),
            (
                ReluBackward::Deconvnet,
                "the deconvnet rule (only positive gradients pass)",
            ),
            (
                ReluBackward::Guided,
                "guided backpropagation (both conditions)",
            ),
        ],
        name: ReluBackward::name,
    }
}

/// The networks (`allconv models`), in any letter case: `--model` and every `--models` list
/// parse through this one parser. The name is kept as written (the configuration and errors
/// quote what the user wrote; the model crate reads any case).
pub fn model() -> ModelName {
    ModelName
}

/// The parser [`model`] returns.
#[derive(Clone)]
pub struct ModelName;

const MODELS: Choices<&str> = Choices {
    what: "model",
    values: &MODEL_CHOICES,
    name: |name| name,
};

impl TypedValueParser for ModelName {
    type Value = String;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &OsStr,
    ) -> Result<String, clap::Error> {
        MODELS.parse_ref(cmd, arg, value)?;
        Ok(value.to_string_lossy().trim().to_string())
    }

    fn possible_values(&self) -> Option<Box<dyn Iterator<Item = PossibleValue> + '_>> {
        MODELS.possible_values()
    }
}

/// [`MODEL_NAMES`] with what each network is (docs/protocol.md, Networks).
const MODEL_CHOICES: [(&str, &str); 12] = [
    (
        MODEL_NAMES[0],
        "base model A (5x5 convolutions, max-pooling)",
    ),
    (
        MODEL_NAMES[1],
        "A without its pools: the convolution before each takes stride 2",
    ),
    (
        MODEL_NAMES[2],
        "A with a 3x3 convolution inserted before each pool",
    ),
    (
        MODEL_NAMES[3],
        "A with each pool replaced by a 3x3 stride-2 convolution",
    ),
    (
        MODEL_NAMES[4],
        "base model B (5x5 and 1x1 convolutions, max-pooling)",
    ),
    (
        MODEL_NAMES[5],
        "B without its pools: the convolution before each takes stride 2",
    ),
    (
        MODEL_NAMES[6],
        "B with a 3x3 convolution inserted before each pool",
    ),
    (
        MODEL_NAMES[7],
        "B with each pool replaced by a 3x3 stride-2 convolution",
    ),
    (
        MODEL_NAMES[8],
        "base model C (3x3 convolutions, max-pooling)",
    ),
    (
        MODEL_NAMES[9],
        "C without its pools: the convolution before each takes stride 2",
    ),
    (
        MODEL_NAMES[10],
        "C with a 3x3 convolution inserted before each pool",
    ),
    (
        MODEL_NAMES[11],
        "C with each pool replaced by a 3x3 stride-2 convolution",
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    fn parse<T: Copy + Send + Sync + 'static>(p: &Choices<T>, text: &str) -> Result<T, String> {
        let cmd = clap::Command::new("t");
        p.parse_ref(&cmd, None, OsStr::new(text))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn every_choice_parses_from_its_own_spelling_in_any_case() {
        for &(v, _) in preprocessing().values {
            assert_eq!(parse(&preprocessing(), v.name()).unwrap(), v);
            assert_eq!(
                parse(&preprocessing(), &v.name().to_uppercase()).unwrap(),
                v
            );
        }
        // Every value of each closed set is offered, once.
        assert_eq!(relu_backward().values.len(), ReluBackward::ALL.len());
        for rule in ReluBackward::ALL {
            assert_eq!(parse(&relu_backward(), rule.name()).unwrap(), rule);
        }
        for engine in allconv_models::ops::ALL_CONV_ENGINES {
            assert_eq!(parse(&conv_engine(), engine.name()).unwrap(), engine);
        }
        assert_eq!(
            cpu_kernels().values.len(),
            allconv_models::ops::ALL_CPU_KERNEL_CHOICES.len()
        );
        for choice in allconv_models::ops::ALL_CPU_KERNEL_CHOICES {
            assert_eq!(parse(&cpu_kernels(), choice.name()).unwrap(), choice);
        }
        let models: Vec<&str> = MODEL_CHOICES.iter().map(|(n, _)| *n).collect();
        assert_eq!(models, MODEL_NAMES);
        let cmd = clap::Command::new("t");
        let written = model().parse_ref(&cmd, None, OsStr::new("All-CNN-C"));
        assert_eq!(written.unwrap(), "All-CNN-C");
    }

    #[test]
    fn anything_else_is_refused_naming_the_choices() {
        let err = parse(&relu_backward(), "gradcam").unwrap_err();
        assert!(
            err.contains(
                "unknown backward rule `gradcam`, expected `backprop`, `deconvnet` or `guided`"
            ),
            "{err}"
        );
        let err = parse(&MODELS, "all-cnn-d").unwrap_err();
        assert!(
            err.contains("unknown model `all-cnn-d`, expected `model-a`, `strided-cnn-a`, "),
            "{err}"
        );
    }
}
