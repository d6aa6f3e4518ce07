#!/usr/bin/env bash
# tests-c/programs.sh (`make programs`): unmodified programs over loopback,
# each case run twice: against plain libssl (the reference) and with
# libsslsess LD_PRELOADed into BOTH server and client (SSLSESS_LOG=debug).
# libsslsess must achieve every resumption plain libssl achieves, report the
# same server statistics, and, where the server caches sessions (TLS 1.2
# session ids, TLS 1.3 stateful tickets), the resumptions must be served by
# libsslsess's cache: its get-session callback returns the session (trace).
#
#   A. openssl s_server -www + openssl s_client -reconnect (and, for TLS 1.3,
#      a chain of s_client -sess_in/-sess_out runs: s_client -reconnect
#      never resumes TLS 1.3 in OpenSSL 3.0, openssl/openssl#10714)
#   B. Python ssl server and client (session=, session_reused)
#   C. curl fetching two URLs from openssl s_server -www
#   D. tests-c/programs/sni_server.c (servername callback switches SSL_CTX)
#      + openssl s_client -servername other
#
# Servers listen on 127.0.0.1 only, run under timeout, are stopped by PID.

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$SSLSESS_ROOT/tests-c/programs/common.sh"

WORK=$SSLSESS_BUILD/programs
rm -rf "$WORK"
mkdir -p "$WORK"
SPID=
MODES=(plain sslsess)
RECONNECTS=5

# One server runs at a time: SPID while it runs, cleared once it is stopped
# (stop_server) or has exited (wait_server), so cleanup never signals a PID
# that may have been reused.
cleanup() { [ -z "$SPID" ] || stop_pid "$SPID"; }
trap cleanup EXIT

# check DESCRIPTION TEST...: one counted check.
check() {
    local desc=$1; shift
    if "$@"; then pass "$desc"; else fail "$desc"; fi
}

# check_same_stats NAME: the server's cache statistics (STATS) are the same
# with libsslsess as with plain libssl; shows both when they are not.
check_same_stats() {
    check "$1: server cache statistics identical to plain libssl" \
        [ -n "${STATS[plain]}" -a "${STATS[plain]}" = "${STATS[sslsess]}" ]
    if [ "${STATS[plain]}" != "${STATS[sslsess]}" ]; then
        echo "          plain:   ${STATS[plain]}"
        echo "          sslsess: ${STATS[sslsess]}"
    fi
}
skip() { echo "  skipped: $*"; }
have() { command -v "$1" >/dev/null 2>&1; }

# start_server MODE TAG CMD...: starts CMD in the background (bounded by
# timeout), stdout/stderr in $WORK/TAG.srv.{out,err}; sets SPID.
start_server() {
    local mode=$1 tag=$2; shift 2
    lib_env "$mode"
    env "${LIBENV[@]}" timeout --kill-after=5 60 "$@" \
        >"$WORK/$tag.srv.out" 2>"$WORK/$tag.srv.err" </dev/null &
    SPID=$!
}

stop_server() { stop_pid "$SPID"; SPID=; }

# wait_server: waits for a server that exits by itself; sets SRV_RC.
wait_server() {
    SRV_RC=0
    wait "$SPID" || SRV_RC=$?
    SPID=
}

# start_s_server MODE TAG OPTS...: openssl s_server -www on a free port;
# sets SPORT and SPID; waits until it listens.
start_s_server() {
    local mode=$1 tag=$2; shift 2
    SPORT=$(free_port)
    start_server "$mode" "$tag" openssl s_server -accept "127.0.0.1:$SPORT" \
        -cert "$WORK/localhost.crt" -key "$WORK/localhost.key" -www "$@"
    wait_listen "$SPORT" || echo "  (server $tag did not start listening)"
}

# reconnect_client MODE TAG OPTS...: openssl s_client -reconnect (6
# handshakes, the last 5 offering the first one's session) -> TAG.cli.out.
reconnect_client() {
    local mode=$1 tag=$2; shift 2
    with_lib "$mode" timeout 30 openssl s_client -connect "127.0.0.1:$SPORT" \
        -reconnect "$@" </dev/null >"$WORK/$tag.cli.out" 2>"$WORK/$tag.cli.err" || true
    grep -E '^(New|Reused),' "$WORK/$tag.cli.out" >"$WORK/$tag.res" || true
}

