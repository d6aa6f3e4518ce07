#!/usr/bin/env python3
"""benches/lockstep.py: a handshake row of `make bench`, in lockstep.

Usage: lockstep.py [options] BIN PROTO SESSIONS THREADS HANDSHAKES CHUNKS

Each repetition starts `BIN hs-step PROTO SESSIONS THREADS HANDSHAKES
CHUNKS IN OUT` twice: side A on plain libssl, side B with LD_PRELOAD=LIB
(--preload). Each sets itself up (keys, contexts, cache, warm-up), says so
with a byte, then runs one timed chunk of HANDSHAKES handshakes per thread
for each byte this driver writes to it, and answers with a byte when the
chunk is done. The driver hands the baton back and forth, A B A B ..., so
that the two sides' chunks i run next to each other in time, a few
milliseconds apart. This VM's vCPUs switch between a fast and a slow
state, for single chunks or for a few hundred milliseconds; two whole runs
one after the other often see different states, two adjacent chunks
rarely do, and benches/summary.py takes the median over chunk pairs, which
the pairs that straddle a change do not move. Every chunk starts right
after the other side's, with the caches the other process left (in turns
A B B A, a side's second chunk in a row ran about 1.5% faster than the
other side's chunk next to it). When every chunk has run the driver closes
both pipes; only then do the sides check their results and exit, so that
no side's exit overlaps the other's timed chunk.

Between repetitions, which side is started and goes first alternates (A
in odd repetitions, B in even ones), and with one thread both sides are
pinned to one CPU, the next of the allowed CPUs every other repetition (so
that each CPU sees both orders); with more threads they may use every
allowed CPU. Each repetition has new processes, and so draws again what
sets a side's speed for its lifetime (plain against plain, whole
repetitions sat a percent or two apart; memory layout or thread
placement, presumably): many short repetitions beat a few long ones.

With --raw, appends "KEY LIB hs.REP.I RATE" per chunk I (handshakes per
second) and "KEY LIB cached N" per side to RAW (benches/summary.py reads
them). Both sides must exit 0 and say which library served them ("LIB
plain", "LIB sslsess"); a repetition that takes more than --timeout
seconds is killed. Exit status 0 on success, 1 otherwise.
"""
import argparse, os, random, select, statistics, subprocess, sys, time

ap = argparse.ArgumentParser(description="A handshake row of make bench: plain libssl and "
                             "libsslsess in lockstep (see the source's header).")
ap.add_argument("--preload", help="the library side B runs with (LD_PRELOAD)")
ap.add_argument("--both-plain", action="store_true",
                help="side B on plain libssl too: how far apart the method puts equals")
ap.add_argument("--reps", type=int, default=1, help="repetitions (default 1)")
ap.add_argument("--raw", help="append the results to this file")
ap.add_argument("--key", default="hs", help="the row's key in RAW")
ap.add_argument("--timeout", type=float, default=300, help="seconds per repetition")
ap.add_argument("--dots", action="store_true", help="print a dot per repetition")
ap.add_argument("--verbose", action="store_true", help="print each repetition's paired ratio")
ap.add_argument("bin")
for name in ("proto", "sessions", "threads", "handshakes", "chunks"):
    ap.add_argument(name, type=int)
opt = ap.parse_args()
if opt.both_plain == bool(opt.preload):
    ap.error("give --preload LIB or --both-plain")
if opt.both_plain and opt.raw:
    ap.error("--both-plain writes no RAW (its side B is no libsslsess)")
args = [str(x) for x in (opt.proto, opt.sessions, opt.threads, opt.handshakes, opt.chunks)]
allowed = sorted(os.sched_getaffinity(0))


class Failed(Exception):
    pass


