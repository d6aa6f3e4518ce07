#!/usr/bin/env bash
# tests-c/demo.sh (`make demo`): libsslsess preloaded into the unmodified
# `openssl s_server` and `openssl s_client`, over loopback. Shows the calls
# routed through libsslsess (condensed SSLSESS_LOG=debug trace), how many
# reconnections resumed, and the server's cache statistics. Two rounds:
#   1. TLS 1.2 with session ids (s_server -no_ticket), s_client -reconnect;
#   2. TLS 1.3 with stateful tickets (s_server -no_ticket): s_client
#      -reconnect does not resume TLS 1.3 in OpenSSL 3.0 (it reconnects before
#      the tickets arrive, openssl/openssl#10714), so six s_client runs each
#      resume the session the previous one saved (-sess_in/-sess_out).
# Builds nothing (make lib did), stops by itself, kills only what it started
# (by PID), takes a few seconds. Exits non-zero unless every reconnection of
# both rounds resumed from libsslsess's cache.

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$SSLSESS_ROOT/tests-c/programs/common.sh"

WORK=$SSLSESS_BUILD/demo
RECONNECTS=5
SUMMARY=$SSLSESS_ROOT/tests-c/programs/trace_summary.awk
rm -rf "$WORK"
mkdir -p "$WORK"
SPID=
cleanup() { [ -z "$SPID" ] || stop_pid "$SPID"; }
trap cleanup EXIT

if [ ! -e "$SSLSESS_LIB" ]; then
    echo "demo: $SSLSESS_LIB is missing: run make lib" >&2
    exit 1
fi
for tool in openssl python3; do
    command -v "$tool" >/dev/null || { echo "demo: $tool is required" >&2; exit 1; }
done
make_certs "$WORK" || { echo "demo: cannot create a test certificate" >&2; exit 1; }