# chain_client MODE TAG OPTS...: 1 + RECONNECTS separate s_client runs, each
# sending "GET /" and reading until the server closes (so TLS 1.3 tickets are
# read), each resuming the session the previous one saved (-sess_in/-sess_out).
# The first New/Reused line of each is the client's view; the last run's
# page holds the server statistics.
chain_client() {
    local mode=$1 tag=$2 i sess offer; shift 2
    sess=$WORK/$tag.sess.pem
    rm -f "$sess"
    : >"$WORK/$tag.res"
    for i in $(seq 0 "$RECONNECTS"); do
        offer=""
        [ -s "$sess" ] && offer=$sess
        one_client "$mode" "$tag" "$offer" "$sess" "$@"
    done
}

# one_client MODE TAG SESS_IN SESS_OUT OPTS...: one s_client fetching the
# status page, offering SESS_IN if non-empty, saving to SESS_OUT; appends its
# New/Reused line to TAG.res and keeps the page in TAG.page.
one_client() {
    local mode=$1 tag=$2 sin=$3 sout=$4; shift 4
    local in=()
    [ -n "$sin" ] && in=(-sess_in "$sin")
    printf 'GET / HTTP/1.0\r\n\r\n' | with_lib "$mode" timeout 15 openssl s_client \
        -connect "127.0.0.1:$SPORT" -ign_eof "${in[@]}" -sess_out "$sout" "$@" \
        >"$WORK/$tag.page" 2>"$WORK/$tag.page.err" || true
    grep -m1 -E '^(New|Reused),' "$WORK/$tag.page" >>"$WORK/$tag.res" || true
}

# fetch_page MODE TAG OPTS...: one more client fetching the -www status page.
fetch_page() {
    local mode=$1 tag=$2; shift 2
    printf 'GET / HTTP/1.0\r\n\r\n' | with_lib "$mode" timeout 15 openssl s_client \
        -connect "127.0.0.1:$SPORT" -ign_eof "$@" >"$WORK/$tag.page" 2>"$WORK/$tag.page.err" || true
}

# Results per mode, filled by the collectors below.
declare -A NEW REUSED HITS STATS LOADED

# collect MODE TAG: reads TAG's outputs (after the server stopped).
collect() {
    local mode=$1 tag=$2
    NEW[$mode]=$(count '^New,' "$WORK/$tag.res")
    REUSED[$mode]=$(count '^Reused,' "$WORK/$tag.res")
    HITS[$mode]=$(count "$TRACE_HIT" "$WORK/$tag.srv.err")
    LOADED[$mode]=$(count '^libsslsess: ' "$WORK/$tag.srv.err")
    STATS[$mode]=$(www_stats "$WORK/$tag.page")
}

report() {
    local m
    for m in "${MODES[@]}"; do
        printf '  %-7s new=%s reused=%s libsslsess-cache-hits=%s\n' \
            "$m" "${NEW[$m]}" "${REUSED[$m]}" "${HITS[$m]}"
    done
    echo "  stats   ${STATS[sslsess]}"
}

# Common checks of one s_server case. STATEFUL=1 when the server caches
# (the lookups must then be libsslsess cache hits); EXPECT = the number of
# reconnections that must resume under both libraries ("" = whatever plain
# libssl achieves).
s_server_checks() {
    local name=$1 stateful=$2 expect=$3
    report
    check "$name: plain libssl run is the reference (no libsslsess lines)" \
        [ "${LOADED[plain]}" = 0 ]
    check "$name: libsslsess loaded into the server (trace present)" \
        [ "${LOADED[sslsess]}" -gt 0 ]
    check "$name: all $((RECONNECTS + 1)) handshakes completed under both" \
        [ $((NEW[plain] + REUSED[plain])) = $((RECONNECTS + 1)) \
          -a $((NEW[sslsess] + REUSED[sslsess])) = $((RECONNECTS + 1)) ]
    if [ -n "$expect" ]; then
        check "$name: plain libssl resumed $expect of $RECONNECTS" [ "${REUSED[plain]}" = "$expect" ]
        check "$name: libsslsess resumed $expect of $RECONNECTS" [ "${REUSED[sslsess]}" = "$expect" ]
    else
        check "$name: libsslsess resumed as many as plain libssl (${REUSED[plain]} of $RECONNECTS)" \
            [ "${REUSED[sslsess]}" -ge "${REUSED[plain]}" ]
    fi
    if [ "$stateful" = 1 ] && [ -n "$expect" ]; then
        check "$name: each resumption served from libsslsess's cache (get-session callback hits = ${REUSED[sslsess]})" \
            [ "${HITS[sslsess]}" = "${REUSED[sslsess]}" ]
    fi
    check_same_stats "$name"
}

