#!/usr/bin/env python3
"""Bins a hand hunt's pairs by the machine's speed state.

A hunt (benches/hunt.sh; see the README's Benchmark section) is many
pairs of `cachebench ops 2 100000` runs, plain libssl and libsslsess back
to back; its raw file has one line per result: pair, library (plain, or
sslsess; "lib" in the hunts made before benches/lib.sh), row, rate.

    hunt_bins.py RAW

For each bin of plain libssl's 2-thread churn rate (below 1.2 million a
second, then steps of 0.2 million up to 1.8 and above: that row's range on
this project's machine) it prints the median of the pairs' churn ratios
(libsslsess / plain) and their quartiles, binned two ways, biased in
opposite directions:

- by the pair's own plain rate. A pair lands in a fast bin partly because
  its plain run was fast by chance, which lowers its ratio: this binning
  understates libsslsess in the fast bins (and overstates it in the slow);
- by the mean plain rate of the pairs just before and after it, which
  keeps the pair's own noise out of its bin. The speed states outlast a
  pair only in part (the correlation it prints), so a fast bin also takes
  in pairs that were in a slower state themselves: this binning
  overstates libsslsess in the fast bins.
"""

import statistics
import sys
from collections import defaultdict

BINS = [(0, 1.2e6), (1.2e6, 1.4e6), (1.4e6, 1.6e6), (1.6e6, 1.8e6), (1.8e6, float("inf"))]
ROW = "churn"


def read(path):
    """{pair: {"plain": rate, "lib": rate}} for ROW, pairs with both
    libraries only."""
    pairs = defaultdict(dict)
    with open(path) as f:
        for number, line in enumerate(f, 1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 4:
                sys.exit(f"hunt_bins: {path}:{number}: not 'pair library row rate'")
            pair, library, name, rate = fields
            if name == ROW:
                pairs[int(pair)]["lib" if library == "sslsess" else library] = float(rate)
    return {p: r for p, r in pairs.items() if set(r) == {"plain", "lib"}}


def neighbours(pairs, p):
    """Mean plain rate of pairs p-1 and p+1, or None if either is missing."""
    if p - 1 in pairs and p + 1 in pairs:
        return (pairs[p - 1]["plain"] + pairs[p + 1]["plain"]) / 2
    return None


def label(lo, hi):
    if lo == 0:
        return f"below {hi / 1e6:.1f} M/s"
    if hi == float("inf"):
        return f"{lo / 1e6:.1f} M/s or more"
    return f"{lo / 1e6:.1f}-{hi / 1e6:.1f} M/s"


def show(title, pairs, state):
    """Prints the bins of `pairs` by `state`: {pair: plain rate it stands for}."""
    print(title)
    for lo, hi in BINS:
        ratios = sorted(
            pairs[p]["lib"] / pairs[p]["plain"] for p, rate in state.items() if lo <= rate < hi
        )
        n = len(ratios)
        if n == 0:
            continue
        q1, q3 = ratios[n // 4], ratios[n - 1 - n // 4]
        print(f"  {label(lo, hi):18s} {n:4d} pairs  median {statistics.median(ratios):.3f}"
              f"  quartiles {q1:.3f}-{q3:.3f}")


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: hunt_bins.py RAW")
    pairs = read(sys.argv[1])
    if not pairs:
        sys.exit(f"hunt_bins: no pairs with a {ROW} row in {sys.argv[1]}")
    print(f"{ROW}: {len(pairs)} pairs, libsslsess / plain libssl, binned by plain libssl's rate")
    own = {p: r["plain"] for p, r in pairs.items()}
    near = {p: neighbours(pairs, p) for p in pairs}
    near = {p: rate for p, rate in near.items() if rate is not None}
    show("by the pair's own plain rate:", pairs, own)
    show("by its neighbours' (the pairs before and after it):", pairs, near)
    if len(near) < 3:
        return
    print(f"correlation of a pair's plain rate with its neighbours': "
          f"{statistics.correlation([own[p] for p in near], list(near.values())):.2f}"
          f" ({len(near)} pairs)")


if __name__ == "__main__":
    main()
