"""Deterministic "many small files" source: N files of 0-300 bytes in D directories.

    python3 bench/small_files.py DIR [--files 100000] [--dirs 100] [--seed 42]

The shape of mail directories and package caches: per-file cost (walk, lstat, open, read,
tree entries), not bytes per second, decides backup and restore time. Text-like content
(words from a small vocabulary), so the files compress; about 1 % are empty. Standard
library only: the same bytes on any CPython.
"""

from __future__ import annotations

import argparse
import os
import random

WORDS = ("alpha beta gamma delta error warning info debug user request response status "
         "volume backup restore snapshot pack index tree blob key value 200 404 500").split()


def generate(root: str, files: int, dirs: int, seed: int) -> int:
    rng = random.Random(seed)
    total = 0
    os.makedirs(root, exist_ok=True)
    for number in range(files):
        directory = os.path.join(root, f"d{number % dirs:03d}")
        if number < dirs:
            os.makedirs(directory, exist_ok=True)
        size = 0 if rng.random() < 0.01 else rng.randint(1, 300)
        text = " ".join(rng.choice(WORDS) for _ in range(size // 4 + 1)).encode()[:size]
        with open(os.path.join(directory, f"f{number:06d}.txt"), "wb") as handle:
            handle.write(text)
        total += len(text)
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root")
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--dirs", type=int, default=100)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    total = generate(args.root, args.files, args.dirs, args.seed)
    print(f"{args.files} files, {total} bytes in {args.dirs} directories under {args.root}")


if __name__ == "__main__":
    main()
