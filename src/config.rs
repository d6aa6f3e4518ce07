//! Configuration read from the environment once, at load time.
//!
//! Read in a load-time constructor because some servers (nginx workers)
//! clear their environment after start-up. Nothing here prints or
//! allocates unless asked to.

use std::sync::atomic::{AtomicBool, Ordering};

static DEBUG: AtomicBool = AtomicBool::new(false);

/// `SSLSESS_LOG=debug` traces every call and its result to stderr.
pub fn debug_enabled() -> bool {
    DEBUG.load(Ordering::Relaxed)
}

static MARK_VIA_LIBSSL: AtomicBool = AtomicBool::new(false);

/// `SSLSESS_MARK_VIA_LIBSSL` (set, to anything but empty or `0`): sessions leaving a cache
/// are marked non-resumable by libssl's own `SSL_CTX_remove_session`
/// rather than by writing the flag it sets (see `session::NotResumableFlag`).
pub fn mark_via_libssl() -> bool {
    MARK_VIA_LIBSSL.load(Ordering::Relaxed)
}

fn read_environment() {
    let debug = std::env::var_os("SSLSESS_LOG").is_some_and(|v| v == "debug");
    DEBUG.store(debug, Ordering::Relaxed);
    let via_libssl =
        std::env::var_os("SSLSESS_MARK_VIA_LIBSSL").is_some_and(|v| !v.is_empty() && v != "0");
    MARK_VIA_LIBSSL.store(via_libssl, Ordering::Relaxed);
}

extern "C" fn on_load() {
    read_environment();
    crate::context::exempt_atomics_from_race_checks();
}

#[used]
#[unsafe(link_section = ".init_array")]
static ON_LOAD: extern "C" fn() = on_load;

/// Writes one line to stderr, prefixed. Never panics: a server whose stderr
/// is a closed pipe must not be brought down by a diagnostic.
pub fn say(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "libsslsess: {args}");
}

/// `say`s one line when tracing is on. The arguments are not evaluated
/// otherwise.
macro_rules! trace {
    ($($arg:tt)*) => {
        if $crate::config::debug_enabled() {
            $crate::config::say(format_args!($($arg)*));
        }
    };
}
pub(crate) use trace;
