#!/usr/bin/env bash
# tests-c/handshake.sh: the differential handshake test bed (issue 3, item 4).
#
# Builds tests-c/handshake.c twice (linked ahead of libssl; plain), runs it
# against plain libssl (the reference), linked to libsslsess, with
# libsslsess LD_PRELOADed, and linked under valgrind, and diffs the fact
# lines ("[scenario] phase: fact") of each libsslsess run against the
# reference, scenario by scenario: identical output passes. Lines prefixed
# "expected-difference:" are deliberate differences (README,
# "Compatibility"): shown, not diffed; the program prints
# library-independent statements about them as facts.
source "$(dirname "$0")/lib.sh"


dir=$SSLSESS_BUILD/handshake
mkdir -p "$dir"
src=("$SSLSESS_ROOT/tests-c/handshake.c" "$SSLSESS_ROOT/tests-c/hs_tls.c")

banner "build"
if build_linked "$dir/handshake-linked" "${src[@]}" && build_plain "$dir/handshake-plain" "${src[@]}"; then
    pass "built handshake-linked and handshake-plain"
else
    fail "building the handshake test bed"
    suite_summary handshake-suite
    exit 1
fi

# run NAME WHO CMD...: runs one configuration; WHO is the library its summary
# must name ("libsslsess" or "plain libssl"). Checks exit status and summary.
run() {
    local name=$1 who=$2; shift 2
    banner "$name"
    local start=$SECONDS rc=0
    # ulimit -f: a run that loops printing stops at ~100 MB of output.
    (ulimit -f 200000; run_bounded 900 "$@") >"$dir/$name.out" 2>"$dir/$name.err" || rc=$?
    local summary; summary=$(grep -E '^handshake: [0-9]+ passed' "$dir/$name.out" || true)
    echo "${summary:-<no summary line>}   ($((SECONDS - start)) s, exit $rc)"
    grep -E '^FAILED' "$dir/$name.out" || true
    if [ "$rc" -eq 99 ]; then
        fail "$name: valgrind reported errors:"
        sed -n '1,80p' "$dir/$name.err"
    elif [ "$rc" -ne 0 ] || [ -z "$summary" ]; then
        fail "$name: exit status $rc (stderr: $(head -c 600 "$dir/$name.err"))"
    else
        pass "$name: exit 0, $summary"
    fi
    if grep -q "^# handshake against $who" "$dir/$name.out"; then
        pass "$name: ran against $who"
    else
        fail "$name: did not run against $who ($(grep '^# handshake against' "$dir/$name.out" || echo 'no summary'))"
    fi
    if [ -s "$dir/$name.err" ] && [ "$rc" -eq 0 ]; then
        echo "  (stderr of $name: $(head -c 300 "$dir/$name.err"))"
    fi
}

facts() { grep -E '^\[' "$1" || true; }
tags() { facts "$1" | sed -E 's/^\[([^]]*)\].*/\1/' | awk '!seen[$0]++'; }
facts_of() { facts "$1" | awk -v t="[$2] " 'index($0, t) == 1'; }

# compare NAME: the fact lines of NAME against the reference, by scenario.
compare() {
    local name=$1 ref=$dir/reference.out out=$dir/$1.out
    banner "diff: reference vs $name"
    local same=0 differ=0 tag
    : >"$dir/$name.diff"
    while IFS= read -r tag; do
        local d
        d=$(diff <(facts_of "$ref" "$tag") <(facts_of "$out" "$tag") \
                --label "reference [$tag]" --label "$name [$tag]" -u) || true
        if [ -z "$d" ]; then
            same=$((same + 1)); suite_passed=$((suite_passed + 1))
        else
            differ=$((differ + 1))
            fail "$name: scenario $tag differs from plain libssl:"
            printf '%s\n' "$d" | tee -a "$dir/$name.diff"
        fi
    done < <({ tags "$ref"; tags "$out"; } | awk '!seen[$0]++')
    echo "$name: $same scenario(s) identical to plain libssl, $differ differ"
    if [ "$(facts "$out" | wc -l)" -eq 0 ]; then
        fail "$name: printed no facts"
    fi
    local expected; expected=$(grep -c '^expected-difference:' "$out" || true)
    echo "$name: $expected expected-difference line(s) (not diffed):"
    diff <(grep '^expected-difference:' "$ref" || true) <(grep '^expected-difference:' "$out" || true) \
        --label reference --label "$name" -u | sed -n '3,$p' || true
}

run reference "plain libssl" "$dir/handshake-plain"
run linked libsslsess "$dir/handshake-linked"
run preload libsslsess env LD_PRELOAD="$SSLSESS_LIB" "$dir/handshake-plain"
compared=(linked preload)
if have_valgrind; then
    run valgrind-linked libsslsess env HS_SECOND_GUARD_MS=500 "${VALGRIND[@]}" "$dir/handshake-linked"
    compared+=(valgrind-linked)
fi

if [ "$(facts "$dir/reference.out" | wc -l)" -eq 0 ]; then
    fail "reference: printed no facts"
fi
for name in "${compared[@]}"; do
    compare "$name"
done

echo
suite_summary handshake-suite
