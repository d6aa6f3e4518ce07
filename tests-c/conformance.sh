#!/usr/bin/env bash
# tests-c/conformance.sh: the C conformance suite (`make conformance`).
#
#   1. include/sslsess.h compiles cleanly next to <openssl/ssl.h>, as C and
#      as C++, with -Wall -Wextra -Werror (-pedantic too);
#   2. tests-c/conformance.c built linked ahead of libssl and plain, run
#      (a) linked, (b) LD_PRELOADed into the plain binary, (c) plain against
#      libssl alone (the reference: reports where libssl 3.0 differs from the
#      pages, must pass its CHECKs), (d) linked and (e) preloaded under
#      valgrind memcheck (zero errors, zero definite leaks), and (f)
#      preloaded with SSLSESS_MARK_VIA_LIBSSL=1 (libssl marks sessions);
#   3. tests-c/synonyms.c (only "sslsess.h") built linked and run;
#   4. `make install` into build/prefix, then a program built with
#      `pkg-config --cflags --libs sslsess` runs against the installed copy;
#   5. inertness: preloaded into programs that never touch TLS, libsslsess
#      changes no output and prints nothing;
#   6. tracing: SSLSESS_LOG=debug traces the calls and their results to
#      stderr, and whether libssl's not-resumable flag was learned (or
#      SSLSESS_MARK_VIA_LIBSSL leaves marking to libssl); without it stderr
#      stays empty. Also: a remove from an SSL_SESSION ex_data callback while
#      the flag is being learned, on the callback's thread and from another
#      thread it waits for; and the probe sessions such a callback sees made
#      and freed (--count-probes: linked, preloaded, with
#      SSLSESS_MARK_VIA_LIBSSL=1, and against plain libssl).
# Ends with "conformance-suite: N passed, N failed" (one count per step).

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
set +e # every step is counted, not fatal

OUT=$SSLSESS_BUILD/conformance
rm -rf "$OUT"
mkdir -p "$OUT"

# show LOG: the lines of a suite's output worth reading here (everything is
# in the log file).
show() {
    grep -E '^(FAILED|DIFFERS|skip)|^# conformance|^[a-z-]+: [0-9]+ passed, [0-9]+ failed$' "$1" | sed 's/^/    /'
}

# ---------------------------------------------------------------------------
banner "1. include/sslsess.h next to <openssl/ssl.h>, as C and C++"

# Every export assigned to a pointer of libssl 3.0's own type: a prototype
# that differs from libssl's fails to compile (C++ is strict about it).
cat > "$OUT/header_use.h" <<'EOF'
static int (*const p_ctx_add)(SSL_CTX *, SSL_SESSION *) = SSL_CTX_add_session;
static int (*const p_add)(SSL_CTX *, SSL_SESSION *) = SSL_add_session;
static int (*const p_ctx_remove)(SSL_CTX *, SSL_SESSION *) = SSL_CTX_remove_session;
static int (*const p_remove)(SSL_CTX *, SSL_SESSION *) = SSL_remove_session;
static void (*const p_flush)(SSL_CTX *, long) = SSL_CTX_flush_sessions;
static int (*const p_set)(SSL *, SSL_SESSION *) = SSL_set_session;
static int (*const p_match)(const SSL *, const unsigned char *, unsigned int) = SSL_has_matching_session_id;
static long (*const p_ctrl)(SSL_CTX *, int, long, void *) = SSL_CTX_ctrl;
static SSL_CTX *(*const p_new)(const SSL_METHOD *) = SSL_CTX_new;
static SSL_CTX *(*const p_new_ex)(OSSL_LIB_CTX *, const char *, const SSL_METHOD *) = SSL_CTX_new_ex;
static void (*const p_set_get_cb)(SSL_CTX *, SSL_SESSION *(*)(SSL *, const unsigned char *, int, int *)) = SSL_CTX_sess_set_get_cb;
static SSL_SESSION *(*(*const p_get_get_cb)(SSL_CTX *))(SSL *, const unsigned char *, int, int *) = SSL_CTX_sess_get_get_cb;
static long (*const p_set_time)(SSL_SESSION *, long) = SSL_SESSION_set_time;
static long (*const p_set_timeout)(SSL_SESSION *, long) = SSL_SESSION_set_timeout;
static const char *(*const p_version)(void) = sslsess_version;
static int (*const p_active)(void) = sslsess_is_active;
int header_use(void);
int header_use(void)
{
    (void)p_ctx_add, (void)p_add, (void)p_ctx_remove, (void)p_remove, (void)p_flush, (void)p_set;
    (void)p_match, (void)p_ctrl, (void)p_new, (void)p_new_ex, (void)p_set_get_cb, (void)p_get_get_cb;
    (void)p_set_time, (void)p_set_timeout, (void)p_version, (void)p_active;
    return 0;
}
EOF
printf '#include <openssl/ssl.h>\n#include "sslsess.h"\n#include "header_use.h"\n' > "$OUT/header_after.c"
printf '#include "sslsess.h"\n#include <openssl/ssl.h>\n#include "header_use.h"\n' > "$OUT/header_first.c"

