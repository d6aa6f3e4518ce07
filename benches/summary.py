#!/usr/bin/env python3
"""benches/summary.py: the table and PASS/FAIL lines of `make bench`.

Usage: summary.py RAW MD SESSIONS "THREADS..." HS12 HS13 CAPTION

Reads RAW (lines "KEY LIB NAME VALUE", as benches/run.sh writes them),
prints one line per target and the table, and writes the table with
CAPTION to MD. Run on a committed raw file with that run's arguments
(the caption is the first line of its .md), it gives the same .md byte
for byte, e.g.:

  python3 benches/summary.py benches/results/8b24c1e-run6.raw.txt /tmp/t.md \
      100000 "1 2" 4000 800 "$(head -1 benches/results/8b24c1e-run6.md)"
"""
import random, statistics, sys
from collections import defaultdict

raw, md_path, n, threads, hs12, hs13, caption = sys.argv[1:8]
n = int(n)
threads = [int(t) for t in threads.split()]
vals = defaultdict(list)
for line in open(raw):
    key, lib, name, value = line.split()
    vals[(key, name, lib)].append(float(value))

def med(key, name, lib):
    v = vals.get((key, name, lib))
    return statistics.median(v) if v else None

def rate(x):
    for div, unit in ((1e6, "M/s"), (1e3, "k/s")):
        if x >= div:
            return f"{x / div:.3g} {unit}"
    return f"{x:.3g}/s"

def spread(key, name, lib):
    v = sorted(vals[(key, name, lib)])
    m = statistics.median(v)
    return f"{(v[0] / m - 1) * 100:+.0f}%/{(v[-1] / m - 1) * 100:+.0f}%"

RESAMPLES = 4000
SEED = 4000

def interval(ratios):
    # A 95% percentile-bootstrap interval of the median of the paired
    # ratios (RESAMPLES resamples, a fixed seed: the same data give the same
    # interval): how far the verdict's figure could move by chance alone.
    rng = random.Random(SEED)
    meds = sorted(statistics.median(rng.choices(ratios, k=len(ratios)))
                  for _ in range(RESAMPLES))
    return meds[RESAMPLES // 40], meds[RESAMPLES - RESAMPLES // 40 - 1]

def th(t):
    return "1 thread" if t == 1 else f"{t} threads"

rows = []  # (workload, plain, sslsess, ratio of medians, paired ratio, its interval, target, verdict)
lines = []

def throughput(label, key, name, target):
    p, s = med(key, name, "plain"), med(key, name, "sslsess")
    ratio = s / p
    # The i-th plain and i-th libsslsess results are the two runs of
    # repetition i (RAW keeps each side's results in run order).
    plain, sslsess = vals[(key, name, "plain")], vals[(key, name, "sslsess")]
    assert len(plain) == len(sslsess), f"{key} {name}: unpaired runs"
    ratios = [b / a for a, b in zip(plain, sslsess)]
    paired = statistics.median(ratios)
    low, high = interval(ratios)
    ok = paired >= target
    rows.append((label, rate(p), rate(s), f"{ratio:.2f}x", f"{paired:.3f}x",
                 f"{low:.3f} to {high:.3f}", f">= {target:.2f}x", "PASS" if ok else "FAIL"))
    lines.append(f"{'PASS' if ok else 'FAIL'}  {label}: plain {rate(p)} "
                 f"[{spread(key, name, 'plain')}], libsslsess {rate(s)} "
                 f"[{spread(key, name, 'sslsess')}], ratio of medians {ratio:.3f}, "
                 f"paired {paired:.3f} [95%: {low:.3f}-{high:.3f}] (target >= {target:.2f})")

ops = [("add", "add"), ("duplicate add", "dupadd"), ("remove", "remove"),
       ("churn (cache of 1000, evicts on every add)", "churn")]
for t in threads:
    for label, name in ops:
        throughput(f"{label}, {n // 1000}k sessions, {th(t)}", f"ops:{t}", name,
                   1.0 if t == 1 else 1.5)
    flabel = f"flush of {n // 1000}k sessions" + ("" if t == 1 else f", {t} threads flushing at once")
    throughput(flabel, f"ops:{t}", "flush", 1.0)
for proto in ("12", "13"):
    kind = "TLS 1.2 session id" if proto == "12" else "TLS 1.3 stateful ticket"
    for sessions in (1, 10000):
        for t in threads:
            throughput(f"resumed handshakes, {kind}, {sessions:,} cached, {th(t)}",
                       f"hs:{proto}:{sessions}:{t}", "hs", 0.99)

p, s = med("mem", "mem", "plain"), med("mem", "mem", "sslsess")
ok = s <= p + 64
rows.append((f"memory per cached session ({n // 1000}k sessions)", f"{p:.0f} B", f"{s:.0f} B",
             f"{s - p:+.0f} B", "", "", "<= plain + 64 B", "PASS" if ok else "FAIL"))
lines.append(f"{'PASS' if ok else 'FAIL'}  memory per cached session: plain {p:.1f} B, "
             f"libsslsess {s:.1f} B ({s - p:+.1f} B; target <= plain + 64 B)")

cg = [("cg-ops", "callgrind: instructions per add or remove (10k adds + 10k removes)", 20000),
      ("cg-churn", "callgrind: instructions per add that evicts (10k, cache of 1000)", 10000),
      ("cg-ops-100k", "callgrind: instructions per add or remove, 100k other sessions cached", 20000),
      ("cg-churn-100k", "callgrind: instructions per add that evicts (10k, cache of 100,000)", 10000),
      ("cg-hs12", "callgrind: instructions per resumed TLS 1.2 handshake (200)", 200),
      ("cg-hs13", "callgrind: instructions per resumed TLS 1.3 handshake (200)", 200)]
for key, label, per in cg:
    p, s = med(key, "ir", "plain") / per, med(key, "ir", "sslsess") / per
    rows.append((label, f"{p:,.0f}", f"{s:,.0f}", f"{p / s:.2f}x", "", "", "(info)", ""))
    lines.append(f"info  {label}: plain {p:,.0f}, libsslsess {s:,.0f} "
                 f"({s - p:+,.0f} per op; plain/libsslsess {p / s:.3f})")

print()
print("\n".join(lines))
failed = sum(1 for r in rows if r[-1] == "FAIL")
passed = sum(1 for r in rows if r[-1] == "PASS")

md = ["| workload | plain libssl | libsslsess | ratio of medians | paired ratio | its 95% interval | target | result |",
      "|---|---|---|---|---|---|---|---|"]
md += ["| " + " | ".join(r) + " |" for r in rows]
note = ("ratio of medians: libsslsess's median / plain's for throughput "
        "(> 1: libsslsess is faster), for memory the difference, for "
        "callgrind plain / libsslsess (> 1: libsslsess executes fewer "
        "instructions); paired ratio (the verdict): the median over "
        "repetitions of libsslsess / plain within each repetition, whose "
        "two runs are back to back; its 95% interval: a percentile "
        f"bootstrap of that median ({RESAMPLES:,} resamples of the repetitions' "
        "paired ratios, fixed seed), the range it could take by chance.")
with open(md_path, "w") as f:
    f.write(caption + "\n\n" + "\n".join(md) + "\n\n" + note + "\n")
print()
print(caption)
print()
print("\n".join(md))
print()
print(note)
print(f"\nbench: {passed} targets PASS, {failed} FAIL (table in {md_path})")
