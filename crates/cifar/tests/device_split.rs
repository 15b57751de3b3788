//! `DeviceSplit`: a split uploaded once gives the same batches, value for value and in the same
//! order, as the host-built `batches`; sequential batches are the split in order.

use allconv_cifar::{batches, DeviceSplit, Order, Split, IMAGE_BYTES};
use candle_core::Device;

/// Image i holds the values i*3072 .. (i+1)*3072 (every pixel distinct), label (7 * i) % 10.
fn distinct(n: usize) -> Split {
    Split {
        images: (0..n * IMAGE_BYTES).map(|v| v as f32).collect(),
        labels: (0..n).map(|i| ((7 * i) % 10) as u8).collect(),
    }
}

type Batch = (Vec<f32>, Vec<u32>);

fn flat(batch: candle_core::Result<(candle_core::Tensor, candle_core::Tensor)>) -> Batch {
    let (x, y) = batch.unwrap();
    (
        x.flatten_all().unwrap().to_vec1().unwrap(),
        y.to_vec1().unwrap(),
    )
}

#[test]
fn device_batches_equal_host_batches_for_every_order_and_last_batch_rule() {
    let split = distinct(23);
    let device_split = DeviceSplit::new(&split, &Device::Cpu).unwrap();
    assert_eq!(device_split.len(), 23);
    for order in [
        Order::Sequential,
        Order::Shuffled { seed: 5, epoch: 0 },
        Order::Shuffled { seed: 5, epoch: 3 },
    ] {
        for keep_last in [true, false] {
            let host: Vec<Batch> = batches(&split, 5, order, keep_last, &Device::Cpu)
                .unwrap()
                .map(|b| flat(b.map_err(candle_core::Error::wrap)))
                .collect();
            let device: Vec<Batch> = device_split
                .batches(5, order, keep_last)
                .unwrap()
                .map(|b| flat(b.map_err(candle_core::Error::wrap)))
                .collect();
            // 23 images in batches of 5: 4 full batches, plus a batch of 3 with keep_last.
            assert_eq!(device.len(), if keep_last { 5 } else { 4 });
            assert_eq!(host, device, "{order:?} keep_last {keep_last}");
        }
    }
}

#[test]
fn skipped_batches_are_the_tail_of_the_full_sequence() {
    // A run resumed part-way through an epoch skips the steps it did: what follows must be the
    // very batches an uninterrupted epoch sees next, and their step numbers with them.
    let split = distinct(23);
    let device_split = DeviceSplit::new(&split, &Device::Cpu).unwrap();
    let order = Order::Shuffled { seed: 5, epoch: 2 };
    let all: Vec<Batch> = device_split
        .batches(5, order, true)
        .unwrap()
        .map(|b| flat(b.map_err(candle_core::Error::wrap)))
        .collect();
    let tail: Vec<(usize, Batch)> = device_split
        .batches(5, order, true)
        .unwrap()
        .enumerate()
        .skip(3)
        .map(|(i, b)| (i, flat(b.map_err(candle_core::Error::wrap))))
        .collect();
    // 5 batches (4 of 5 images, 1 of 3); skipping 3 leaves steps 3 and 4.
    assert_eq!(tail.iter().map(|t| t.0).collect::<Vec<_>>(), vec![3, 4]);
    assert_eq!(tail[0].1, all[3]);
    assert_eq!(tail[1].1, all[4]);
    let mut past_end = device_split.batches(5, order, true).unwrap();
    assert!(past_end.nth(9).is_none());
}

#[test]
fn sequential_device_batches_are_the_split_in_order() {
    let split = distinct(4);
    let device_split = DeviceSplit::new(&split, &Device::Cpu).unwrap();
    let got: Vec<Batch> = device_split
        .batches(3, Order::Sequential, true)
        .unwrap()
        .map(|b| flat(b.map_err(candle_core::Error::wrap)))
        .collect();
    // Batch 0 = images 0..3 = values 0 .. 3*3072, labels 0, 7, 14%10=4; batch 1 = image 3,
    // label 21 % 10 = 1.
    assert_eq!(
        got[0].0,
        (0..3 * IMAGE_BYTES).map(|v| v as f32).collect::<Vec<_>>()
    );
    assert_eq!(got[0].1, vec![0, 7, 4]);
    assert_eq!(got[1].0.first().copied(), Some((3 * IMAGE_BYTES) as f32));
    assert_eq!(got[1].1, vec![1]);
}

#[test]
fn inconsistent_split_and_zero_batch_size_are_refused() {
    let mut split = distinct(2);
    split.labels.push(0);
    let err = DeviceSplit::new(&split, &Device::Cpu).err().unwrap();
    assert!(err.to_string().contains("do not match 3 labels"), "{err}");
    let ok = DeviceSplit::new(&distinct(2), &Device::Cpu).unwrap();
    let err = ok.batches(0, Order::Sequential, true).err().unwrap();
    assert!(err.to_string().contains("batch_size"), "{err}");
}
