#!/usr/bin/env bash
# benches/hunt.sh SECONDS OUT: a hand hunt for the machine's speed states
# (not part of `make bench`).
#
# For SECONDS, runs pairs of `cachebench ops 2 100000`, plain libssl and
# libsslsess preloaded back to back, which one goes first alternating
# between pairs, and writes one line per result to OUT (a new file): pair,
# library (plain or sslsess; "lib" in hunts before benches/lib.sh), row,
# rate. `benches/hunt_bins.py OUT` then bins the pairs by plain libssl's
# 2-thread churn rate, which follows the VM's speed state: so that row can
# be seen in states that `make bench` runs meet rarely. Run it on an
# otherwise idle machine, after `make lib`.

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if [ $# -ne 2 ]; then
    echo "usage: benches/hunt.sh SECONDS OUT" >&2
    exit 2
fi
seconds=$1 RAW=$2
[ -s "$RAW" ] && { echo "hunt: $RAW exists; give a new file" >&2; exit 2; }
BIN=$SSLSESS_BUILD/cachebench
build_cachebench

: >"$RAW"
end=$((SECONDS + seconds))
pair=0
while [ "$SECONDS" -lt "$end" ]; do
    if ((pair % 2)); then sides=(plain sslsess); else sides=(sslsess plain); fi
    for side in "${sides[@]}"; do
        run_one "$side" "$pair" ops 2 100000
    done
    pair=$((pair + 1))
done
echo "hunt: $pair pairs in $RAW"