CXX_BIN=${CXX:-g++}
header_compile() { # LANG STD EXTRA...
    local lang=$1 std=$2; shift 2
    local compiler=$CC
    [ "$lang" = c++ ] && compiler=$CXX_BIN
    local src extra="${*:+ $*}"
    for src in header_after header_first; do
        local log="$OUT/$src.$lang.$std.log"
        if ! command -v "$compiler" >/dev/null; then
            fail "header as $lang ($std): no $compiler on this machine (install g++)"
            continue
        fi
        if "$compiler" -x "$lang" -std="$std" -Wall -Wextra -Werror "$@" \
            -I"$SSLSESS_ROOT/include" -I"$OUT" -c "$OUT/$src.c" -o "$OUT/$src.$lang.$std.o" >"$log" 2>&1; then
            pass "sslsess.h as $lang, -std=$std -Wall -Wextra -Werror$extra (${src#header_} <openssl/ssl.h>): compiles cleanly"
        else
            fail "sslsess.h as $lang, -std=$std -Wall -Wextra -Werror$extra (${src#header_} <openssl/ssl.h>)"
            tail_of "$log"
        fi
    done
}
header_compile c gnu11
header_compile c c99 -pedantic
header_compile c++ c++11 -pedantic
header_compile c++ c++17

# ---------------------------------------------------------------------------
banner "2. the conformance suite: linked, preloaded, reference, valgrind"

LINKED=$OUT/conformance_linked
PLAIN=$OUT/conformance_plain
built_linked=0
built_plain=0
if build_linked "$LINKED" "$SSLSESS_ROOT/tests-c/conformance.c" >"$OUT/build_linked.log" 2>&1; then
    if readelf -d "$LINKED" | grep 'NEEDED.*libsslsess' >/dev/null; then
        built_linked=1
        pass "build_linked conformance (needs libsslsess ahead of libssl)"
    else
        fail "build_linked conformance: the binary does not need libsslsess"
    fi
else
    fail "build_linked conformance"
    tail_of "$OUT/build_linked.log"
fi
if build_plain "$PLAIN" "$SSLSESS_ROOT/tests-c/conformance.c" >"$OUT/build_plain.log" 2>&1; then
    if readelf -d "$PLAIN" | grep 'NEEDED.*libsslsess' >/dev/null; then
        fail "build_plain conformance: the plain binary needs libsslsess"
    else
        built_plain=1
        pass "build_plain conformance (libssl only)"
    fi
else
    fail "build_plain conformance"
    tail_of "$OUT/build_plain.log"
fi

# run_suite NAME WHO BUILT SECONDS CMD...: runs one way; WHO is what the
# suite must report it ran against ("libsslsess" or "plain libssl").
run_suite() {
    local name=$1 who=$2 built=$3 secs=$4; shift 4
    local log="$OUT/$name.log" err="$OUT/$name.err"
    built "$name" "$built" || return
    run_bounded "$secs" "$@" >"$log" 2>"$err"
    local rc=$?
    show "$log"
    if [ "$rc" -ne 0 ]; then
        fail "$name: exit code $rc (log: $log)"
        [ -s "$err" ] && tail_of "$err" 40
    elif ! grep -q "^# conformance against $who" "$log"; then
        fail "$name: did not run against $who"
    elif ! grep -Eq '^conformance: [0-9]+ passed, 0 failed$' "$log"; then
        fail "$name: no clean summary line"
    elif [ -s "$err" ]; then
        fail "$name: unexpected stderr"
        tail_of "$err" 40
    else
        pass "$name"
    fi
}

