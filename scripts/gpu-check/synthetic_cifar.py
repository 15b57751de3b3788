#!/usr/bin/env python3
"""Writes a synthetic data set in CIFAR-10's binary layout (five data_batch_k.bin, test_batch.bin,
batches.meta.txt), with the standard library only: a stand-in where the real images cannot be
(the GPU check's CPU rehearsal, a GPU machine without the 163 MB of CIFAR-10). Class k is a
stripe pattern in its own colour at one of 32 phases, so it compresses well and is learnable;
its throughput on a network is that of any data of its size.

    python3 scripts/gpu-check/synthetic_cifar.py DIR --per-file N --test M

The folder must not exist or be empty (nothing the tool did not create is overwritten).
"""
import argparse
import os
import sys

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
           "truck"]
COLOURS = [(230, 40, 40), (40, 200, 40), (40, 60, 230), (230, 220, 40), (40, 220, 220),
           (220, 40, 220), (240, 140, 30), (120, 40, 200), (140, 230, 150), (120, 110, 90)]


def variants():
    """variants[k][phase]: the 3,073-byte record (label, then R, G and B planes) of class k."""
    out = []
    for k, colour in enumerate(COLOURS):
        period = 2 + k // 2
        per_phase = []
        for phase in range(32):
            planes = bytearray()
            for fg in colour:
                for y in range(32):
                    for x in range(32):
                        along = y if k % 2 == 0 else x
                        on = (along + phase) % period < (period + 1) // 2
                        planes.append(fg if on else 30)
            per_phase.append(bytes([k]) + bytes(planes))
        out.append(per_phase)
    return out


def write(path, records):
    with open(path, "xb") as f:
        f.write(b"".join(records))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("dir")
    p.add_argument("--per-file", type=int, required=True, help="images per training file")
    p.add_argument("--test", type=int, required=True, help="test images")
    a = p.parse_args()
    if a.per_file < 1 or a.test < 1:
        sys.exit(f"--per-file ({a.per_file}) and --test ({a.test}) must be at least 1")
    if os.path.exists(a.dir) and os.listdir(a.dir):
        sys.exit(f"{a.dir}: exists and is not empty; give a new folder")
    os.makedirs(a.dir, exist_ok=True)
    table = variants()

    def records(n, start):
        return [table[i % 10][(i * 7) % 32] for i in range(start, start + n)]

    for b in range(5):
        write(os.path.join(a.dir, f"data_batch_{b + 1}.bin"), records(a.per_file, b * a.per_file))
    write(os.path.join(a.dir, "test_batch.bin"), records(a.test, 5 * a.per_file + 3))
    with open(os.path.join(a.dir, "batches.meta.txt"), "x") as f:
        f.write("\n".join(CLASSES) + "\n")
    print(f"{a.dir}: synthetic CIFAR-10 layout, 5 x {a.per_file} training and {a.test} test images")


if __name__ == "__main__":
    main()
