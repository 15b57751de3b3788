//! Seeded batching: the order depends on (seed, epoch) only; the last partial batch is kept or
//! dropped as asked; tensors hold the split's values and labels.

use allconv_cifar::{batch_count, batches, Order, Split, IMAGE_BYTES};
use candle_core::{DType, Device};

/// Image i is filled with the value i, label i % 10.
fn numbered(n: usize) -> Split {
    Split {
        images: (0..n)
            .flat_map(|i| std::iter::repeat_n(i as f32, IMAGE_BYTES))
            .collect(),
        labels: (0..n).map(|i| (i % 10) as u8).collect(),
    }
}

/// The image numbers visited, batch by batch.
fn visit(split: &Split, bs: usize, order: Order, keep_last: bool) -> Vec<Vec<usize>> {
    batches(split, bs, order, keep_last, &Device::Cpu)
        .unwrap()
        .map(|b| {
            let (x, y) = b.unwrap();
            assert_eq!(x.dtype(), DType::F32);
            assert_eq!(y.dtype(), DType::U32);
            let dims = x.dims4().unwrap();
            assert_eq!((dims.1, dims.2, dims.3), (3, 32, 32));
            let first: Vec<f32> = x
                .flatten_from(1)
                .unwrap()
                .narrow(1, 0, 1)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            let labels: Vec<u32> = y.to_vec1().unwrap();
            first
                .iter()
                .zip(&labels)
                .map(|(&v, &l)| {
                    let i = v as usize;
                    assert_eq!(l as usize, i % 10, "label travels with its image");
                    i
                })
                .collect()
        })
        .collect()
}

#[test]
fn sequential_order_keeps_or_drops_the_last_partial_batch() {
    let split = numbered(10);
    assert_eq!(
        visit(&split, 4, Order::Sequential, true),
        vec![vec![0, 1, 2, 3], vec![4, 5, 6, 7], vec![8, 9]]
    );
    assert_eq!(
        visit(&split, 4, Order::Sequential, false),
        vec![vec![0, 1, 2, 3], vec![4, 5, 6, 7]]
    );
    assert_eq!(batch_count(10, 4, true), 3);
    assert_eq!(batch_count(10, 4, false), 2);
    assert_eq!(batch_count(8, 4, true), 2);
    let it = batches(&split, 4, Order::Sequential, true, &Device::Cpu).unwrap();
    assert_eq!(it.len(), 3);
}

#[test]
fn every_value_of_an_image_reaches_the_tensor() {
    let split = Split {
        images: (0..2 * IMAGE_BYTES).map(|i| i as f32).collect(),
        labels: vec![3, 4],
    };
    let (x, y) = batches(&split, 2, Order::Sequential, true, &Device::Cpu)
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    let values: Vec<f32> = x.flatten_all().unwrap().to_vec1().unwrap();
    assert_eq!(values, split.images);
    assert_eq!(y.to_vec1::<u32>().unwrap(), vec![3, 4]);
}

#[test]
fn same_seed_and_epoch_give_the_same_order_other_epochs_and_seeds_do_not() {
    let split = numbered(50);
    let order = |seed, epoch| visit(&split, 8, Order::Shuffled { seed, epoch }, true).concat();
    let a = order(1, 0);
    assert_eq!(a, order(1, 0));
    assert_ne!(a, order(1, 1), "epoch is part of the seed");
    assert_ne!(a, order(2, 0), "seed changes the order");
    assert_ne!(a, (0..50).collect::<Vec<_>>(), "shuffled");
    let mut sorted = a.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        (0..50).collect::<Vec<_>>(),
        "a permutation: each image once"
    );
    // Dropping the last partial batch drops the *last* images of the permutation.
    let dropped = visit(&split, 8, Order::Shuffled { seed: 1, epoch: 0 }, false).concat();
    assert_eq!(dropped, a[..48]);
}

#[test]
fn a_zero_batch_size_is_an_error() {
    let split = numbered(3);
    let err = batches(&split, 0, Order::Sequential, true, &Device::Cpu)
        .err()
        .unwrap();
    assert!(err.to_string().contains("batch_size"), "{err}");
}
