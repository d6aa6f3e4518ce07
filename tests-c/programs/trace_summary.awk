# trace_summary.awk: condenses SSLSESS_LOG=debug traces (one or more files,
# one per process) for tests-c/demo.sh. Each distinct call, with pointers
# replaced by names (contexts ctx1, ctx2... per process; any session is
# "session"; NULL stays NULL) and its result, is printed once with its
# count, in order of first appearance, with a short explanation.
# Other stderr lines (not libsslsess's) are ignored.

function ctxname(ptr,    key) {
    if (ptr == "0x0") return "NULL"
    key = FILENAME SUBSEP ptr
    if (!(key in ctxs)) ctxs[key] = "ctx" (++nctx[FILENAME])
    return ctxs[key]
}

function sessname(ptr) { return ptr == "0x0" ? "NULL" : "session" }

function note(fn, res) {
    if (fn ~ /^SSL_CTX_new/) return "a context: libsslsess gives it a cache and its get-session callback"
    if (fn == "SSL_CTX_add_session") return res == "1" ? "new session stored in libsslsess's cache" \
                                                       : "already cached (libssl re-adds the session it resumed)"
    if (fn == "sslsess_get_session_cb") return res == "NULL" ? "server lookup: not in libsslsess's cache" \
                                                             : "server lookup answered from libsslsess's cache"
    if (fn == "SSL_CTX_remove_session") return res == "1" ? "removed from libsslsess's cache" \
                                                          : "libssl drops a session that is not in this cache"
    if (fn == "SSL_has_matching_session_id") return "libssl checks a fresh session id against the cache"
    if (fn == "SSL_set_session") return "client offers its saved session"
    if (fn == "SSL_CTX_flush_sessions") return "context freed: cache flushed"
    if (fn == "SSL_CTX_ctrl") return "session statistics and cache settings"
    return ""
}

# Counts one occurrence of `key`, remembered in order of first appearance.
function count(key, explanation) {
    if (!(key in cnt)) { order[++norder] = key; notes[key] = explanation }
    cnt[key]++
}

# Not a call: which way sessions leaving a cache are marked non-resumable
# (once per process that releases one), kept as it is.
/^libsslsess: not-resumable flag: / { count(substr($0, 13), ""); next }

/^libsslsess: / {
    line = substr($0, 13)
    fn = line; sub(/\(.*/, "", fn)
    # The result follows the last ") = "; the arguments precede it.
    p = 0; rest = line
    while ((i = index(rest, ") = ")) > 0) { p += i; rest = substr(rest, i + 1) }
    open = index(line, "(")
    args = substr(line, open + 1, p - open - 1)
    res = substr(line, p + 4)
    out = ""
    if (fn == "SSL_CTX_ctrl") {
        out = "..."; res = "..."
    } else {
        n = split(args, a, ", ")
        for (i = 1; i <= n; i++) {
            k = a[i]; v = a[i]
            sub(/=.*/, "", k); sub(/^[^=]*=/, "", v)
            if (k == "ctx") v = ctxname(v)
            else if (k == "session") v = sessname(v)
            else if (k != "tm" && k != "len" && k != "id_len") continue
            else v = k "=" v
            out = out (out == "" ? "" : ", ") v
        }
        if (fn ~ /^SSL_CTX_new/) res = ctxname(res)
        else if (fn == "sslsess_get_session_cb") res = sessname(res)
    }
    count(fn "(" out ") = " res, note(fn, res))
}

END {
    for (i = 1; i <= norder; i++)
        printf "    %3d x %-48s %s\n", cnt[order[i]], order[i], notes[order[i]]
}
