#!/usr/bin/env bash
# libssl built with -Bsymbolic binds its own SSL_CTX_add_session & co.
# internally, so they never reach a preloaded library (issue 3, item 6).
# This relinks the system's libssl.a (libssl-dev ships it) into such a
# libssl.so.3, with the same OPENSSL_3.0.0 symbol versions, and checks that
# libsslsess detects it, says so, that unmodified programs still resume, and
# that an application's removes and flushes reach libssl's own cache
# (tests-c/symbolic.c).
source "$(dirname "$0")/lib.sh"


dir=$SSLSESS_BUILD/symbolic
mkdir -p "$dir"
multiarch=$("$CC" -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
archive=/usr/lib/$multiarch/libssl.a
system_so=$(ldconfig -p | awk '/libssl\.so\.3 / && !found {print $NF; found = 1}')
if [ ! -f "$archive" ] || [ -z "$system_so" ]; then
    echo "symbolic: cannot build a -Bsymbolic libssl here (no $archive or libssl.so.3)"
    echo "symbolic-suite: 0 passed, 1 failed"
    exit 1
fi

# The exported names of the system libssl, as one OPENSSL_3.0.0 version node.
{
    echo "OPENSSL_3.0.0 { global:"
    nm -D --defined-only "$system_so" | awk '$3 ~ /@@OPENSSL_3\.0\.0$/ {sub(/@@.*/, "", $3); print "  " $3 ";"}' | sort -u
    echo "local: *; };"
} > "$dir/libssl.map"
# libcrypto.so first; the archive only supplies the internal helpers
# (WPACKET_*) that a shared libssl bundles.
"$CC" -shared -o "$dir/libssl.so.3" -Wl,-soname,libssl.so.3 -Wl,-Bsymbolic \
    -Wl,--version-script="$dir/libssl.map" \
    -Wl,--whole-archive "$archive" -Wl,--no-whole-archive \
    -lcrypto "/usr/lib/$multiarch/libcrypto.a"

if readelf -rW "$dir/libssl.so.3" | grep 'SSL_CTX_add_session' >/dev/null; then
    fail "the relinked libssl still calls SSL_CTX_add_session through a relocation"
else
    pass "relinked libssl binds SSL_CTX_add_session internally (-Bsymbolic)"
fi

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj /CN=localhost -keyout "$dir/key.pem" -out "$dir/cert.pem" 2>/dev/null

# start_server LIBPATH SERVER-FLAGS...: s_server -www on a free port, with
# libssl from LIBPATH and libsslsess preloaded.
start_server() {
    local libpath=$1; shift
    PORT=$(free_port)
    LD_LIBRARY_PATH=$libpath LD_PRELOAD=$SSLSESS_LIB \
        run_bounded 120 openssl s_server -accept "127.0.0.1:$PORT" -cert "$dir/cert.pem" \
        -key "$dir/key.pem" -www "$@" </dev/null >"$dir/server.out" 2>"$dir/server.err" &
    SERVER=$!
    wait_listen "$PORT"
}

# resumed LIBPATH "SERVER-FLAGS" CLIENT-FLAGS...: how many of 5 reconnections
# resume. Six s_client runs each fetch a page (so TLS 1.3 tickets are read:
# s_client -reconnect would reconnect before they arrive) and offer the
# session the previous run saved.
resumed() {
    local libpath=$1 server_flags=$2; shift 2
    local sess=$dir/client.sess n=0 i
    rm -f "$sess"
    # shellcheck disable=SC2086
    start_server "$libpath" $server_flags || { stop_pid "$SERVER"; echo 0; return; }
    for i in 0 1 2 3 4 5; do
        local in=()
        [ -s "$sess" ] && in=(-sess_in "$sess")
        printf 'GET / HTTP/1.0\r\n\r\n' | LD_LIBRARY_PATH=$libpath LD_PRELOAD=$SSLSESS_LIB \
            run_bounded 15 openssl s_client -connect "127.0.0.1:$PORT" -ign_eof "${in[@]}" \
            -sess_out "$sess" "$@" >"$dir/client$i.out" 2>"$dir/client$i.err" || true
        if [ "$i" -gt 0 ] && grep -q -m1 '^Reused,' "$dir/client$i.out"; then
            n=$((n + 1))
        fi
    done
    stop_pid "$SERVER"
    echo "$n"
}

n=$(resumed "$dir" "-tls1_2 -no_ticket" -tls1_2)
[ "$n" = 5 ] && pass "TLS 1.2 session ids, -Bsymbolic libssl, preloaded: $n of 5 reconnections resumed" \
             || fail "TLS 1.2 session ids, -Bsymbolic libssl, preloaded: $n of 5 reconnections resumed"
grep -q 'binds SSL_CTX_add_session and friends internally' "$dir/server.err" \
    && pass "libsslsess announces the -Bsymbolic libssl on stderr" \
    || fail "no -Bsymbolic warning on the server's stderr"

n=$(resumed "$dir" "-tls1_3 -no_ticket" -tls1_3)
[ "$n" = 5 ] && pass "TLS 1.3 stateful tickets, -Bsymbolic libssl, preloaded: $n of 5 resumed" \
             || fail "TLS 1.3 stateful tickets, -Bsymbolic libssl, preloaded: $n of 5 resumed"

# The regular libssl is not mistaken for a -Bsymbolic one.
n=$(resumed "" "-tls1_2 -no_ticket" -tls1_2)
if grep -q 'internally' "$dir/server.err"; then
    fail "the system libssl was reported as -Bsymbolic"
elif [ "$n" != 5 ]; then
    fail "system libssl, preloaded: $n of 5 resumed"
else
    pass "the system libssl is not reported as -Bsymbolic ($n of 5 resumed)"
fi

# The handshakes' sessions stay in this libssl's own cache: an application's
# SSL_CTX_remove_session and SSL_CTX_flush_sessions reach libsslsess, which
# must forward them there. tests-c/symbolic.c (memory BIOs, no sockets) runs
# on the relinked libssl with libsslsess preloaded, and without it as the
# reference: the same CHECKs hold in both.
# forward LOG WHO PRELOAD NAME: one run, output in $dir/LOG.out; WHO is
# what its summary must name.
forward() {
    local log=$dir/$1 who=$2 preload=$3 name=$4 rc=0
    LD_LIBRARY_PATH=$dir LD_PRELOAD=$preload run_bounded 60 "$dir/forward" >"$log.out" 2>"$log.err" || rc=$?
    grep -E '^FAILED' "$log.out" | sed 's/^/    /' || true
    if [ "$rc" -eq 0 ] && grep -q "^# symbolic against $who" "$log.out" \
        && grep -Eq '^symbolic: [0-9]+ passed, 0 failed$' "$log.out"; then
        pass "$name: $(grep -E '^symbolic: ' "$log.out")"
    else
        fail "$name: exit $rc, $(grep -E '^symbolic: ' "$log.out" || echo 'no summary line') (log: $log.out)"
    fi
}
if build_plain "$dir/forward" "$SSLSESS_ROOT/tests-c/symbolic.c" >"$dir/forward-build.log" 2>&1; then
    forward forward-preload libsslsess "$SSLSESS_LIB" \
        "removes and flushes reach the -Bsymbolic libssl's own cache, preloaded"
    forward forward-reference "plain libssl" "" \
        "removes and flushes, -Bsymbolic libssl without libsslsess (reference)"
else
    fail "building tests-c/symbolic.c"
    tail_of "$dir/forward-build.log"
fi

# libsslsess learns libssl's not-resumable flag on probe sessions, which an
# application's SSL_SESSION ex_data callbacks see made (conformance.sh
# counts them), but not under a -Bsymbolic libssl, where it marks sessions
# through the context's own remove (README, compatibility table).
if build_plain "$dir/conformance" "$SSLSESS_ROOT/tests-c/conformance.c" >"$dir/conformance-build.log" 2>&1; then
    bounded_case "$dir/probes" "probes, -Bsymbolic libssl, preloaded" \
        "no probe sessions made or freed besides the program's" 'made=0 freed=0$' \
        env LD_LIBRARY_PATH="$dir" LD_PRELOAD="$SSLSESS_LIB" "$dir/conformance" --count-probes
    # No probes is also what plain libssl gives: the run must show that
    # libsslsess was there and saw the -Bsymbolic libssl.
    grep -q 'binds SSL_CTX_add_session and friends internally' "$dir/probes.err" \
        && pass "probes, -Bsymbolic libssl, preloaded: libsslsess announced the -Bsymbolic libssl" \
        || fail "probes, -Bsymbolic libssl, preloaded: no -Bsymbolic warning on stderr (libsslsess not loaded?)"
else
    fail "building tests-c/conformance.c"
    tail_of "$dir/conformance-build.log"
fi

suite_summary symbolic-suite
