//! Does libssl call its own session-cache functions through its PLT?
//!
//! libssl's handshake code calls `SSL_CTX_add_session`,
//! `SSL_CTX_remove_session` and `SSL_CTX_flush_sessions` itself. On a normal
//! build those calls go through a relocation (PLT slot or GOT entry) that
//! the dynamic linker binds to the first definition in the process: ours.
//! A libssl linked with `-Bsymbolic(-functions)` binds them to itself at
//! link time and keeps no such relocation, so they never reach libsslsess:
//! sessions libssl stores during handshakes then stay in libssl's own cache.
//!
//! This module reads the loaded library's dynamic relocation tables to tell
//! the two apart. It only reads memory the dynamic linker mapped.

use std::ffi::{CStr, c_int, c_void};

/// Whether the loaded object whose file name contains `object` has a dynamic
/// relocation against `symbol`; `None` when no such object is loaded or its
/// tables cannot be read.
pub fn has_relocation_against(object: &str, symbol: &str) -> Option<bool> {
    struct Search<'a> {
        object: &'a str,
        symbol: &'a str,
        found: Option<bool>,
    }

    unsafe extern "C" fn visit(
        info: *mut libc::dl_phdr_info,
        _size: libc::size_t,
        data: *mut c_void,
    ) -> c_int {
        // SAFETY: dl_iterate_phdr passes a valid info and our data pointer.
        let search = unsafe { &mut *(data as *mut Search) };
        let info = unsafe { &*info };
        if info.dlpi_name.is_null() {
            return 0;
        }
        let name = unsafe { CStr::from_ptr(info.dlpi_name) }.to_string_lossy();
        if !name
            .rsplit('/')
            .next()
            .is_some_and(|file| file.contains(search.object))
        {
            return 0;
        }
        search.found = unsafe { scan(info, search.symbol) };
        1
    }

    let mut search = Search {
        object,
        symbol,
        found: None,
    };
    // SAFETY: the callback only reads the loader's structures.
    unsafe { libc::dl_iterate_phdr(Some(visit), &mut search as *mut Search as *mut c_void) };
    search.found
}

/// An entry of the dynamic section (`Elf64_Dyn`; libc does not declare it).
#[repr(C)]
struct Dyn {
    d_tag: i64,
    d_un: u64,
}

/// Scans one object's DT_RELA and DT_JMPREL tables for `symbol`.
///
/// # Safety
/// `info` must describe an object the dynamic linker has loaded.
unsafe fn scan(info: &libc::dl_phdr_info, symbol: &str) -> Option<bool> {
    let base = info.dlpi_addr as usize;
    let phdrs = unsafe { std::slice::from_raw_parts(info.dlpi_phdr, info.dlpi_phnum as usize) };
    let dynamic = phdrs.iter().find(|p| p.p_type == libc::PT_DYNAMIC)?;
    let mut entry = (base + dynamic.p_vaddr as usize) as *const Dyn;

    // glibc stores these as run-time addresses; other loaders may leave them
    // as offsets from the load base.
    let addr = |v: u64| -> usize {
        let v = v as usize;
        if v < base { base + v } else { v }
    };
    let (mut symtab, mut strtab, mut strsz) = (0usize, 0usize, 0usize);
    let mut tables: [(usize, usize); 2] = [(0, 0); 2];
    loop {
        let d = unsafe { &*entry };
        match d.d_tag as u32 {
            0 => break, // DT_NULL
            6 => symtab = addr(d.d_un),
            5 => strtab = addr(d.d_un),
            10 => strsz = d.d_un as usize,
            7 => tables[0].0 = addr(d.d_un),    // DT_RELA
            8 => tables[0].1 = d.d_un as usize, // DT_RELASZ
            23 => tables[1].0 = addr(d.d_un),   // DT_JMPREL
            2 => tables[1].1 = d.d_un as usize, // DT_PLTRELSZ
            _ => {}
        }
        entry = unsafe { entry.add(1) };
    }
    if symtab == 0 || strtab == 0 {
        return None;
    }
    for (start, size) in tables {
        if start == 0 {
            continue;
        }
        let count = size / std::mem::size_of::<libc::Elf64_Rela>();
        let relas = unsafe { std::slice::from_raw_parts(start as *const libc::Elf64_Rela, count) };
        for rela in relas {
            let index = (rela.r_info >> 32) as usize;
            if index == 0 {
                continue;
            }
            let sym = unsafe { &*(symtab as *const libc::Elf64_Sym).add(index) };
            let offset = sym.st_name as usize;
            if strsz != 0 && offset >= strsz {
                continue;
            }
            let name = unsafe { CStr::from_ptr((strtab + offset) as *const libc::c_char) };
            if name.to_bytes() == symbol.as_bytes() {
                return Some(true);
            }
        }
    }
    Some(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// Builds a library defining and calling `probe_target`, with or without
    /// -Bsymbolic, loads it, and asks whether it calls through its PLT.
    fn probe(symbolic: bool) -> Option<bool> {
        let dir = std::env::temp_dir().join(format!("sslsess-binding-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let src = dir.join("probe.c");
        std::fs::write(
            &src,
            "int probe_target(int x) { return x + 1; }\n\
             int probe_caller(int x) { return probe_target(x) * 2; }\n",
        )
        .unwrap();
        let name = if symbolic {
            "libprobesym.so"
        } else {
            "libprobeplt.so"
        };
        let out = dir.join(name);
        let mut cc = Command::new("cc");
        cc.args(["-shared", "-fPIC", "-O1", "-o"])
            .arg(&out)
            .arg(&src);
        if symbolic {
            cc.arg("-Wl,-Bsymbolic");
        }
        assert!(cc.status().expect("cc runs").success());
        let path = std::ffi::CString::new(out.to_str().unwrap()).unwrap();
        // SAFETY: loading a library we just built; kept loaded.
        let handle = unsafe { libc::dlopen(path.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
        assert!(!handle.is_null());
        has_relocation_against(name, "probe_target")
    }

    #[test]
    fn tells_plt_calls_from_symbolic_binding() {
        assert_eq!(probe(false), Some(true));
        assert_eq!(probe(true), Some(false));
    }

    #[test]
    fn unknown_object_is_none() {
        assert_eq!(has_relocation_against("no-such-object-xyz", "x"), None);
    }

    #[test]
    fn system_libssl_is_interposable() {
        // The test binary links libssl through openssl-sys.
        assert_eq!(
            has_relocation_against("libssl.so", "SSL_CTX_add_session"),
            Some(true)
        );
    }
}
