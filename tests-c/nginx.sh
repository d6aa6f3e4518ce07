#!/usr/bin/env bash
# nginx, unmodified, with libsslsess preloaded (issue 3: binaries users
# cannot rebuild). nginx forks its workers after reading its configuration
# and clears their environment; libsslsess reads SSLSESS_LOG at load time in
# the master, and the workers inherit it with the caches.
#   - ssl_session_cache builtin: nginx sizes libssl's cache, which is now
#     libsslsess's: resumptions must be served from it;
#   - ssl_session_cache shared: nginx's own callbacks (new/get/remove, with
#     SSL_SESS_CACHE_NO_INTERNAL_STORE): libsslsess must chain its get
#     callback to nginx's so that those resumptions keep working.
# Each case runs against plain libssl and with libsslsess, over loopback,
# bounded in time, nginx stopped by its PID. 5 of 5 s_client reconnections
# must resume in every run.
source "$(dirname "$0")/lib.sh"


NGINX=$(command -v nginx || echo /usr/sbin/nginx)
if [ ! -x "$NGINX" ]; then
    echo "nginx: not installed (make setup installs it as root)"
    echo "nginx-suite: 0 passed, 1 failed"
    exit 1
fi

dir=$SSLSESS_BUILD/nginx
rm -rf "$dir"
mkdir -p "$dir"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj /CN=localhost -keyout "$dir/key.pem" -out "$dir/cert.pem" 2>/dev/null

# run_case LIB CACHE: starts nginx (LIB plain|sslsess, CACHE builtin|shared),
# runs s_client -reconnect, prints the number of resumed reconnections.
run_case() {
    local lib=$1 cache=$2 port run=$dir/$1-$2
    mkdir -p "$run/tmp"
    port=$(free_port)
    local cache_line="ssl_session_cache builtin:1000;"
    [ "$cache" = shared ] && cache_line="ssl_session_cache shared:SSL:1m;"
    cat >"$run/nginx.conf" <<CONF
daemon off;
master_process on;
worker_processes 1;
user $(id -un);
pid $run/nginx.pid;
error_log $run/error.log info;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path $run/tmp/body;
    proxy_temp_path $run/tmp/proxy;
    fastcgi_temp_path $run/tmp/fastcgi;
    uwsgi_temp_path $run/tmp/uwsgi;
    scgi_temp_path $run/tmp/scgi;
    server {
        listen 127.0.0.1:$port ssl;
        ssl_certificate $dir/cert.pem;
        ssl_certificate_key $dir/key.pem;
        ssl_protocols TLSv1.2;
        ssl_session_tickets off;
        $cache_line
        location / { return 200 "ok\n"; }
    }
}
CONF
    local env=(-u LD_PRELOAD -u SSLSESS_LOG)
    [ "$lib" = sslsess ] && env=(LD_PRELOAD="$SSLSESS_LIB" SSLSESS_LOG=debug)
    env "${env[@]}" timeout --kill-after=5 60 "$NGINX" -p "$run" -c "$run/nginx.conf" -e "$run/error.log" \
        >"$run/stdout" 2>"$run/stderr" &
    local master=$!
    if ! wait_listen "$port" 100; then
        stop_pid "$master"
        echo "(nginx did not start: $(tail -2 "$run/error.log" 2>/dev/null))" >&2
        echo 0
        return
    fi
    run_bounded 30 openssl s_client -connect "127.0.0.1:$port" -reconnect -tls1_2 \
        </dev/null >"$run/client.out" 2>"$run/client.err" || true
    # Stop the master by PID (it stops its worker); the pid file names the
    # real master in case run_bounded's timeout is the background job.
    [ -s "$run/nginx.pid" ] && stop_pid "$(cat "$run/nginx.pid")"
    stop_pid "$master"
    grep -c '^Reused,' "$run/client.out" || true
}

# Trace lines (from the master's stderr or, once nginx redirects it, the
# error log) of lookups libsslsess's get callback answered (from its cache,
# or from the application's callback it chains to).
served_by_sslsess() {
    cat "$dir/sslsess-$1/stderr" "$dir/sslsess-$1/error.log" 2>/dev/null \
        | grep -cE 'sslsess_get_session_cb\(.*\) = 0x0*[1-9a-f]' || true
}

for cache in builtin shared; do
    banner "nginx, ssl_session_cache $cache, TLS 1.2, s_client -reconnect"
    plain=$(run_case plain "$cache")
    ours=$(run_case sslsess "$cache")
    [ "$plain" = 5 ] && pass "$cache cache, plain libssl: $plain of 5 resumed" \
                     || fail "$cache cache, plain libssl: $plain of 5 resumed"
    [ "$ours" = 5 ] && pass "$cache cache, libsslsess preloaded: $ours of 5 resumed" \
                    || fail "$cache cache, libsslsess preloaded: $ours of 5 resumed"
    hits=$(served_by_sslsess "$cache")
    if [ "$cache" = builtin ]; then
        [ "$hits" -ge 5 ] && pass "builtin cache: $hits lookups answered from libsslsess's cache" \
                          || fail "builtin cache: $hits lookups answered from libsslsess's cache (want 5)"
    else
        # nginx's shared cache sets SSL_SESS_CACHE_NO_INTERNAL_STORE: libssl
        # stores nothing in libsslsess's cache, so every session libsslsess's
        # get callback hands back comes from nginx's callback, chained.
        adds=$(cat "$dir/sslsess-$cache/stderr" "$dir/sslsess-$cache/error.log" 2>/dev/null \
            | grep -cE 'SSL_CTX_add_session\(.*\) = 1' || true)
        [ "$hits" -ge 5 ] && [ "$adds" -eq 0 ] \
            && pass "shared cache: $hits lookups through libsslsess answered by nginx's chained callback ($adds sessions stored in libsslsess's cache)" \
            || fail "shared cache: $hits lookups answered, $adds sessions stored in libsslsess's cache (want >= 5 and 0)"
    fi
    grep -q 'libsslsess:' "$dir/sslsess-$cache/stderr" "$dir/sslsess-$cache/error.log" 2>/dev/null \
        && pass "$cache cache: the preloaded library traced nginx's calls (SSLSESS_LOG read before the fork)" \
        || fail "$cache cache: no libsslsess trace from nginx"
done

echo
suite_summary nginx-suite
