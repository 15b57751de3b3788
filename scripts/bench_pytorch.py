#!/usr/bin/env python3
"""PyTorch reference throughput for the paper's networks, to compare with `allconv bench`.

Same protocol as `allconv bench`: batch 128, synthetic inputs, a training step is forward +
backward + SGD(momentum 0.9, weight decay 1e-3) step; eval is a forward pass under no_grad.
Prints one line per (model, precision, layout, algorithms): images/second for train and eval.
cuDNN times its algorithms (`cudnn.benchmark`) and takes the fastest ("free"), or with
--deterministic the fastest deterministic one ("det"), as `allconv bench --deterministic true`
and training's default `training.deterministic: true` restrict ours.

    python3 scripts/bench_pytorch.py --device cuda --models all-cnn-c model-c --tf32 both
"""
import argparse
import time

import torch
import torch.nn as nn

BASES = {
    # (kernel, channels) per conv of each stage; pools after stage 1 and 2.
    "a": [[(5, 96)], [(5, 192)]],
    "b": [[(5, 96), (1, 96)], [(5, 192), (1, 192)]],
    "c": [[(3, 96), (3, 96)], [(3, 192), (3, 192)]],
}


def build(name, classes=10, final_relu=True):
    variant, base = name.rsplit("-", 1)
    layers, cin = [nn.Dropout(0.2)], 3
    for stage in BASES[base]:
        for i, (k, c) in enumerate(stage):
            last = i == len(stage) - 1
            stride = 2 if (variant == "strided-cnn" and last) else 1
            layers += [nn.Conv2d(cin, c, k, stride, k // 2), nn.ReLU(inplace=True)]
            cin = c
        if variant == "convpool-cnn":
            layers += [nn.Conv2d(cin, cin, 3, 1, 1), nn.ReLU(inplace=True)]
        if variant in ("model", "convpool-cnn"):
            layers += [nn.MaxPool2d(3, 2, padding=1)]
        elif variant == "all-cnn":
            layers += [nn.Conv2d(cin, cin, 3, 2, 1), nn.ReLU(inplace=True)]
        layers += [nn.Dropout(0.5)]
    layers += [nn.Conv2d(cin, 192, 3, 1, 0), nn.ReLU(inplace=True),
               nn.Conv2d(192, 192, 1), nn.ReLU(inplace=True), nn.Conv2d(192, classes, 1)]
    if final_relu:
        layers += [nn.ReLU(inplace=True)]
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    return nn.Sequential(*layers)


def steps(net, x, y):
    """The measured work on `net`: a training step (forward, cross-entropy, backward, SGD with
    momentum 0.9 and weight decay 1e-3, as allconv's trainer) and a forward pass without
    gradients. The caller sets train or eval mode."""
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-3)
    loss_fn = nn.CrossEntropyLoss()

    def train_step():
        opt.zero_grad(set_to_none=True)
        loss_fn(net(x), y).backward()
        opt.step()

    def eval_step():
        with torch.no_grad():
            net(x)

    return train_step, eval_step


def timed(fn, iters, device):
    for _ in range(3):
        fn()
    if device == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(iters):
        fn()
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--models", nargs="+", default=["model-a", "model-c", "all-cnn-c"])
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--iters", type=int, default=50)
    p.add_argument("--tf32", choices=["off", "on", "both"], default="both")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--deterministic", action="store_true",
                   help="deterministic cuDNN algorithms only (cudnn.deterministic)")
    a = p.parse_args()
    modes = {"off": [False], "on": [True], "both": [False, True]}[a.tf32]
    fmt = torch.channels_last if a.channels_last else torch.contiguous_format
    print(f"# torch {torch.__version__} on {torch.cuda.get_device_name() if a.device == 'cuda' else 'cpu'}"
          f", threads {torch.get_num_threads()}, batch {a.batch}")
    print("model,precision,layout,algorithms,train_img_s,eval_img_s")
    for name in a.models:
        for tf32 in modes:
            torch.backends.cuda.matmul.allow_tf32 = tf32
            torch.backends.cudnn.allow_tf32 = tf32
            torch.backends.cudnn.benchmark = True
            torch.backends.cudnn.deterministic = a.deterministic
            net = build(name).to(a.device).to(memory_format=fmt)
            x = torch.randn(a.batch, 3, 32, 32, device=a.device).to(memory_format=fmt)
            y = torch.randint(0, 10, (a.batch,), device=a.device)
            train_step, eval_step = steps(net, x, y)
            net.train()
            t_train = timed(train_step, a.iters, a.device)
            net.eval()
            t_eval = timed(eval_step, a.iters, a.device)
            n = a.batch * a.iters
            print(f"{name},{'tf32' if tf32 else 'fp32'},{'nhwc' if a.channels_last else 'nchw'},"
                  f"{'det' if a.deterministic else 'free'},{n / t_train:.0f},{n / t_eval:.0f}")


if __name__ == "__main__":
    main()