# s_server_case CLIENT NAME STATEFUL EXPECT "SERVER OPTS" "CLIENT OPTS": per
# mode, s_server -www with SERVER OPTS, then CLIENT MODE TAG CLIENT-OPTS...
# against it; then the common checks (the caller prints the banner).
s_server_case() {
    local client=$1 name=$2 stateful=$3 expect=$4 sopts=$5 copts=$6 m tag
    for m in "${MODES[@]}"; do
        tag="$(echo "$name" | tr -c 'a-zA-Z0-9\n' _)-$m"
        # shellcheck disable=SC2086
        start_s_server "$m" "$tag" $sopts
        # shellcheck disable=SC2086
        "$client" "$m" "$tag" $copts
        stop_server
        collect "$m" "$tag"
    done
    s_server_checks "$name" "$stateful" "$expect"
}

# reconnect_and_fetch MODE TAG OPTS...: s_client -reconnect, then one more
# client for the status page.
reconnect_and_fetch() {
    reconnect_client "$@"
    fetch_page "$@"
}

# case_reconnect NAME STATEFUL EXPECT "SERVER OPTS" "CLIENT OPTS"
case_reconnect() {
    local name=$1 sopts=$4 copts=$5
    banner "$name: s_server $sopts -www / s_client -reconnect $copts"
    s_server_case reconnect_and_fetch "$@"
}

# case_chain NAME STATEFUL EXPECT "SERVER OPTS" "CLIENT OPTS"
case_chain() {
    local name=$1 sopts=$4 copts=$5
    banner "$name: s_server $sopts -www / $((RECONNECTS + 1)) x s_client -sess_in/-sess_out $copts"
    s_server_case chain_client "$@"
}

# case_unknown NAME "SERVER OPTS" "CLIENT OPTS": the client offers a session
# the server never issued (saved from an earlier server process): the lookup
# misses, a full handshake follows, and the new session then resumes. The
# miss path (libsslsess's callback returns NULL) must leave the statistics
# as plain libssl's: 1 miss, 1 hit.
case_unknown() {
    local name=$1 sopts=$2 copts=$3 m tag
    local -A FIRST SECOND MISSES
    banner "$name: s_server $sopts -www, offered a session from another server process"
    for m in "${MODES[@]}"; do
        tag="$(echo "$name" | tr -c 'a-zA-Z0-9\n' _)-$m"
        # shellcheck disable=SC2086
        start_s_server "$m" "$tag-old" $sopts
        : >"$WORK/$tag-old.res"
        # shellcheck disable=SC2086
        one_client "$m" "$tag-old" "" "$WORK/$tag.old.pem" $copts
        stop_server
        # shellcheck disable=SC2086
        start_s_server "$m" "$tag" $sopts
        : >"$WORK/$tag.res"
        # shellcheck disable=SC2086
        one_client "$m" "$tag" "$WORK/$tag.old.pem" "$WORK/$tag.new.pem" $copts
        # shellcheck disable=SC2086
        one_client "$m" "$tag" "$WORK/$tag.new.pem" "$WORK/$tag.new2.pem" $copts
        stop_server
        collect "$m" "$tag"
        FIRST[$m]=$(sed -n '1s/,.*//p' "$WORK/$tag.res")
        SECOND[$m]=$(sed -n '2s/,.*//p' "$WORK/$tag.res")
        MISSES[$m]=$(count '^libsslsess: sslsess_get_session_cb\(.*\) = 0x0$' "$WORK/$tag.srv.err")
        printf '  %-7s unknown session: %s, then: %s; libsslsess-cache-hits=%s misses=%s\n' \
            "$m" "${FIRST[$m]}" "${SECOND[$m]}" "${HITS[$m]}" "${MISSES[$m]}"
    done
    echo "  stats   ${STATS[sslsess]}"
    check "$name: plain libssl: unknown session -> full handshake, then resumed" \
        [ "${FIRST[plain]}" = New -a "${SECOND[plain]}" = Reused ]
    check "$name: libsslsess: unknown session -> full handshake, then resumed" \
        [ "${FIRST[sslsess]}" = New -a "${SECOND[sslsess]}" = Reused ]
    check "$name: libsslsess's lookup missed once, then hit once" \
        [ "${MISSES[sslsess]}" = 1 -a "${HITS[sslsess]}" = 1 ]
    check_same_stats "$name"
}