echo "(a) linked ahead of libssl"
run_suite "conformance-linked" libsslsess "$built_linked" 120 "$LINKED"
echo "(b) LD_PRELOAD=$SSLSESS_LIB into the plain binary"
run_suite "conformance-preload" libsslsess "$built_plain" 120 env LD_PRELOAD="$SSLSESS_LIB" "$PLAIN"
echo "(c) plain libssl, the reference"
run_suite "conformance-reference" "plain libssl" "$built_plain" 120 "$PLAIN"
if have_valgrind; then
    echo "(d) linked, under valgrind memcheck"
    run_suite "conformance-linked-valgrind" libsslsess "$built_linked" 600 "${VALGRIND[@]}" "$LINKED"
    echo "(e) preloaded, under valgrind memcheck"
    run_suite "conformance-preload-valgrind" libsslsess "$built_plain" 600 \
        env LD_PRELOAD="$SSLSESS_LIB" "${VALGRIND[@]}" "$PLAIN"
fi
echo "(f) preloaded, SSLSESS_MARK_VIA_LIBSSL=1: sessions marked non-resumable by libssl's remove"
run_suite "conformance-preload-mark-via-libssl" libsslsess "$built_plain" 120 \
    env LD_PRELOAD="$SSLSESS_LIB" SSLSESS_MARK_VIA_LIBSSL=1 "$PLAIN"

# ---------------------------------------------------------------------------
banner "3. synonyms.c: SSL_add_session / SSL_remove_session from sslsess.h alone"
SYN=$OUT/synonyms
if build_linked "$SYN" "$SSLSESS_ROOT/tests-c/synonyms.c" >"$OUT/synonyms_build.log" 2>&1; then
    run_bounded 60 "$SYN" >"$OUT/synonyms.log" 2>"$OUT/synonyms.err"
    rc=$?
    show "$OUT/synonyms.log"
    if [ "$rc" -eq 0 ] && grep -Eq '^synonyms: [0-9]+ passed, 0 failed$' "$OUT/synonyms.log"; then
        pass "synonyms (built with only sslsess.h, linked)"
    else
        fail "synonyms: exit code $rc (log: $OUT/synonyms.log)"
        tail_of "$OUT/synonyms.log"
    fi
else
    fail "synonyms: does not build with only sslsess.h"
    tail_of "$OUT/synonyms_build.log"
fi

# ---------------------------------------------------------------------------
banner "4. make install, then pkg-config --cflags --libs sslsess"
PREFIX_DIR=$SSLSESS_BUILD/prefix
rm -rf "$PREFIX_DIR"
if ${MAKE:-make} --no-print-directory -C "$SSLSESS_ROOT" install PREFIX="$PREFIX_DIR" >"$OUT/install.log" 2>&1; then
    missing=()
    for f in lib/libsslsess.so lib/libsslsess.so.0 include/sslsess.h lib/pkgconfig/sslsess.pc; do
        [ -e "$PREFIX_DIR/$f" ] || missing+=("$f")
    done
    if [ ${#missing[@]} -eq 0 ] && cmp -s "$PREFIX_DIR/include/sslsess.h" "$SSLSESS_ROOT/include/sslsess.h"; then
        pass "make install PREFIX=$PREFIX_DIR: library, header and sslsess.pc installed"
    else
        fail "make install: missing or different: ${missing[*]:-include/sslsess.h}"
    fi
else
    fail "make install PREFIX=$PREFIX_DIR"
    tail_of "$OUT/install.log"
fi
if ! command -v pkg-config >/dev/null; then
    fail "pkg-config is not installed, so sslsess.pc cannot be checked (apt-get install pkg-config; .ci/setup does it)"
else
    cat > "$OUT/pkgconfig_app.c" <<'EOF'
#include <sslsess.h>
#include <string.h>

int main(void)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_method());
    SSL_SESSION *s = SSL_SESSION_new();
    unsigned char id[32];
    memset(id, 0x5a, sizeof id);
    SSL_SESSION_set1_id(s, id, sizeof id);
    int added = SSL_add_session(ctx, s);
    long number = SSL_CTX_sess_number(ctx);
    int removed = SSL_remove_session(ctx, s);
    printf("pkgconfig-app: libsslsess %s active=%d add=%d number=%ld remove=%d\n",
           sslsess_version(), sslsess_is_active(), added, number, removed);
    SSL_SESSION_free(s);
    SSL_CTX_free(ctx);
    return sslsess_is_active() == 1 && added == 1 && number == 1 && removed == 1 ? 0 : 1;
}
EOF
    export PKG_CONFIG_PATH=$PREFIX_DIR/lib/pkgconfig
    if flags=$(pkg-config --cflags --libs sslsess 2>"$OUT/pkgconfig.err"); then
        echo "    pkg-config --cflags --libs sslsess: $flags"
        # shellcheck disable=SC2086  # pkg-config output is a list of flags
        if "$CC" -std=gnu11 -Wall -Wextra -Werror -o "$OUT/pkgconfig_app" "$OUT/pkgconfig_app.c" \
            $flags -Wl,-rpath,"$PREFIX_DIR/lib" >"$OUT/pkgconfig_build.log" 2>&1; then
            out=$(run_bounded 30 "$OUT/pkgconfig_app" 2>&1)
            rc=$?
            echo "    $out"
            resolved=$(ldd "$OUT/pkgconfig_app" | awk '/libsslsess/ {print $3}')
            if [ "$rc" -eq 0 ] && [ "$(readlink -f "$resolved")" = "$(readlink -f "$PREFIX_DIR/lib/libsslsess.so.0")" ]; then
                pass "a program built with pkg-config runs against the installed library ($resolved)"
            else
                fail "pkg-config program: exit code $rc, libsslsess resolved to '$resolved'"
            fi
        else
            fail "a program does not build with pkg-config --cflags --libs sslsess"
            tail_of "$OUT/pkgconfig_build.log"
        fi
    else
        fail "pkg-config does not find sslsess in $PKG_CONFIG_PATH"
        tail_of "$OUT/pkgconfig.err"
    fi
    unset PKG_CONFIG_PATH
