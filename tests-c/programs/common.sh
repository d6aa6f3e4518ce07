# tests-c/programs/common.sh: shared by tests-c/programs.sh and
# tests-c/demo.sh (sourced after tests-c/lib.sh, not run).

# lib_env MODE: sets the array LIBENV to the `env` arguments that run a
# program against plain libssl (MODE=plain) or with libsslsess preloaded and
# tracing (MODE=sslsess). Use as: env "${LIBENV[@]}" CMD... (so that $! of a
# background job is the program's own PID, ready for stop_pid).
lib_env() {
    if [ "$1" = sslsess ]; then
        LIBENV=(LD_PRELOAD="$SSLSESS_LIB" SSLSESS_LOG=debug)
    else
        LIBENV=(-u LD_PRELOAD -u SSLSESS_LOG)
    fi
}

# with_lib MODE CMD...: runs CMD (in the foreground) as lib_env MODE says.
with_lib() {
    lib_env "$1"; shift
    env "${LIBENV[@]}" "$@"
}

# count REGEX FILE: number of lines of FILE matching REGEX (0 if none/absent).
count() { grep -cE -- "$1" "$2" 2>/dev/null || true; }

# The trace line of a server-side lookup that libsslsess's cache answered
# (a non-NULL session returned by its get-session callback).
TRACE_HIT='^libsslsess: sslsess_get_session_cb\(.*\) = 0x0*[1-9a-f][0-9a-f]*$'

# www_stats FILE: the cache statistics block of an `openssl s_server -www`
# status page, one line, spaces squeezed.
www_stats() {
    sed -n '/items in the session cache/,/cache full overflows/p' "$1" \
        | sed 's/^ *//' | paste -sd';' -
}

# make_certs DIR: a self-signed EC key/cert for CN=localhost and one for
# CN=other (the second virtual host of sni_server).
make_certs() {
    local dir=$1 cn
    for cn in localhost other; do
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
            -subj "/CN=$cn" -days 2 -keyout "$dir/$cn.key" -out "$dir/$cn.crt" \
            >/dev/null 2>&1 || return 1
    done
}