# --- A. openssl s_server / s_client --------------------------------------
suite_openssl() {
    case_reconnect "tls1.2 session ids" 1 "$RECONNECTS" "-tls1_2 -no_ticket" "-tls1_2"
    case_reconnect "tls1.2 tickets" 0 "$RECONNECTS" "-tls1_2" "-tls1_2"
    # s_client -reconnect cannot resume TLS 1.3 in OpenSSL 3.0 (it reconnects
    # before the tickets arrive): only "same as plain libssl" is asserted.
    case_reconnect "tls1.3 stateful -reconnect" 1 "" "-tls1_3 -no_ticket" "-tls1_3"
    case_reconnect "tls1.3 tickets -reconnect" 0 "" "-tls1_3" "-tls1_3"
    # The same reconnections, each by a fresh s_client that reads its tickets.
    case_chain "tls1.3 stateful chain" 1 "$RECONNECTS" "-tls1_3 -no_ticket" "-tls1_3"
    case_chain "tls1.3 tickets chain" 0 "$RECONNECTS" "-tls1_3" "-tls1_3"
    case_chain "tls1.2 session ids chain" 1 "$RECONNECTS" "-tls1_2 -no_ticket" "-tls1_2"
    case_unknown "tls1.2 unknown session id" "-tls1_2 -no_ticket" "-tls1_2"
    case_unknown "tls1.3 unknown stateful ticket" "-tls1_3 -no_ticket" "-tls1_3"
}

# --- B. Python ssl --------------------------------------------------------
suite_python() {
    local tls tickets m tag port name
    local -A CREUSED SREUSED SSTATS PHITS CLOG SRC
    for tls in 1.2 1.3; do
        for tickets in stateful stateless; do
            name="python tls$tls $tickets"
            banner "$name: pyssl.py server (OP_NO_TICKET: $([ $tickets = stateful ] && echo yes || echo no)) / client session="
            for m in "${MODES[@]}"; do
                tag="python-$tls-$tickets-$m"
                port=$(free_port)
                start_server "$m" "$tag" python3 "$SSLSESS_ROOT/tests-c/programs/pyssl.py" server \
                    "$port" "$WORK/localhost.crt" "$WORK/localhost.key" "$tls" "$tickets" $((RECONNECTS + 1))
                wait_listen "$port" || echo "  (python server did not start listening)"
                with_lib "$m" timeout 30 python3 "$SSLSESS_ROOT/tests-c/programs/pyssl.py" client \
                    "$port" "$tls" "$RECONNECTS" >"$WORK/$tag.cli.out" 2>"$WORK/$tag.cli.err" || true
                wait_server
                SRC[$m]=$SRV_RC
                CREUSED[$m]=$(count 'session_reused=True offered=True' "$WORK/$tag.cli.out")
                SREUSED[$m]=$(count '^server: conn [0-9]+ session_reused=True' "$WORK/$tag.srv.out")
                SSTATS[$m]=$(grep '^server stats:' "$WORK/$tag.srv.out" || true)
                PHITS[$m]=$(count "$TRACE_HIT" "$WORK/$tag.srv.err")
                CLOG[$m]=$(( $(count '^libsslsess: ' "$WORK/$tag.cli.err") + $(count '^libsslsess: ' "$WORK/$tag.srv.err") ))
                printf '  %-7s client reused=%s server reused=%s libsslsess-cache-hits=%s trace-lines=%s\n' \
                    "$m" "${CREUSED[$m]}" "${SREUSED[$m]}" "${PHITS[$m]}" "${CLOG[$m]}"
            done
            echo "  ${SSTATS[sslsess]}"
            check "$name: servers exited cleanly" [ "${SRC[plain]}" = 0 -a "${SRC[sslsess]}" = 0 ]
            check "$name: preload reaches CPython's privately loaded libssl (client and server trace)" \
                [ "$(count '^libsslsess: ' "$WORK/python-$tls-$tickets-sslsess.cli.err")" -gt 0 \
                  -a "$(count '^libsslsess: ' "$WORK/python-$tls-$tickets-sslsess.srv.err")" -gt 0 \
                  -a "${CLOG[plain]}" = 0 ]
            check "$name: plain libssl: session_reused True for $RECONNECTS of $RECONNECTS" \
                [ "${CREUSED[plain]}" = "$RECONNECTS" -a "${SREUSED[plain]}" = "$RECONNECTS" ]
            check "$name: libsslsess: session_reused True for $RECONNECTS of $RECONNECTS (client and server)" \
                [ "${CREUSED[sslsess]}" = "$RECONNECTS" -a "${SREUSED[sslsess]}" = "$RECONNECTS" ]
            if [ "$tickets" = stateful ]; then
                check "$name: each resumption served from libsslsess's cache" \
                    [ "${PHITS[sslsess]}" = "$RECONNECTS" ]
            fi
            check "$name: SSLContext.session_stats() identical to plain libssl" \
                [ -n "${SSTATS[plain]}" -a "${SSTATS[plain]}" = "${SSTATS[sslsess]}" ]
            [ "${SSTATS[plain]}" = "${SSTATS[sslsess]}" ] || echo "          plain: ${SSTATS[plain]}"
        done
    done
}