fi

# ---------------------------------------------------------------------------
banner "5. inert where unused: LD_PRELOAD into programs that never touch TLS"
# inert NAME CMD...: stdout and exit code as without libsslsess, no stderr.
# `env` lists the environment, LD_PRELOAD included: that one line is left out.
inert() {
    local name=$1; shift
    local base="$OUT/inert-$name"
    run_bounded 30 "$@" >"$base.out0" 2>"$base.err0"
    local rc0=$?
    run_bounded 30 env LD_PRELOAD="$SSLSESS_LIB" "$@" >"$base.out1" 2>"$base.err1"
    local rc1=$?
    sed -i '/^LD_PRELOAD=/d' "$base.out0" "$base.out1"
    if [ "$rc0" -ne "$rc1" ]; then
        fail "inert: $name: exit code $rc1 preloaded, $rc0 without"
    elif ! cmp -s "$base.out0" "$base.out1"; then
        fail "inert: $name: stdout differs when preloaded"
        diff "$base.out0" "$base.out1" | sed -n '1,10s/^/    | /p'
    elif [ -s "$base.err1" ]; then
        fail "inert: $name: stderr when preloaded"
        tail_of "$base.err1"
    else
        pass "inert: $name (same stdout, exit code $rc0, empty stderr)"
    fi
}
inert true /bin/true
inert sh-echo sh -c 'echo hi'
inert env /usr/bin/env
inert ls ls /

# ---------------------------------------------------------------------------
banner "6. tracing: SSLSESS_LOG=debug"
# trace NAME BUILT CMD...: one add and one remove (CMD ends in --trace-case),
# traced; BUILT says whether CMD's binary was built (see `built`).
trace() {
    local name=$1 ok=$2; shift 2
    local base="$OUT/trace-$name"
    built "trace ($name)" "$ok" || return
    run_bounded 20 env SSLSESS_LOG=debug "$@" >"$base.out" 2>"$base.err"
    local rc=$?
    if [ "$rc" -eq 0 ] && grep -Eq 'SSL_CTX_add_session\(.*\) = 1$' "$base.err" \
        && grep -Eq 'SSL_CTX_remove_session\(.*\) = 1$' "$base.err"; then
        pass "trace ($name): SSLSESS_LOG=debug names SSL_CTX_add_session and SSL_CTX_remove_session with their results"
        grep -E 'SSL_CTX_(add|remove)_session' "$base.err" | sed -n '1,2s/^/    | /p'
    else
        fail "trace ($name): exit code $rc, expected trace lines missing"
        tail_of "$base.err"
    fi
    run_bounded 20 env -u SSLSESS_LOG "$@" >"$base.quiet.out" 2>"$base.quiet.err"
    rc=$?
    if [ "$rc" -eq 0 ] && [ ! -s "$base.quiet.err" ] && cmp -s "$base.out" "$base.quiet.out"; then
        pass "trace ($name): without SSLSESS_LOG stderr is empty (same stdout)"
    else
        fail "trace ($name): without SSLSESS_LOG: exit code $rc, stderr:"
        tail_of "$base.quiet.err"
    fi
}
trace linked "$built_linked" "$LINKED" --trace-case
trace preload "$built_plain" env LD_PRELOAD="$SSLSESS_LIB" "$PLAIN" --trace-case

