//! Gives the library its soname and generates include/sslsess.h.

fn main() {
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libsslsess.so.0");
    println!("cargo:rerun-if-changed=src/boundary.rs");
    println!("cargo:rerun-if-changed=cbindgen.toml");

    let crate_dir = std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo");
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