# --- C. curl --------------------------------------------------------------
suite_curl() {
    local sopts name m tag
    local -A OFFER CONNS PAGEA PAGEB CHITS
    for sopts in "-tls1_2 -no_ticket" "-tls1_3 -no_ticket"; do
        name="curl $(echo "$sopts" | cut -d' ' -f1 | tr -d -)"
        banner "$name: s_server $sopts -www / curl -v URL/a URL/b"
        for m in "${MODES[@]}"; do
            tag="curl-$(echo "$sopts" | tr -c 'a-z0-9\n' _)-$m"
            # shellcheck disable=SC2086
            start_s_server "$m" "$tag" $sopts
            with_lib "$m" timeout 30 curl -sk -v "https://127.0.0.1:$SPORT/a" "https://127.0.0.1:$SPORT/b" \
                -o "$WORK/$tag.a.html" -o "$WORK/$tag.b.html" 2>"$WORK/$tag.cli.err" || true
            stop_server
            # curl 7.88 says "SSL re-using session ID" when it offers the
            # cached session; the -www page of /b says whether the server
            # resumed it ("Reused,") or not ("New,").
            OFFER[$m]=$(count '^\* SSL re-using session ID' "$WORK/$tag.cli.err")
            CONNS[$m]=$(count '^\* Connected to 127\.0\.0\.1' "$WORK/$tag.cli.err")
            PAGEA[$m]=$(grep -m1 -oE '^(New|Reused),' "$WORK/$tag.a.html" || true)
            PAGEB[$m]=$(grep -m1 -oE '^(New|Reused),' "$WORK/$tag.b.html" || true)
            CHITS[$m]=$(count "$TRACE_HIT" "$WORK/$tag.srv.err")
            printf '  %-7s connections=%s offered=%s /a:%s /b:%s libsslsess-cache-hits=%s\n' "$m" \
                "${CONNS[$m]}" "${OFFER[$m]}" "${PAGEA[$m]}" "${PAGEB[$m]}" "${CHITS[$m]}"
        done
        for m in "${MODES[@]}"; do
            check "$name ($m): two connections, the second offering the session" \
                [ "${CONNS[$m]}" = 2 -a "${OFFER[$m]}" = 1 ]
            check "$name ($m): /a new session, /b resumed by the server" \
                [ "${PAGEA[$m]}" = "New," -a "${PAGEB[$m]}" = "Reused," ]
        done
        check "$name: the resumption was served from libsslsess's cache" [ "${CHITS[sslsess]}" = 1 ]
    done
}

