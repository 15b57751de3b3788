#!/usr/bin/env python3
"""allconv against PyTorch on the CPU, measured in pairs a second apart.

On a shared or virtual machine the host's speed drifts by tens of percent within minutes, so
two tools timed minutes apart are not compared at all. This driver keeps both warm in two
processes (`allconv bench --paced` and PyTorch in this one) and alternates them measurement by
measurement: allconv eval, PyTorch eval, PyTorch train, allconv train, and so on, the order
swapped every round. Every round gives one ratio (allconv / PyTorch) per model and mode from two
measurements taken seconds apart, which drift moves alike; the summary is the median of those
ratios with its interquartile range, next to the ratio of the mean rates.

    python3 scripts/compare_pytorch.py --allconv target/release/allconv \\
        --models all-cnn-c model-a model-c --rounds 12 --iters 2 --csv rounds.csv

Same protocol as `allconv bench` and `scripts/bench_pytorch.py`: batch 128, synthetic inputs,
fp32, a training step is forward + backward + SGD(momentum 0.9, weight decay 1e-3); eval is a
forward pass without gradients. Both tools use --threads threads.

With --baseline avx2 (or avx512, portable) the other side is a second `allconv bench --paced`
forced onto that kernel path (ALLCONV_CPU_KERNELS), and the first one is forced onto --kernels:
the same pairing, to compare two of allconv's paths on one CPU.
"""
import argparse
import csv
import os
import statistics
import subprocess
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_pytorch import build, steps  # noqa: E402  (the same networks and work as the PyTorch reference)


class Allconv:
    """`allconv bench --paced`: one request line per measurement, one answer line each."""

    def __init__(self, binary, models, batch, iters, threads, kernels=None):
        env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
        if kernels:
            env["ALLCONV_CPU_KERNELS"] = kernels
        self.proc = subprocess.Popen(
            [binary, "bench", "--paced", "--models", ",".join(models),
             "--batch-size", str(batch), "--iters", str(iters)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        ready = self.proc.stdout.readline().split()
        if not ready or ready[0] != "ready":
            self.proc.wait()
            sys.exit(f"{binary} bench --paced did not start (said {ready!r}; its error is above)")
        self.kernels = ready[1] if len(ready) > 1 else "?"

    def rate(self, model, mode):
        self.proc.stdin.write(f"{model} {mode}\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline().split()
        if len(answer) != 3:
            sys.exit(f"allconv bench --paced: unexpected answer {answer!r} to '{model} {mode}'")
        return float(answer[2])

    def close(self):
        self.proc.stdin.close()
        self.proc.wait()


class Pytorch:
    """The PyTorch reference networks of scripts/bench_pytorch.py, built once and warm."""

    def __init__(self, models, batch, iters):
        self.iters, self.batch = iters, batch
        self.x = torch.randn(batch, 3, 32, 32)
        self.y = torch.randint(0, 10, (batch,))
        self.nets = {}
        for name in models:
            net = build(name)
            self.nets[name] = (net, *steps(net, self.x, self.y))
            for mode in ("train", "eval"):
                self.rate(name, mode)

    def rate(self, model, mode):
        net, train_step, eval_step = self.nets[model]
        net.train(mode == "train")
        work = train_step if mode == "train" else eval_step
        start = time.perf_counter()
        for _ in range(self.iters):
            work()
        return self.batch * self.iters / (time.perf_counter() - start)


def quartiles(values):
    q = statistics.quantiles(values, n=4, method="inclusive") if len(values) > 1 else values * 3
    return q[0], statistics.median(values), q[2]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--allconv", default="target/release/allconv", help="the allconv binary")
    p.add_argument("--models", nargs="+", default=["all-cnn-c", "model-a", "model-c"])
    p.add_argument("--rounds", type=int, default=12)
    p.add_argument("--iters", type=int, default=2, help="iterations per measurement")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--pause", type=float, default=0.3,
                   help="seconds between measurements, so that the other process's idle "
                        "threads stop spinning before the next one starts")
    p.add_argument("--csv", help="write every measurement here")
    p.add_argument("--kernels", choices=["avx512", "avx2", "portable"],
                   help="force allconv onto this kernel path (default: the widest the CPU has)")
    p.add_argument("--baseline", default="pytorch", choices=["pytorch", "avx512", "avx2", "portable"],
                   help="what allconv is paired with: PyTorch, or allconv forced onto that path")
    a = p.parse_args()
    if a.rounds < 1 or a.iters < 1 or a.batch < 1 or a.threads < 1:
        sys.exit("--rounds, --iters, --batch and --threads must be at least 1")
    if not os.path.exists(a.allconv):
        sys.exit(f"--allconv {a.allconv}: no such file (build it: cargo build --release)")
    torch.set_num_threads(a.threads)
    ours = Allconv(a.allconv, a.models, a.batch, a.iters, a.threads, a.kernels)
    if a.baseline == "pytorch":
        theirs, names = Pytorch(a.models, a.batch, a.iters), ("allconv", "pytorch")
        versions = f"allconv kernels {ours.kernels}; torch {torch.__version__}"
    else:
        theirs = Allconv(a.allconv, a.models, a.batch, a.iters, a.threads, a.baseline)
        names = (f"allconv-{ours.kernels}", f"allconv-{theirs.kernels}")
        versions = f"allconv kernels {ours.kernels} against {theirs.kernels}"
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                if line.startswith("model name")), "unknown CPU")
    print(f"# {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}; {cpu}; {versions}; "
          f"{a.threads} threads, batch {a.batch}, {a.iters} iterations per measurement, "
          f"{a.rounds} rounds")
    rows = []
    for r in range(a.rounds):
        for model in a.models:
            for mode in ("eval", "train"):
                order = [(0, ours), (1, theirs)]
                if (r + (mode == "train")) % 2:
                    order.reverse()
                rate = [0.0, 0.0]
                for side, runner in order:
                    time.sleep(a.pause)
                    rate[side] = runner.rate(model, mode)
                rows.append((r + 1, model, mode, rate[0], rate[1]))
                print(f"round {r + 1:>2} {model:<10} {mode:<5} {names[0]} {rate[0]:7.1f} "
                      f"{names[1]} {rate[1]:7.1f} ratio {rate[0] / rate[1]:.3f}", flush=True)
    for runner in (ours, theirs):
        if isinstance(runner, Allconv):
            runner.close()
    print(f"\n{'model':<10} {'mode':<5} {names[0] + ' mean':>20} {names[1] + ' mean':>20} "
          f"{'ratio of means':>14} {'median ratio (IQR)':>24}")
    for model in a.models:
        for mode in ("eval", "train"):
            sel = [row for row in rows if row[1] == model and row[2] == mode]
            mine = [row[3] for row in sel]
            ref = [row[4] for row in sel]
            lo, med, hi = quartiles([x / y for x, y in zip(mine, ref)])
            print(f"{model:<10} {mode:<5} {statistics.mean(mine):20.1f} {statistics.mean(ref):20.1f} "
                  f"{statistics.mean(mine) / statistics.mean(ref):14.3f} "
                  f"{med:>10.3f} ({lo:.3f}-{hi:.3f})")
    if a.csv:
        with open(a.csv, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["round", "model", "mode", f"{names[0]}_img_s", f"{names[1]}_img_s"])
            w.writerows(rows)


if __name__ == "__main__":
    main()
