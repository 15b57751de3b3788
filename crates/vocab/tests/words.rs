//! Every word's spelling parses back to it, through `FromStr` and through serde alike, and a
//! spelling that names nothing is refused listing the choices.

use allconv_vocab::{Dataset, DatasetKind, Device, LabelSet, Precision, Word};

fn round_trips<
    W: Word + PartialEq + std::fmt::Debug + serde::Serialize + serde::de::DeserializeOwned,
>(
    values: &[W],
) {
    for value in values {
        let text = value.to_string();
        assert_eq!(&text.parse::<W>().unwrap(), value, "{text}");
        let json = serde_json::to_string(value).unwrap();
        assert_eq!(json, format!("\"{text}\""), "serde writes the spelling");
        assert_eq!(&serde_json::from_str::<W>(&json).unwrap(), value, "{json}");
    }
}

#[test]
fn every_value_round_trips_through_its_spelling() {
    round_trips(&Dataset::ALL);
    round_trips(&LabelSet::ALL);
    round_trips(&DatasetKind::ALL);
    round_trips(&Precision::ALL);
    round_trips(&[
        Device::Cpu,
        Device::Cuda(0),
        Device::Cuda(1),
        Device::Cuda(15),
    ]);
}

#[test]
fn the_spellings_are_the_documented_ones() {
    // docs/configuration.md: data.dataset cifar10 | cifar100, data.labels fine | coarse,
    // training.device cpu | cuda | cuda:N.
    let names: Vec<String> = Dataset::ALL.iter().map(|d| d.to_string()).collect();
    assert_eq!(names, ["cifar10", "cifar100"]);
    assert_eq!(Dataset::Cifar100.title(), "CIFAR-100");
    assert_eq!(Dataset::Cifar10.title(), "CIFAR-10");
    assert_eq!(LabelSet::Coarse.to_string(), "coarse");
    assert_eq!(Device::Cuda(3).to_string(), "cuda:3");
    assert_eq!(Precision::Tf32.to_string(), "tf32");
    // The choices `--help` lists start with every closed set's own spellings.
    for (choices, values) in [
        (Dataset::CHOICES, Dataset::ALL.map(|d| d.name()).to_vec()),
        (
            Precision::CHOICES,
            Precision::ALL.map(|p| p.name()).to_vec(),
        ),
        (
            DatasetKind::CHOICES,
            DatasetKind::ALL.map(|k| k.name()).to_vec(),
        ),
    ] {
        let listed: Vec<&str> = choices.iter().map(|(n, _)| *n).collect();
        assert_eq!(listed, values);
    }
}

#[test]
fn cuda_alone_is_gpu_0_and_letter_case_does_not_matter() {
    assert_eq!("cuda".parse::<Device>().unwrap(), Device::Cuda(0));
    assert_eq!("CUDA:2".parse::<Device>().unwrap(), Device::Cuda(2));
    assert_eq!("Cpu".parse::<Device>().unwrap(), Device::Cpu);
    assert_eq!("CIFAR100".parse::<Dataset>().unwrap(), Dataset::Cifar100);
    assert_eq!(Device::Cuda(2).cuda_index(), Some(2));
    assert_eq!(Device::Cpu.cuda_index(), None);
    assert!(Device::Cuda(0).is_cuda() && !Device::Cpu.is_cuda());
}

#[test]
fn what_names_nothing_is_refused_with_the_choices() {
    for bad in [
        "gpu", "cuda:", "cuda:x", "cuda:-1", "cuda:1:2", "cpu:0", "cuda1", "",
    ] {
        let err = bad.parse::<Device>().unwrap_err().to_string();
        assert_eq!(
            err,
            format!("unknown device `{bad}`, expected `cpu`, `cuda` or `cuda:N`"),
            "{bad}"
        );
    }
    let err = "cifar-10".parse::<Dataset>().unwrap_err().to_string();
    assert_eq!(
        err,
        "unknown data set `cifar-10`, expected `cifar10` or `cifar100`"
    );
    let err = serde_json::from_str::<LabelSet>("\"medium\"")
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown label set `medium`"), "{err}");
}

#[test]
fn the_data_set_and_label_set_make_the_classes() {
    // CIFAR-10 has one label set: `labels` is not looked at.
    for labels in LabelSet::ALL {
        assert_eq!(
            DatasetKind::new(Dataset::Cifar10, labels),
            DatasetKind::Cifar10
        );
    }
    // The CIFAR-100 release: 100 fine classes in 20 superclasses.
    let fine = DatasetKind::new(Dataset::Cifar100, LabelSet::Fine);
    let coarse = DatasetKind::new(Dataset::Cifar100, LabelSet::Coarse);
    assert_eq!((fine.num_classes(), coarse.num_classes()), (100, 20));
    assert_eq!(DatasetKind::Cifar10.num_classes(), 10);
    for kind in DatasetKind::ALL {
        let back = DatasetKind::new(kind.dataset(), kind.labels().unwrap_or_default());
        assert_eq!(back, kind);
    }
    assert_eq!(DatasetKind::Cifar10.labels(), None);
}

#[test]
fn precision_follows_the_tf32_switch() {
    assert_eq!(Precision::from_tf32(true), Precision::Tf32);
    assert_eq!(Precision::from_tf32(false), Precision::Fp32);
    assert!(Precision::Tf32.is_tf32() && !Precision::Fp32.is_tf32());
}
