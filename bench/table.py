#!/usr/bin/env python3
"""One table from peers.sh result folders: the engine against restic and borg.

    python3 bench/table.py SCRATCH_DIR [SCRATCH_DIR ...]

Per tool and step, the median run by wall time (see ../shared/bench/summarize.py for the
byte conventions: logical source bytes for backups and restore, repository bytes for
verify). Every ratio column says how many times better the engine is (>1 = better):
engine/peer for throughputs, peer/engine for the incremental time, repository size and RSS.
"""
import statistics
import sys
from collections import defaultdict


def load(folders):
    timed = defaultdict(lambda: defaultdict(list))
    recorded = defaultdict(lambda: defaultdict(list))
    for folder in folders:
        for line in open(f"{folder}/results.tsv"):
            fields = line.rstrip("\n").split("\t")
            if len(fields) < 7:
                continue
            tool, step = fields[0], fields[1]
            if fields[2]:
                timed[tool][step].append({"wall": float(fields[2]), "rss": int(fields[5]),
                                          "bytes": int(fields[6] or 0)})
            else:
                recorded[tool][step].append(int(fields[6] or 0))
    return timed, recorded


def median_run(runs):
    ordered = sorted(runs, key=lambda run: run["wall"])
    return ordered[(len(ordered) - 1) // 2]


def main(folders):
    timed, recorded = load(folders)
    tools = [tool for tool in ("engine", "restic", "borg") if tool in timed]
    metrics = {}
    for tool in tools:
        values = {}
        for step in ("full_1", "full_2", "incr", "restore", "verify"):
            if timed[tool].get(step):
                run = median_run(timed[tool][step])
                values[step] = (run["bytes"] / run["wall"] / 1e6, run["wall"])
        values["repo"] = statistics.median(recorded[tool]["repo_after_full"]) \
            if recorded[tool].get("repo_after_full") else None
        values["rss"] = max(run["rss"] for runs in timed[tool].values() for run in runs) / 1024
        identical = recorded[tool].get("restore_identical", [])
        values["identical"] = f"{sum(identical)}/{len(identical)}" if identical else "-"
        metrics[tool] = values
    peers = [tool for tool in tools if tool != "engine"]
    header = "| metric | " + " | ".join(tools) + "".join(
        f" | engine vs {peer}" for peer in peers if "engine" in tools) + " |"
    print(header)
    print("|---" * (header.count("|") - 1) + "|")
    rows = [("full backup (2nd fresh repo) MB/s", "full_2", "speed"),
            ("full backup (1st fresh repo) MB/s", "full_1", "speed"),
            ("incremental after 5 % change, s", "incr", "time"),
            ("restore MB/s", "restore", "speed"),
            ("verify all data MB/s of repo", "verify", "speed"),
            ("repository bytes after full", "repo", "size"),
            ("peak RSS MiB (all steps)", "rss", "size")]
    for label, key, kind in rows:
        cells, raw = [], {}
        for tool in tools:
            value = metrics[tool].get(key)
            if value is None:
                cells.append("-")
                continue
            if kind == "speed":
                raw[tool] = value[0]
                cells.append(f"{value[0]:.0f} ({value[1]:.2f} s)")
            elif kind == "time":
                raw[tool] = value[1]
                cells.append(f"{value[1]:.2f} ({value[0]:.0f} MB/s)")
            else:
                raw[tool] = value
                cells.append(f"{value:,.0f}")
        ratios = []
        for peer in peers:
            if "engine" not in raw or peer not in raw or not raw["engine"] or not raw[peer]:
                ratios.append("-")
            elif kind == "speed":
                ratios.append(f"{raw['engine'] / raw[peer]:.2f}x")
            else:  # time, size: smaller is better
                ratios.append(f"{raw[peer] / raw['engine']:.2f}x")
        print(f"| {label} | " + " | ".join(cells) + "".join(f" | {r}" for r in ratios) + " |")
    print("| restore byte-identical | " + " | ".join(metrics[t]["identical"] for t in tools)
          + " |" * (len(peers) + 1))
    if timed.get("cp", {}).get("restore") and "restore" in metrics.get("engine", {}):
        copy = median_run(timed["cp"]["restore"])
        engine_restore = metrics["engine"]["restore"][1]
        print(f"\n`cp -a` of the same source on the same disk: {copy['wall']:.2f} s; engine "
              f"restore {engine_restore:.2f} s = {copy['wall'] / engine_restore:.2f}x cp -a.")
    print("\nRatios: >1 means the engine is better (faster, smaller); for the incremental "
          "backup, repository size and RSS, the ratio is peer/engine.")


if __name__ == "__main__":
    main(sys.argv[1:] or sys.exit(__doc__))
