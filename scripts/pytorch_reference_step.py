#!/usr/bin/env python3
"""Writes the PyTorch reference of one training step that `cargo test` compares allconv with
(crates/train/tests/pytorch_reference_step.rs; docs/protocol.md, Networks and Training).

For Model C and ConvPool-CNN-C, built here from the paper's layer tables (not from our code):
weights and one batch drawn from a counter-based generator both sides implement (SplitMix64,
below), the logits, the mean cross-entropy, the gradients of every parameter, and the
parameters after one SGD step with momentum 0.9 and weight decay 0.001 (PyTorch semantics).
Dropout is off (rate 0) so the step is the same function on both sides; our dropout has its own
tests. Whole tensors would be megabytes, so the fixture keeps the md5 of every generated weight
tensor (proving both sides start from the same numbers), every logit, and for each gradient and
updated parameter its max |value|, sum and sum of squares (float64) plus the values at 48
evenly spaced flat indices (every value of tensors with at most 192 elements).

    python3 scripts/pytorch_reference_step.py crates/train/tests/fixtures/pytorch_reference_step.json
"""

import datetime
import hashlib
import json
import platform
import sys

import numpy as np
import torch
import torch.nn.functional as F

GOLDEN_GAMMA = np.uint64(0x9E3779B97F4A7C15)
BATCH = 4
LABELS = [3, 7, 0, 9]
LR, MOMENTUM, WEIGHT_DECAY = 0.05, 0.9, 0.001
SAMPLES = 48


def mix(z):
    """SplitMix64's output function on a numpy uint64 array (arithmetic mod 2^64)."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def uniform(stream, n, bound):
    """n values in [-bound, bound): the top 24 bits of the (i+1)-th SplitMix64 output of a
    generator started at mix(stream), as u in [0, 1), then (2u - 1) * bound in float64, rounded
    once to float32."""
    with np.errstate(over="ignore"):
        key = mix(np.array([stream], dtype=np.uint64))[0]
        i = np.arange(1, n + 1, dtype=np.uint64)
        bits = mix(key + i * GOLDEN_GAMMA) >> np.uint64(40)
    u = bits.astype(np.float64) / float(1 << 24)
    return ((2.0 * u - 1.0) * bound).astype(np.float32)


def conv(cin, cout, k, pad):
    return ("conv", cin, cout, k, pad)


POOL = ("pool",)

# docs/protocol.md, Base models and Variants: Model C, and ConvPool-CNN-C (a 3x3 convolution
# with the same channels inserted before each max-pool). Every convolution has a ReLU, the last
# one included (the paper's table, our default final_relu).
MODELS = {
    "model-c": [
        conv(3, 96, 3, 1), conv(96, 96, 3, 1), POOL,
        conv(96, 192, 3, 1), conv(192, 192, 3, 1), POOL,
        conv(192, 192, 3, 0), conv(192, 192, 1, 0), conv(192, 10, 1, 0),
    ],
    "convpool-cnn-c": [
        conv(3, 96, 3, 1), conv(96, 96, 3, 1), conv(96, 96, 3, 1), POOL,
        conv(96, 192, 3, 1), conv(192, 192, 3, 1), conv(192, 192, 3, 1), POOL,
        conv(192, 192, 3, 0), conv(192, 192, 1, 0), conv(192, 10, 1, 0),
    ],
}


def parameters(layers):
    """conv{k}.weight / conv{k}.bias, k counted over convolutions from 1: weight stream 2k,
    bias stream 2k+1, bounds sqrt(3 / fan_in) and a tenth of that."""
    params = {}
    k = 0
    for layer in layers:
        if layer[0] != "conv":
            continue
        k += 1
        _, cin, cout, ks, _ = layer
        bound = (3.0 / (cin * ks * ks)) ** 0.5
        w = uniform(2 * k, cout * cin * ks * ks, bound).reshape(cout, cin, ks, ks)
        b = uniform(2 * k + 1, cout, 0.1 * bound)
        params[f"conv{k}.weight"] = torch.tensor(w, requires_grad=True)
        params[f"conv{k}.bias"] = torch.tensor(b, requires_grad=True)
    return params


def forward(layers, params, x):
    k = 0
    for layer in layers:
        if layer[0] == "pool":
            x = F.max_pool2d(x, 3, stride=2, padding=1)
            continue
        k += 1
        x = F.relu(F.conv2d(x, params[f"conv{k}.weight"], params[f"conv{k}.bias"], padding=layer[4]))
    return x.mean(dim=(2, 3))


def md5(t):
    return hashlib.md5(t.detach().contiguous().numpy().astype("<f4").tobytes()).hexdigest()


def summary(t):
    flat = t.detach().double().flatten()
    n = flat.numel()
    idx = list(range(n)) if n <= 192 else [j * (n - 1) // (SAMPLES - 1) for j in range(SAMPLES)]
    return {
        "shape": list(t.shape),
        "max_abs": flat.abs().max().item(),
        "sum": flat.sum().item(),
        "sum_sq": (flat * flat).sum().item(),
        "index": idx,
        "value": [t.detach().flatten()[i].item() for i in idx],
    }


def reference(name, layers):
    params = parameters(layers)
    x = torch.tensor(uniform(1000, BATCH * 3 * 32 * 32, 2.0).reshape(BATCH, 3, 32, 32))
    labels = torch.tensor(LABELS)
    logits = forward(layers, params, x)
    loss = F.cross_entropy(logits, labels)
    loss.backward()
    # The project's default decays biases too (optim.weight_decay_bias: true).
    sgd = torch.optim.SGD(params.values(), lr=LR, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)
    grads = {k: summary(p.grad) for k, p in params.items()}
    weights_md5 = {k: md5(p) for k, p in params.items()}
    sgd.step()
    return {
        "input_md5": md5(x),
        "labels": LABELS,
        "weights_md5": weights_md5,
        "logits": logits.detach().flatten().tolist(),
        "loss": loss.item(),
        "grad": grads,
        "after_step": {k: summary(p) for k, p in params.items()},
    }


def main():
    out = sys.argv[1]
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    fixture = {
        "provenance": {
            "written_by": "scripts/pytorch_reference_step.py",
            "torch": torch.__version__,
            "numpy": np.__version__,
            "python": platform.python_version(),
            "machine": platform.machine(),
            "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M"),
            "generator": "value i of stream s: top 24 bits of mix(mix(s) + (i+1)*0x9E3779B97F4A7C15) "
            "(SplitMix64) as u in [0,1), then float32((2u-1)*bound) computed in float64",
            "step": {"lr": LR, "momentum": MOMENTUM, "weight_decay": WEIGHT_DECAY,
                     "weight_decay_bias": True, "dropout": 0.0, "batch": BATCH},
        },
        "models": {name: reference(name, layers) for name, layers in MODELS.items()},
    }
    with open(out, "w") as f:
        json.dump(fixture, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