# --- D. SNI server switching SSL_CTX ----------------------------------------
suite_sni() {
    local bin=$WORK/sni_server tls m tag port name ctxdef
    local -A OUT CREUSED SHITS SRC ADDCTX
    build_plain "$bin" "$SSLSESS_ROOT/tests-c/programs/sni_server.c"
    for tls in 1.2 1.3; do
        name="sni tls$tls"
        banner "$name: sni_server (servername 'other' -> SSL_set_SSL_CTX) / s_client -servername other"
        for m in "${MODES[@]}"; do
            tag="sni-$tls-$m"
            port=$(free_port)
            start_server "$m" "$tag" "$bin" "$port" "$WORK/localhost.crt" "$WORK/localhost.key" \
                "$WORK/other.crt" "$WORK/other.key" $((RECONNECTS + 1)) "$tls"
            wait_listen "$port" || echo "  (sni_server did not start listening)"
            SPORT=$port
            if [ "$tls" = 1.2 ]; then
                reconnect_client "$m" "$tag" -tls1_2 -servername other
            else
                # -reconnect cannot resume TLS 1.3 in OpenSSL 3.0: chain.
                chain_client "$m" "$tag" -tls1_3 -servername other
            fi
            wait_server
            SRC[$m]=$SRV_RC
            OUT[$m]=$(cat "$WORK/$tag.srv.out")
            CREUSED[$m]=$(count '^Reused,' "$WORK/$tag.res")
            SHITS[$m]=$(count "$TRACE_HIT" "$WORK/$tag.srv.err")
            # Contexts the trace shows sessions being added to.
            ctxdef=$(sed -n 's/^sni_server: contexts default=\(0x[0-9a-f]*\) .*/\1/p' "$WORK/$tag.srv.err")
            ADDCTX[$m]=$(sed -n 's/^libsslsess: SSL_CTX_add_session(ctx=\(0x[0-9a-f]*\),.*/\1/p' \
                "$WORK/$tag.srv.err" | sort -u | sed "s/^$ctxdef\$/default/" | paste -sd, -)
            printf '  %-7s client reused=%s libsslsess-cache-hits=%s sessions added to ctx: %s\n' \
                "$m" "${CREUSED[$m]}" "${SHITS[$m]}" "${ADDCTX[$m]:-none}"
        done
        sed 's/^/  server: /' <<<"${OUT[sslsess]}"
        check "$name: server exited cleanly under both" [ "${SRC[plain]}" = 0 -a "${SRC[sslsess]}" = 0 ]
        check "$name: every connection switched to ctx other" \
            [ "$(grep -c 'ctx=other' <<<"${OUT[sslsess]}")" = $((RECONNECTS + 1)) ]
        check "$name: plain libssl resumed $RECONNECTS of $RECONNECTS" [ "${CREUSED[plain]}" = "$RECONNECTS" ]
        check "$name: libsslsess resumed $RECONNECTS of $RECONNECTS" [ "${CREUSED[sslsess]}" = "$RECONNECTS" ]
        check "$name: served from libsslsess's cache of the session context (hits=$RECONNECTS, adds only to ctx default)" \
            [ "${SHITS[sslsess]}" = "$RECONNECTS" -a "${ADDCTX[sslsess]}" = default ]
        check "$name: each lookup came after the switch to ctx other (so it had to use the session context)" \
            awk '/^sni_server: servername callback/ { sw = 1 }
                 /^libsslsess: sslsess_get_session_cb/ { n++; if (!sw) bad = 1; sw = 0 }
                 END { exit !(n > 0 && !bad) }' "$WORK/sni-$tls-sslsess.srv.err"
        check "$name: server output and both contexts' statistics identical to plain libssl" \
            [ -n "${OUT[plain]}" -a "${OUT[plain]}" = "${OUT[sslsess]}" ]
        if [ "${OUT[plain]}" != "${OUT[sslsess]}" ]; then
            diff <(echo "${OUT[plain]}") <(echo "${OUT[sslsess]}") | sed 's/^/          /' || true
        fi
    done
}

banner "programs: unmodified programs, plain libssl vs LD_PRELOAD=$SSLSESS_LIB"
if [ ! -e "$SSLSESS_LIB" ]; then
    echo "libsslsess not built ($SSLSESS_LIB): run make lib" >&2
    exit 1
fi
if have openssl; then
    make_certs "$WORK" || { echo "cannot create test certificates" >&2; exit 1; }
    suite_openssl
    if have python3; then suite_python; else skip "python3 not installed"; fi
    if have curl; then suite_curl; else skip "curl not installed"; fi
    if have "$CC"; then suite_sni; else skip "no C compiler ($CC)"; fi
else
    skip "openssl not installed (every case needs its s_server, s_client or req)"
fi

echo
suite_summary programs-suite
