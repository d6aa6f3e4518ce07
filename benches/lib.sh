# benches/lib.sh: shared by benches/run.sh and benches/hunt.sh (sourced,
# not run). The caller sets BIN (the cachebench binary) and RAW (the file
# results go to).

source "$(dirname "${BASH_SOURCE[0]}")/../tests-c/lib.sh"

# run_one LIB KEY ARGS...: one run of $BIN ARGS on LIB (plain|sslsess);
# appends "KEY LIB NAME VALUE" per result to $RAW.
run_one() {
    local lib=$1 key=$2; shift 2
    local out
    if [ "$lib" = sslsess ]; then
        out=$(LD_PRELOAD="$SSLSESS_LIB" run_bounded 300 "$BIN" "$@")
    else
        out=$(run_bounded 300 "$BIN" "$@")
    fi || { echo "bench: '$lib $*' failed" >&2; exit 1; }
    # The run must say which library served it: a preload that did not take
    # would compare libssl with itself.
    grep -qx "LIB $lib" <<<"$out" || { echo "bench: '$*' ran on the wrong library" >&2; exit 1; }
    awk -v key="$key" -v lib="$lib" '$1 == "RESULT" { print key, lib, $2, $3 }' <<<"$out" >>"$RAW"
}

# build_cachebench: builds $BIN, and checks that the library is built.
build_cachebench() {
    build_plain "$BIN" "$SSLSESS_ROOT/benches/cachebench.c"
    [ -f "$SSLSESS_LIB" ] || { echo "bench: $SSLSESS_LIB is missing (make lib)" >&2; exit 2; }
}
