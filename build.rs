//! Gives the library its soname, generates include/sslsess.h, and with the
//! `helgrind` feature compiles src/helgrind.c.

fn main() {
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libsslsess.so.0");
    println!("cargo:rerun-if-changed=src/boundary.rs");
    println!("cargo:rerun-if-changed=cbindgen.toml");

    let crate_dir = std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo");
    #[cfg(feature = "helgrind")]
    {
        println!("cargo:rerun-if-changed=src/helgrind.c");
        cc::Build::new()
            .file(format!("{crate_dir}/src/helgrind.c"))
            .compile("sslsess_helgrind");
    }
    let config = cbindgen::Config::from_file(format!("{crate_dir}/cbindgen.toml"))
        .expect("cbindgen.toml is valid");
    match cbindgen::Builder::new()
        .with_config(config)
        .with_src(format!("{crate_dir}/src/boundary.rs"))
        .generate()
    {
        Ok(bindings) => {
            bindings.write_to_file(format!("{crate_dir}/include/sslsess.h"));
        }
        Err(e) => panic!("cannot generate include/sslsess.h: {e}"),
    }
}
