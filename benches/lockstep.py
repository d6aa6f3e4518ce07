#!/usr/bin/env python3
"""benches/lockstep.py: a `make bench` row of resumed handshakes, in lockstep.

Usage: lockstep.py [options] --preload LIB BIN PROTO SESSIONS THREADS COUNT STEPS

Each repetition starts `BIN hs-step PROTO SESSIONS THREADS COUNT STEPS IN
OUT` twice (benches/cachebench.c: STEPS chunks of COUNT resumed handshakes
per thread): side A on plain libssl, side B with LD_PRELOAD=LIB. Each side
sets itself up (sessions, keys, contexts, warm-up), says so with a byte,
then runs one timed step for each byte this driver writes to it, and
answers with a byte when the step is done. The driver hands the baton back
and forth, A B A B ..., STEPS times each, so that the two sides' steps i run
next to each other in time, milliseconds apart. This VM's vCPUs switch
between a fast and a slow state (the kept chunk rates show both), for
single steps or for a few hundred milliseconds (seen in hand runs, not
kept); two whole runs one after the other often see different
states, while the two sides' steps, interleaved, share the same states
nearly step for step, so the ratio of their total times per workload
(benches/summary.py's verdict) moves little. Every step starts right after
the other side's, with the caches the other process left (in turns A B B
A, a side's second handshake chunk in a row ran about 1.5% faster than the
other side's chunk next to it, in hand runs whose data was not kept).
When every step has run the driver closes both pipes; only then do the
sides check their results and exit, so that no side's exit overlaps the
other's timed step.

Between repetitions, which side goes first alternates (A in odd
repetitions, B in even ones; both are started at once and set up side by
side, and the first step waits for both). Both sides are pinned to the
same CPUs: with THREADS below the number of allowed CPUs, THREADS of
them, the next ones every other repetition (so that each CPU sees both orders); otherwise
every allowed CPU. Each repetition has new processes, and so draws again
what sets a side's speed for its lifetime (plain against plain, whole
repetitions sat a percent or two apart in hand runs, not kept; memory
layout or thread placement, presumably): many short repetitions beat a
few long ones.

A side prints "CHUNK NAME I RATE" per step (NAME the workload, I its
chunk); this driver appends "KEY LIB NAME.REP.I RATE" per step, and
"KEY LIB NAME VALUE" per "RESULT NAME VALUE" line, to RAW (--raw;
benches/summary.py reads them and gives the verdict). Both sides must
exit 0, print STEPS steps and say which library served them ("LIB
plain", "LIB sslsess"); a repetition that takes more than --timeout
seconds is killed. Exit status 0 on
success, 1 otherwise.
"""
import argparse, os, select, subprocess, sys, time

ap = argparse.ArgumentParser(description="A row of make bench: plain libssl and "
                             "libsslsess in lockstep (see the source's header).")
ap.add_argument("--preload", required=True, help="the library side B runs with (LD_PRELOAD)")
ap.add_argument("--reps", type=int, default=1, help="repetitions (default 1)")
ap.add_argument("--raw", required=True, help="append the results to this file")
ap.add_argument("--key", required=True, help="the rows' key in RAW")
ap.add_argument("--timeout", type=float, default=300, help="seconds per repetition")
ap.add_argument("--dots", action="store_true", help="print a dot per repetition")
ap.add_argument("bin")
STEP_ARGS = ("proto", "sessions", "threads", "count", "steps")
for name in STEP_ARGS:
    ap.add_argument(name, type=int)
opt = ap.parse_args()
args = ["hs-step", *(str(getattr(opt, n)) for n in STEP_ARGS)]
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
        pin = None if cpu is None else lambda: os.sched_setaffinity(0, cpu)
        self.proc = subprocess.Popen(
            [opt.bin, *args, str(to_r), str(from_w)], env=env,
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
            raise Failed(f"{self}: exited before step {i}")
        self.wait_byte(f"in step {i}")

    def finish(self):
        # The side's steps [(name, i, rate)] and results [(name, value)],
        # once it has exited.
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
        steps = [(l[1], int(l[2]), float(l[3])) for l in lines if l[:1] == ["CHUNK"] and len(l) == 4]
        results = [(l[1], l[2]) for l in lines if l[:1] == ["RESULT"] and len(l) == 3]
        if len(steps) != opt.steps:
            raise Failed(f"{self}: {len(steps)} steps printed, {opt.steps} expected")
        return steps, results

    def release(self):
        # End of file for the side: every step has run.
        os.close(self.to_w)
        self.to_w = None

    def close(self):
        for fd in (self.to_w, self.from_r):
            if fd is not None:
                os.close(fd)


def repetition(rep):
    """One repetition: returns {library: (steps, results)} for both sides."""
    deadline = time.monotonic() + opt.timeout
    # The CPUs both sides run on (None: every allowed one).
    cpu = None
    if opt.threads < len(allowed):
        first = (rep - 1) // 2 * opt.threads
        cpu = {allowed[(first + j) % len(allowed)] for j in range(opt.threads)}
    specs = [("A", "plain", None), ("B", "sslsess", opt.preload)]
    if rep % 2 == 0:
        specs.reverse()
    # In the order they run; both set up at once.
    order = [Side(*spec, cpu, deadline) for spec in specs]
    try:
        for side in order:
            side.wait_byte("in its set-up")
        for i in range(opt.steps):
            for side in order:
                side.chunk(i)
        for side in order:
            side.release()
        results = {side.lib: side.finish() for side in order}
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


for rep in range(1, opt.reps + 1):
    results = repetition(rep)
    with open(opt.raw, "a") as f:
        for lib in ("plain", "sslsess"):
            steps, extra = results[lib]
            for step, i, r in steps:
                print(f"{opt.key} {lib} {step}.{rep}.{i} {r:.6g}", file=f)
            for what, value in extra:
                print(f"{opt.key} {lib} {what} {value}", file=f)
    if opt.dots:
        print(".", end="", flush=True)