# The remove marks the session non-resumable: by writing libssl's flag,
# learned from libssl's own remove, unless told to leave that to libssl.
# flag_line NAME ERR RC WANT: a traced run (exit code RC, stderr ERR) says so.
flag_line() {
    local name=$1 err=$2 rc=$3 want=$4
    if [ "$rc" -eq 0 ] && grep -q "not-resumable flag: $want" "$err"; then
        pass "trace ($name): $(grep -m1 'not-resumable flag' "$err" | sed 's/^libsslsess: //')"
    else
        fail "trace ($name): exit code $rc, no 'not-resumable flag: $want' line"
        tail_of "$err"
    fi
}
# The linked trace above (its exit code is checked there; a binary not
# built failed there already).
if [ "$built_linked" = 1 ]; then
    flag_line learned "$OUT/trace-linked.err" 0 \
        "learned from libssl's remove, [0-9][0-9]* bytes after the session id"
fi
if built "trace (mark-via-libssl)" "$built_linked"; then
    run_bounded 20 env SSLSESS_LOG=debug SSLSESS_MARK_VIA_LIBSSL=1 "$LINKED" --trace-case >/dev/null \
        2>"$OUT/trace-mark-via-libssl.err"
    flag_line mark-via-libssl "$OUT/trace-mark-via-libssl.err" $? "SSLSESS_MARK_VIA_LIBSSL is set"
fi

# Learning makes probe sessions, which run the application's SSL_SESSION
# ex_data callbacks; one that removes a session meanwhile, on its own thread
# or from another it waits for, must get it removed and marked, not wait for
# the learning (the second case: another thread arriving during learning;
# a time-out is a deadlock).
# reentrant NAME BUILT CMD...: CMD runs its binary --reentrant-learning.
reentrant() {
    local name=$1 ok=$2; shift 2
    built "learning, $name" "$ok" || return
    bounded_case "$OUT/reentrant-$name" "learning, $name" \
        "removes from an SSL_SESSION ex_data callback meanwhile, same and other thread" "" \
        "$@" --reentrant-learning
}
reentrant linked "$built_linked" "$LINKED"
reentrant preload "$built_plain" env LD_PRELOAD="$SSLSESS_LIB" "$PLAIN"

# What an application's SSL_SESSION ex_data callbacks see besides its own
# session, around the first remove (README, compatibility table): the two
# probe sessions that learn the flag, each freed; none when
# SSLSESS_MARK_VIA_LIBSSL=1 (which also shows the setting reaches a
# preloaded library, as in run (f)) or with plain libssl.
# probes NAME WANT BUILT CMD...: CMD runs its binary --count-probes, which
# prints made=WANT freed=WANT.
probes() {
    local name=$1 want=$2 ok=$3; shift 3
    built "probes, $name" "$ok" || return
    bounded_case "$OUT/probes-$name" "probes, $name" \
        "the ex_data callbacks see $want sessions made and freed besides the program's" \
        "made=$want freed=$want\$" "$@" --count-probes
}
probes linked 2 "$built_linked" "$LINKED"
probes preload 2 "$built_plain" env LD_PRELOAD="$SSLSESS_LIB" "$PLAIN"
probes linked-mark-via-libssl 0 "$built_linked" env SSLSESS_MARK_VIA_LIBSSL=1 "$LINKED"
probes preload-mark-via-libssl 0 "$built_plain" env LD_PRELOAD="$SSLSESS_LIB" SSLSESS_MARK_VIA_LIBSSL=1 "$PLAIN"
probes plain-libssl 0 "$built_plain" "$PLAIN"

# A server's stderr can be a pipe whose reader is gone (SIGPIPE ignored, as
# servers do): tracing must then fail quietly, not abort the program.
if built "trace (EPIPE)" "$built_linked"; then
    run_bounded 20 env SSLSESS_LOG=debug "$LINKED" --trace-case-closed-stderr >"$OUT/trace-epipe.out"
    rc=$?
    if [ "$rc" -eq 0 ] && grep -q 'trace-case: add=1 remove=1' "$OUT/trace-epipe.out"; then
        pass "trace: stderr a pipe nobody reads (EPIPE) under SSLSESS_LOG=debug: the program runs on, exit code 0"
    else
        fail "trace: stderr a pipe nobody reads under SSLSESS_LOG=debug: exit code $rc"
    fi
fi

# ---------------------------------------------------------------------------
echo
suite_summary conformance-suite