version=$(python3 -c 'import ctypes, sys
lib = ctypes.CDLL(sys.argv[1]); lib.sslsess_version.restype = ctypes.c_char_p
print(lib.sslsess_version().decode())' "$SSLSESS_LIB" 2>/dev/null || echo "?")
short_lib=${SSLSESS_LIB#"$SSLSESS_ROOT"/}
PRE=(env LD_PRELOAD="$SSLSESS_LIB" SSLSESS_LOG=debug)

echo "libsslsess $version demo: $(openssl version)"
echo "Server and client are the unmodified openssl binary, both run with"
echo "LD_PRELOAD=$short_lib SSLSESS_LOG=debug; loopback only."

# start_server ROUND OPTS...: s_server -www (a status page with its cache
# statistics for any GET) on a free loopback port.
start_server() {
    local round=$1; shift
    SPORT=$(free_port)
    echo "  \$ openssl s_server -accept 127.0.0.1:$SPORT -www $* &"
    "${PRE[@]}" timeout --kill-after=5 60 openssl s_server -accept "127.0.0.1:$SPORT" \
        -cert "$WORK/localhost.crt" -key "$WORK/localhost.key" -www "$@" \
        >"$WORK/$round.server.out" 2>"$WORK/$round.server.err" </dev/null &
    SPID=$!
    wait_listen "$SPORT" || { echo "demo: s_server did not start" >&2; exit 1; }
}

# get_page ROUND IN OUT OPTS...: one s_client asking for the status page,
# resuming IN if given, saving its session to OUT.
get_page() {
    local round=$1 in=$2 out=$3 n; shift 3
    local sess=()
    [ -z "$in" ] || sess+=(-sess_in "$in")
    n=$(find "$WORK" -name "$round.client*.err" | wc -l)
    printf 'GET / HTTP/1.0\r\n\r\n' | "${PRE[@]}" timeout 15 openssl s_client \
        -connect "127.0.0.1:$SPORT" -ign_eof "${sess[@]}" -sess_out "$out" "$@" \
        >"$WORK/$round.page" 2>"$WORK/$round.client$n.err" || true
}

# stats ROUND: the statistics s_server printed on its status page. s_server
# reads them with SSL_CTX_sess_number() etc., i.e. SSL_CTX_ctrl, which
# libsslsess answers.
stats() {
    local page=$WORK/$1.page
    stat_of() { sed -n "s/^ *\([0-9]*\) $1.*/\1/p" "$page" | sed -n 1p; }
    printf '    sessions in the cache: %s   hits: %s   misses: %s   timeouts: %s\n' \
        "$(stat_of 'items in the session cache')" "$(stat_of 'session cache hits')" \
        "$(stat_of 'session cache misses')" "$(stat_of 'session cache timeouts')"
    printf '    accepts: %s (%s finished)   callback hits: %s   cache-full evictions: %s\n' \
        "$(stat_of 'server accepts (SSL_accept())')" "$(stat_of 'server accepts that finished')" \
        "$(stat_of 'callback cache hits')" "$(stat_of 'cache full overflows')"
}

# show ROUND RESUMED: prints the round's results; returns 1 if not every
# reconnection resumed from libsslsess's cache.
show() {
    local round=$1 resumed=$2 hits
    hits=$(count "$TRACE_HIT" "$WORK/$round.server.err")
    echo
    echo "  client: 1 full handshake, then $resumed of $RECONNECTS reconnections resumed"
    echo "  server trace, first cache calls (SSLSESS_LOG=debug):"
    grep -E '^libsslsess: (SSL_CTX_add_session|sslsess_get_session_cb|SSL_CTX_remove_session)' \
        "$WORK/$round.server.err" | sed -n '1,6s/^/    /p'
    echo "  server calls routed through libsslsess (whole trace, condensed):"
    awk -f "$SUMMARY" "$WORK/$round.server.err"
    echo "  client calls routed through libsslsess (all client runs, condensed):"
    awk -f "$SUMMARY" "$WORK/$round".client*.err
    echo "  server cache statistics (s_server's status page, answered by libsslsess):"
    stats "$round"
    echo "  full traces: ${WORK#"$SSLSESS_ROOT"/}/$round.{server,client*}.err"
    if [ "$resumed" = "$RECONNECTS" ] && [ "$hits" -ge "$RECONNECTS" ]; then
        echo "  => $resumed of $RECONNECTS reconnections resumed, served from libsslsess's cache ($hits lookups answered)"
        return 0
    fi
    echo "  => FAILED: $resumed of $RECONNECTS reconnections resumed, $hits lookups answered by libsslsess's cache"
    return 1
}

ok=0

# --- Round 1: TLS 1.2, session ids -----------------------------------------
banner "Round 1: TLS 1.2 with session ids"
start_server tls12 -tls1_2 -no_ticket
echo "  \$ openssl s_client -connect 127.0.0.1:$SPORT -tls1_2 -reconnect -sess_out s.pem"
"${PRE[@]}" timeout 30 openssl s_client -connect "127.0.0.1:$SPORT" -tls1_2 -reconnect \
    -sess_out "$WORK/tls12.sess.pem" </dev/null >"$WORK/tls12.client.out" 2>"$WORK/tls12.client0.err" || true
resumed=$(count '^Reused,' "$WORK/tls12.client.out")
echo "  \$ openssl s_client -connect 127.0.0.1:$SPORT -tls1_2 -sess_in s.pem   # GET / (resumes too): the statistics"
get_page tls12 "$WORK/tls12.sess.pem" "$WORK/tls12.sess2.pem" -tls1_2
stop_pid "$SPID"; SPID=
show tls12 "$resumed" || ok=1

# --- Round 2: TLS 1.3, stateful tickets ------------------------------------
banner "Round 2: TLS 1.3 with stateful tickets (server -no_ticket: the ticket is a session id in the server's cache)"
start_server tls13 -tls1_3 -no_ticket
echo "  \$ 6 x openssl s_client -connect 127.0.0.1:$SPORT -tls1_3 [-sess_in s.pem] -sess_out s.pem   # GET /"
resumed=0
for i in $(seq 0 "$RECONNECTS"); do
    in=
    [ "$i" = 0 ] || in=$WORK/tls13.sess.pem
    get_page tls13 "$in" "$WORK/tls13.sess.pem" -tls1_3
    if [ "$i" -gt 0 ] && grep -m1 -E '^(New|Reused),' "$WORK/tls13.page" | grep '^Reused,' >/dev/null; then
        resumed=$((resumed + 1))
    fi
done
stop_pid "$SPID"; SPID=
show tls13 "$resumed" || ok=1

echo
if [ "$ok" = 0 ]; then
    echo "demo: every reconnection resumed, served from libsslsess's cache"
else
    echo "demo: FAILED (see above)"
fi
exit "$ok"
