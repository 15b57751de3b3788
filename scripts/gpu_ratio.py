#!/usr/bin/env python3
"""Joins `allconv bench` output and scripts/bench_pytorch.py's CSV into one table with ratios.

    python3 scripts/gpu_ratio.py allconv-bench.txt torch-bench.csv
"""
import csv
import sys


def allconv_rows(path):
    """(model, precision) -> (train, eval) img/s from `allconv bench` lines."""
    rows = {}
    for line in open(path):
        f = line.split()
        # model precision parameters eval [(cpu)] train [(cpu)]
        if len(f) < 5 or f[1] not in ("fp32", "tf32"):
            continue
        numbers = [x for x in f[3:] if not x.startswith("(")]
        rows[(f[0], f[1])] = (float(numbers[1]), float(numbers[0]))
    return rows


def torch_rows(path):
    """(model, precision, layout) -> (train, eval) img/s."""
    rows = {}
    for r in csv.DictReader(l for l in open(path) if not l.startswith("#")):
        if r.get("model") and r["model"] != "model":
            rows[(r["model"], r["precision"], r["layout"])] = (
                float(r["train_img_s"]), float(r["eval_img_s"]))
    return rows


def main():
    ours, theirs = allconv_rows(sys.argv[1]), torch_rows(sys.argv[2])
    print("| model | precision | allconv train | PyTorch train (NCHW) | ratio | allconv eval "
          "| PyTorch eval | ratio |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for (model, precision), (train, ev) in sorted(ours.items()):
        t = theirs.get((model, precision, "nchw"))
        if t is None:
            continue
        print(f"| {model} | {precision} | {train:,.0f} | {t[0]:,.0f} | {train / t[0]:.2f} "
              f"| {ev:,.0f} | {t[1]:,.0f} | {ev / t[1]:.2f} |")
    best = theirs.get(("all-cnn-c", "tf32", "nhwc"))
    ours_tf32 = ours.get(("all-cnn-c", "tf32"))
    if best and ours_tf32:
        print(f"\nAll-CNN-C TF32 vs PyTorch's best eager (TF32, channels_last): "
              f"{ours_tf32[0]:,.0f} / {best[0]:,.0f} = {ours_tf32[0] / best[0]:.2f}")


if __name__ == "__main__":
    main()
