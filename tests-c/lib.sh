# tests-c/lib.sh: shared by the test scripts (sourced, not run).
# The Makefile exports SSLSESS_ROOT, SSLSESS_LIBDIR, SSLSESS_LIB, SSLSESS_BUILD.

set -euo pipefail
: "${SSLSESS_ROOT:=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
: "${SSLSESS_LIBDIR:=$SSLSESS_ROOT/target/release}"
: "${SSLSESS_LIB:=$SSLSESS_LIBDIR/libsslsess.so}"
: "${SSLSESS_BUILD:=$SSLSESS_ROOT/build}"
: "${CC:=cc}"
mkdir -p "$SSLSESS_BUILD"

TEST_CFLAGS=(-O1 -g -std=gnu11 -Wall -Wextra -Werror -I"$SSLSESS_ROOT/include" -I"$SSLSESS_ROOT/tests-c")

# build_linked OUT SRC...: linked ahead of libssl, as a user would.
build_linked() {
    local out=$1; shift
    "$CC" "${TEST_CFLAGS[@]}" -DTEST_LINKED -o "$out" "$@" \
        -L"$SSLSESS_LIBDIR" -lsslsess -lssl -lcrypto -lpthread -ldl -Wl,-rpath,"$SSLSESS_LIBDIR"
}

# build_plain OUT SRC...: linked to libssl only (preload and reference runs).
build_plain() {
    local out=$1; shift
    "$CC" "${TEST_CFLAGS[@]}" -o "$out" "$@" -lssl -lcrypto -lpthread -ldl
}

VALGRIND=(valgrind --quiet --error-exitcode=99 --leak-check=full
          --errors-for-leak-kinds=definite --show-leak-kinds=definite
          --track-origins=no)
# have_valgrind: whether valgrind is installed; if not, the valgrind runs
# fail (a fresh machine has it, so its absence is an error).
have_valgrind() {
    command -v valgrind >/dev/null && return 0
    fail "valgrind runs: valgrind is not installed (apt-get install valgrind)"
    return 1
}

# run_bounded SECONDS CMD...: runs CMD, killed after SECONDS.
run_bounded() {
    local secs=$1; shift
    timeout --kill-after=5 "$secs" "$@"
}
# timed_out RC: whether run_bounded's exit code RC means the time ran out
# (124, or 137 when the command had to be killed).
timed_out() {
    [ "$1" = 124 ] || [ "$1" = 137 ]
}

# A suite's steps: pass/fail print one line each and count it;
# suite_summary NAME prints the closing line "NAME: N passed, N failed" and
# returns non-zero when anything failed.
suite_passed=0
suite_failed=0
pass() { suite_passed=$((suite_passed + 1)); printf 'ok      %s\n' "$*"; }
fail() { suite_failed=$((suite_failed + 1)); printf 'FAILED  %s\n' "$*"; }
suite_summary() {
    echo "$1: $suite_passed passed, $suite_failed failed"
    [ "$suite_failed" -eq 0 ]
}

# tail_of FILE [N]: FILE's last N (20) lines, indented.
tail_of() { tail -n "${2:-20}" "$1" | sed 's/^/    | /'; }
# built LABEL BUILT: whether the binary LABEL runs was built and passed its
# checks (BUILT is 1, as the build step set it); if not, LABEL fails.
built() {
    [ "$2" = 1 ] && return 0
    fail "$1: binary not built"
    return 1
}
# bounded_case BASE LABEL SAYS PATTERN CMD...: runs CMD (20 s at most),
# stdout to BASE.out, stderr to BASE.err. LABEL passes, saying SAYS and
# CMD's stdout, if CMD exits 0 and, unless PATTERN is empty, its stdout
# matches PATTERN (grep -E); otherwise it fails with the exit code (or the
# time-out), and stderr is shown.
bounded_case() {
    local base=$1 label=$2 says=$3 pattern=$4; shift 4
    local rc=0
    run_bounded 20 "$@" >"$base.out" 2>"$base.err" || rc=$?
    if [ "$rc" -eq 0 ] && { [ -z "$pattern" ] || grep -Eq "$pattern" "$base.out"; }; then
        pass "$label: $says ($(cat "$base.out"))"
    else
        local why="exit code $rc"
        if timed_out "$rc"; then why="timed out (exit code $rc)"; fi
        fail "$label: $why${pattern:+, expected /$pattern/}: $(cat "$base.out")"
        tail_of "$base.err"
    fi
}

# Prints a banner for one run.
banner() { printf '\n=== %s\n' "$*"; }

# wait_listen PORT [TRIES]: waits until a socket LISTENs on 127.0.0.1:PORT,
# by reading /proc/net/tcp: it opens no connection, so a server's accept and
# handshake counters see only the test's own clients.
wait_listen() {
    local port=$1 tries=${2:-100} hex
    hex=$(printf '0100007F:%04X' "$port")
    while ! awk -v a="$hex" '$2 == a && $4 == "0A" { f = 1 } END { exit !f }' /proc/net/tcp; do
        tries=$((tries - 1))
        [ "$tries" -gt 0 ] || return 1
        sleep 0.1
    done
}

# free_port: a TCP port on loopback that nothing listens on now.
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# stop_pid PID: stops a process this script started, by PID.
stop_pid() {
    local pid=$1
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}