class Side:
    def __init__(self, name, lib, preload, cpu, deadline):
        self.name, self.lib, self.deadline = name, lib, deadline
        to_r, self.to_w = os.pipe()  # baton: driver -> side
        self.from_r, from_w = os.pipe()  # baton: side -> driver
        env = dict(os.environ)
        env.pop("LD_PRELOAD", None)
        if preload:
            env["LD_PRELOAD"] = preload
        pin = None if cpu is None else lambda: os.sched_setaffinity(0, {cpu})
        self.proc = subprocess.Popen(
            [opt.bin, "hs-step", *args, str(to_r), str(from_w)], env=env,
            stdout=subprocess.PIPE, text=True, pass_fds=(to_r, from_w), preexec_fn=pin)
        # Only the side holds these ends: its exit is then end of file here.
        os.close(to_r)
        os.close(from_w)

    def __str__(self):
        return f"side {self.name} ({self.lib})"

    def wait_byte(self, what):
        left = self.deadline - time.monotonic()
        if left <= 0 or not select.select([self.from_r], [], [], left)[0]:
            raise Failed(f"{self}: timed out {what}")
        if len(os.read(self.from_r, 1)) != 1:
            raise Failed(f"{self}: exited {what}")

    def chunk(self, i):
        try:
            os.write(self.to_w, b"\1")
        except BrokenPipeError:
            raise Failed(f"{self}: exited before chunk {i}")
        self.wait_byte(f"in chunk {i}")

    def finish(self):
        # The side's chunk rates and cached count, once it has exited.
        try:
            out, _ = self.proc.communicate(timeout=max(self.deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            raise Failed(f"{self}: timed out at its end")
        if self.proc.returncode != 0:
            raise Failed(f"{self}: exit code {self.proc.returncode}")
        lines = [l.split() for l in out.splitlines()]
        # A preload that did not take would compare libssl with itself.
        if ["LIB", self.lib] not in lines:
            raise Failed(f"{self}: did not run on {self.lib}")
        rates = [l[2] for l in lines if l[:1] == ["CHUNK"]]
        cached = [l[2] for l in lines if l[:2] == ["RESULT", "cached"]]
        if len(rates) != opt.chunks or len(cached) != 1:
            raise Failed(f"{self}: incomplete output")
        return rates, cached[0]

    def release(self):
        # End of file for the side: every chunk has run.
        os.close(self.to_w)
        self.to_w = None

    def close(self):
        for fd in (self.to_w, self.from_r):
            if fd is not None:
                os.close(fd)


def repetition(rep):
    """One repetition: returns {side: (rates, cached)} for sides A, B."""
    deadline = time.monotonic() + opt.timeout
    cpu = allowed[(rep - 1) // 2 % len(allowed)] if opt.threads == 1 else None
    specs = [("A", "plain", None), ("B", "plain" if opt.both_plain else "sslsess", opt.preload)]
    if rep % 2 == 0:
        specs.reverse()
    # Started in the order they run.
    order = [Side(*spec, cpu, deadline) for spec in specs]
    try:
        for side in order:
            side.wait_byte("in its set-up")
        for i in range(opt.chunks):
            for side in order:
                side.chunk(i)
        for side in order:
            side.release()
        results = {side.name: side.finish() for side in order}
    except Failed as e:
        for side in order:
            if side.proc.poll() is None:
                side.proc.kill()
            side.proc.wait()
        codes = ", ".join(f"{s.name} {s.proc.returncode}" for s in order)
        print(f"lockstep: {' '.join(args)}, repetition {rep}: {e} (exit codes: {codes})",
              file=sys.stderr)
        sys.exit(1)
    finally:
        for side in order:
            side.close()
    return results


pooled, rep_meds = [], []
for rep in range(1, opt.reps + 1):
    results = repetition(rep)
    libs = {"A": "plain", "B": "plain" if opt.both_plain else "sslsess"}
    if opt.raw:
        with open(opt.raw, "a") as f:
            for name in ("A", "B"):
                rates, cached = results[name]
                for i, r in enumerate(rates):
                    print(f"{opt.key} {libs[name]} hs.{rep}.{i} {r}", file=f)
                print(f"{opt.key} {libs[name]} cached {cached}", file=f)
    ra, rb = ([float(r) for r in results[name][0]] for name in ("A", "B"))
    ratios = [y / x for x, y in zip(ra, rb)]
    pooled += ratios
    rep_meds.append(statistics.median(ratios))
    if opt.dots:
        print(".", end="", flush=True)
    if opt.verbose:
        print(f"{opt.key} rep {rep}: A {statistics.median(ra):.0f}/s, "
              f"B {statistics.median(rb):.0f}/s, B/A median of {len(ratios)} chunk pairs "
              f"{rep_meds[-1]:.4f}")
if opt.verbose and opt.reps > 1:
    # As benches/summary.py: the median over all pairs, repetitions resampled.
    rng = random.Random(4000)
    blocks = [pooled[i * opt.chunks:(i + 1) * opt.chunks] for i in range(opt.reps)]
    meds = sorted(statistics.median([r for b in rng.choices(blocks, k=len(blocks)) for r in b])
                  for _ in range(1000))
    print(f"{opt.key}: B/A over all chunk pairs {statistics.median(pooled):.4f} "
          f"[95%: {meds[25]:.4f}-{meds[974]:.4f}]; repetitions' medians "
          f"{min(rep_meds):.4f} to {max(rep_meds):.4f}, sd {statistics.stdev(rep_meds):.4f}")
