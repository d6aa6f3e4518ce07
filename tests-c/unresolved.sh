#!/usr/bin/env bash
# tests-c/unresolved.sh (`make unresolved`): libsslsess against a libssl
# that lacks one of the OPENSSL_3.0.0 functions it forwards to. The shim
# tests-c/hide_dlvsym.c hides the function from libsslsess's lookups;
# tests-c/unresolved.c then checks what the calls do (0 or NULL, and one
# error on OpenSSL's queue naming the function, where they need it; the
# others keep working). Each case runs linked and preloaded, and linked
# under valgrind; libsslsess must say on stderr, once, which function is
# missing.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

dir=$SSLSESS_BUILD/unresolved
mkdir -p "$dir"
"$CC" "${TEST_CFLAGS[@]}" -fPIC -shared -o "$dir/hide_dlvsym.so" \
    "$SSLSESS_ROOT/tests-c/hide_dlvsym.c" -ldl
build_linked "$dir/unresolved-linked" "$SSLSESS_ROOT/tests-c/unresolved.c"
build_plain "$dir/unresolved-plain" "$SSLSESS_ROOT/tests-c/unresolved.c"

# run_case NAME HIDDEN ARG PRELOAD BIN [WRAPPER...]
run_case() {
    local name=$1 hidden=$2 arg=$3 preload=$4 bin=$5; shift 5
    local out=$dir/$name.out err=$dir/$name.err said
    if SSLSESS_TEST_HIDE=$hidden LD_PRELOAD=$preload run_bounded 120 "$@" "$bin" "$arg" \
        >"$out" 2>"$err"; then
        pass "$name: $(tail -n 1 "$out")"
    else
        fail "$name: exit status $? (see $out, $err)"
        sed -n '/^FAILED/p' "$out"
        return
    fi
    said=$(grep -c "cannot find libssl's $hidden@OPENSSL_3.0.0" "$err" || true)
    if [ "$said" = 1 ]; then
        pass "$name: libsslsess says once on stderr that $hidden is missing"
    else
        fail "$name: stderr names $hidden $said times, not once (see $err)"
    fi
}

shim=$dir/hide_dlvsym.so
for hidden_arg in SSL_CTX_remove_session:remove SSL_CTX_new:new; do
    hidden=${hidden_arg%%:*} arg=${hidden_arg##*:}
    run_case "$arg-linked" "$hidden" "$arg" "$shim" "$dir/unresolved-linked"
    run_case "$arg-preloaded" "$hidden" "$arg" "$shim $SSLSESS_LIB" "$dir/unresolved-plain"
done
if have_valgrind; then
    run_case "remove-linked-valgrind" SSL_CTX_remove_session remove "$shim" \
        "$dir/unresolved-linked" "${VALGRIND[@]}"
    run_case "new-linked-valgrind" SSL_CTX_new new "$shim" "$dir/unresolved-linked" "${VALGRIND[@]}"
fi

suite_summary unresolved-suite
