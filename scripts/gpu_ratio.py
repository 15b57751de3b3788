#!/usr/bin/env python3
"""Joins `allconv bench` tables and scripts/bench_pytorch.py's CSV into one table with ratios.

    python3 scripts/gpu_ratio.py torch-bench.csv allconv-bench.txt [more allconv-bench.txt ...]

Each `allconv bench` file says in its first line which cuDNN algorithm set ("free" or
"deterministic only") and convolution engine it measured; a row is compared with PyTorch's row
of the same model, precision and algorithm set in NCHW (candle's engine with PyTorch's free
choice). A missing CSV (no PyTorch there) leaves the PyTorch columns empty.
"""
import csv
import os
import sys


def allconv_rows(path):
    """(model, precision, algorithms, engine) -> (train, eval) img/s of one `allconv bench` table."""
    rows, algorithms, engine = {}, "free", "own"
    for line in open(path):
        if line.startswith("device "):
            algorithms = "det" if "deterministic only" in line else "free"
            engine = "candle" if "conv engine candle" in line else "own"
        f = line.split()
        # model precision parameters eval [(cpu)] train [(cpu)]
        if len(f) < 5 or f[1] not in ("fp32", "tf32"):
            continue
        numbers = [x for x in f[3:] if not x.startswith("(")]
        rows[(f[0], f[1], algorithms, engine)] = (float(numbers[1]), float(numbers[0]))
    return rows


def torch_rows(path):
    """(model, precision, layout, algorithms) -> (train, eval) img/s."""
    rows = {}
    if not os.path.exists(path):
        return rows
    for r in csv.DictReader(l for l in open(path) if not l.startswith("#")):
        if r.get("model") and r["model"] != "model":
            key = (r["model"], r["precision"], r["layout"], r.get("algorithms") or "free")
            rows[key] = (float(r["train_img_s"]), float(r["eval_img_s"]))
    return rows


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    theirs = torch_rows(sys.argv[1])
    ours = {}
    for path in sys.argv[2:]:
        ours.update(allconv_rows(path))
    print("| model | prec | alg | engine | allconv train | PyTorch | ratio | allconv eval | PyTorch | ratio |")
    print("|---|---|---|---|---:|---:|---:|---:|---:|---:|")
    for (model, precision, algorithms, engine), (train, ev) in sorted(ours.items()):
        t = theirs.get((model, precision, "nchw", algorithms if engine == "own" else "free"))
        cells = [f"{t[0]:,.0f}", f"{train / t[0]:.2f}", f"{t[1]:,.0f}", f"{ev / t[1]:.2f}"] if t \
            else ["-", "-", "-", "-"]
        print(f"| {model} | {precision} | {algorithms} | {engine} | {train:,.0f} | {cells[0]} "
              f"| {cells[1]} | {ev:,.0f} | {cells[2]} | {cells[3]} |")
    best = theirs.get(("all-cnn-c", "tf32", "nhwc", "free"))
    ours_tf32 = ours.get(("all-cnn-c", "tf32", "free", "own"))
    if best and ours_tf32:
        print(f"All-CNN-C TF32 train vs PyTorch's best eager (TF32, channels_last): "
              f"{ours_tf32[0]:,.0f} / {best[0]:,.0f} = {ours_tf32[0] / best[0]:.2f}")


if __name__ == "__main__":
    main()
