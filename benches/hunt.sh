#!/usr/bin/env bash
# benches/hunt.sh SECONDS OUT [THREADS]: a hand hunt for the machine's speed
# states (not part of `make bench`).
#
# For SECONDS, runs pairs of `cachebench ops THREADS 100000` (2 threads by
# default), plain libssl and libsslsess preloaded back to back, which one
# goes first alternating between pairs, and writes one line per result to
# OUT: pair, library (plain or lib), row, rate. `benches/hunt_bins.py OUT`
# then bins the pairs by plain libssl's rate, which follows the VM's speed
# state: so a row can be seen in states that `make bench` runs meet rarely.
# Run it on an otherwise idle machine, after `make lib`.

source "$(dirname "${BASH_SOURCE[0]}")/../tests-c/lib.sh"

if [ $# -lt 2 ] || [ $# -gt 3 ]; then
    echo "usage: benches/hunt.sh SECONDS OUT [THREADS]" >&2
    exit 2
fi
seconds=$1 out=$2 threads=${3:-2}
bench=$SSLSESS_BUILD/cachebench
build_plain "$bench" "$SSLSESS_ROOT/benches/cachebench.c"
[ -f "$SSLSESS_LIB" ] || { echo "hunt: $SSLSESS_LIB is missing (make lib)" >&2; exit 2; }

: >"$out"
end=$((SECONDS + seconds))
pair=0
while [ "$SECONDS" -lt "$end" ]; do
    if ((pair % 2)); then sides=(plain lib); else sides=(lib plain); fi
    for side in "${sides[@]}"; do
        preload=
        [ "$side" = lib ] && preload=$SSLSESS_LIB
        LD_PRELOAD=$preload run_bounded 300 "$bench" ops "$threads" 100000 |
            awk -v p="$pair" -v s="$side" '$1 == "RESULT" { print p, s, $2, $3 }' >>"$out"
    done
    pair=$((pair + 1))
done
echo "hunt: $pair pairs in $out"
