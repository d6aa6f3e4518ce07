#!/usr/bin/env python3
"""benches/summary.py: the table and PASS/FAIL lines of `make bench`.

Usage: summary.py RAW MD SESSIONS "THREADS..." CAPTION

Reads RAW (lines "KEY LIB NAME VALUE", as benches/run.sh and
benches/lockstep.py write them), prints one line per target and the table,
and writes the table with CAPTION to MD. Run on a committed raw file with
that run's arguments (the caption is the first line of its .md), it gives
the same .md byte for byte. Raw files from before the handshake rows ran in
lockstep (their handshake results are named "hs", not "hs.REP.CHUNK"; all
of benches/results/ up to 6dcd1de) need the summary.py of commit 955751f:

  git show 955751f:benches/summary.py >/tmp/summary.py
  python3 /tmp/summary.py benches/results/8b24c1e-run6.raw.txt /tmp/t.md \
      100000 "1 2" 4000 800 "$(head -1 benches/results/8b24c1e-run6.md)"

Every throughput row: the plain and libsslsess columns are the medians
over repetitions of each side's figure; the paired ratio (the verdict) is
the median over repetitions of libsslsess's figure / plain's figure of the
same repetition, with a bootstrap interval over repetitions. For cache
operations a repetition is two runs back to back. For resumed handshakes
it is a plain and a libsslsess process taking turns at chunks of the same
number of handshakes (lockstep.py), and a side's figure is its throughput
over all its chunks (handshakes / the chunks' total time): whatever lands
in a few chunks only (libssl's auto-flush every 255 handshakes, say)
counts in full. The PASS/FAIL lines also print, as a cross-check, the
median over all chunk pairs of libsslsess's chunk / plain's (chunk I of
one side ran next to chunk I of the other), which drops such costs, and
dips that hit one side's chunk.
"""
import random, statistics, sys
from collections import defaultdict

raw, md_path, n, threads, caption = sys.argv[1:6]
n = int(n)
threads = [int(t) for t in threads.split()]
vals = defaultdict(list)
chunks = defaultdict(dict)  # (key, lib, repetition) -> {chunk: rate}
for line in open(raw):
    key, lib, name, value = line.split()
    if name.startswith("hs."):
        _, rep, i = name.split(".")
        got = chunks[(key, lib, int(rep))]
        assert int(i) not in got, f"{key} {lib} {name}: twice in {raw}"
        got[int(i)] = float(value)
    else:
        vals[(key, name, lib)].append(float(value))

def med(key, name, lib):
    v = vals.get((key, name, lib))
    return statistics.median(v) if v else None

def rate(x):
    for div, unit in ((1e6, "M/s"), (1e3, "k/s")):
        if x >= div:
            return f"{x / div:.3g} {unit}"
    return f"{x:.3g}/s"

def spread_of(v, m):
    # The slowest and the fastest of v against m.
    return f"{(min(v) / m - 1) * 100:+.0f}%/{(max(v) / m - 1) * 100:+.0f}%"

def spread(key, name, lib):
    v = vals[(key, name, lib)]
    return spread_of(v, statistics.median(v))

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

def verdict(label, p, s, ratios, p_spread, s_spread, target, extra=""):
    # One row: p and s the two libraries' figures, ratios the paired ratios
    # (libsslsess / plain), one per repetition.
    ratio = s / p
    paired = statistics.median(ratios)
    low, high = interval(ratios)
    ok = paired >= target
    rows.append((label, rate(p), rate(s), f"{ratio:.2f}x", f"{paired:.3f}x",
                 f"{low:.3f} to {high:.3f}", f">= {target:.2f}x", "PASS" if ok else "FAIL"))
    lines.append(f"{'PASS' if ok else 'FAIL'}  {label}: plain {rate(p)} "
                 f"[{p_spread}], libsslsess {rate(s)} "
                 f"[{s_spread}], ratio of medians {ratio:.3f}, "
                 f"paired {paired:.3f} [95%: {low:.3f}-{high:.3f}]{extra} (target >= {target:.2f})")

def throughput(label, key, name, target):
    # The i-th plain and i-th libsslsess results are the two runs of
    # repetition i (RAW keeps each side's results in run order).
    plain, sslsess = vals[(key, name, "plain")], vals[(key, name, "sslsess")]
    assert len(plain) == len(sslsess), f"{key} {name}: unpaired runs"
    verdict(label, med(key, name, "plain"), med(key, name, "sslsess"),
            [b / a for a, b in zip(plain, sslsess)],
            spread(key, name, "plain"), spread(key, name, "sslsess"), target)

def lockstep(label, key, target):
    # A repetition is a plain and a libsslsess process that took turns at
    # chunks of the same number of handshakes. Each side's figure is its
    # throughput over all its chunks (handshakes / the chunks' total time),
    # so that a cost that lands in a few chunks only (libssl's auto-flush
    # every 255 handshakes, say) counts in full; the paired ratio is the
    # two sides' throughputs within the repetition.
    reps = sorted(r for k, lib, r in chunks if k == key and lib == "plain")
    assert reps, f"{key}: no chunks (a raw file from before lockstep?)"
    thr, pair_ratios = defaultdict(list), []
    for r in reps:
        assert (key, "sslsess", r) in chunks, f"{key} repetition {r}: no libsslsess side"
        plain, sslsess = chunks[(key, "plain", r)], chunks[(key, "sslsess", r)]
        assert plain.keys() == sslsess.keys(), f"{key} repetition {r}: unpaired chunks"
        for lib, c in (("plain", plain), ("sslsess", sslsess)):
            thr[lib].append(len(c) / sum(1 / rate for rate in c.values()))
        # Chunk i of one side ran next to chunk i of the other: a cross-check
        # that ignores costs landing in few chunks, and one-sided dips.
        pair_ratios += [sslsess[i] / plain[i] for i in plain]
    assert sum(k == key for k, _, _ in chunks) == 2 * len(reps), \
        f"{key}: a repetition without its plain side"
    p, s = (statistics.median(thr[lib]) for lib in ("plain", "sslsess"))
    verdict(label, p, s, [b / a for a, b in zip(thr["plain"], thr["sslsess"])],
            spread_of(thr["plain"], p), spread_of(thr["sslsess"], s), target,
            f", median over chunk pairs {statistics.median(pair_ratios):.3f}")

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
            lockstep(f"resumed handshakes, {kind}, {sessions:,} cached, {th(t)}",
                     f"hs:{proto}:{sessions}:{t}", 0.99)

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
        "instructions). Paired ratio (the verdict): the median over "
        "repetitions of libsslsess / plain within each repetition: for "
        "cache operations two runs back to back; for resumed handshakes "
        "two processes taking turns at chunks of handshakes, each side's "
        "figure its throughput over all its chunks. Its 95% interval: a "
        f"percentile bootstrap of that median ({RESAMPLES:,} resamples of "
        "the repetitions' paired ratios, fixed seed), the range it could "
        "take by chance.")
with open(md_path, "w") as f:
    f.write(caption + "\n\n" + "\n".join(md) + "\n\n" + note + "\n")
print()
print(caption)
print()
print("\n".join(md))
print()
print(note)
print(f"\nbench: {passed} targets PASS, {failed} FAIL (table in {md_path})")
