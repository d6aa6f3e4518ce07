#!/usr/bin/env bash
# benches/hunt.sh SECONDS OUT: a hand hunt for the machine's speed states
# (not part of `make bench`).
#
# For SECONDS, runs pairs of `cachebench ops 2 100000`, plain libssl and
# libsslsess preloaded back to back, which one goes first alternating
# between pairs, and writes one line per result to OUT (a new file): pair,
# library (plain or lib), row, rate. `benches/hunt_bins.py OUT` then bins
# the pairs by plain libssl's 2-thread churn rate, which follows the VM's
# speed state: so that row can be seen in states that `make bench` runs
# meet rarely. Run it on an otherwise idle machine, after `make lib`.

source "$(dirname "${BASH_SOURCE[0]}")/../tests-c/lib.sh"

if [ $# -ne 2 ]; then
    echo "usage: benches/hunt.sh SECONDS OUT" >&2
    exit 2
fi
seconds=$1 out=$2
[ -s "$out" ] && { echo "hunt: $out exists; give a new file" >&2; exit 2; }
bench=$SSLSESS_BUILD/cachebench
build_plain "$bench" "$SSLSESS_ROOT/benches/cachebench.c"
[ -f "$SSLSESS_LIB" ] || { echo "hunt: $SSLSESS_LIB is missing (make lib)" >&2; exit 2; }

# run_side PAIR SIDE: one run of SIDE (plain|lib), its results appended to OUT.
run_side() {
    local pair=$1 side=$2 preload= want=plain result
    if [ "$side" = lib ]; then preload=$SSLSESS_LIB want=sslsess; fi
    if ! result=$(LD_PRELOAD=$preload run_bounded 300 "$bench" ops 2 100000); then
        echo "hunt: pair $pair, $side: cachebench failed" >&2
        exit 1
    fi
    # cachebench says which library answered (as benches/run.sh checks).
    if ! grep -qx "LIB $want" <<<"$result"; then
        echo "hunt: pair $pair, $side: ran without the expected library ($want)" >&2
        exit 1
    fi
    awk -v p="$pair" -v s="$side" '$1 == "RESULT" { print p, s, $2, $3 }' <<<"$result" >>"$out"
}

: >"$out"
end=$((SECONDS + seconds))
pair=0
while [ "$SECONDS" -lt "$end" ]; do
    if ((pair % 2)); then sides=(plain lib); else sides=(lib plain); fi
    for side in "${sides[@]}"; do
        run_side "$pair" "$side"
    done
    pair=$((pair + 1))
done
echo "hunt: $pair pairs in $out"
