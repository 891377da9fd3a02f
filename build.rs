//! Generates the C header from the `extern "C"` items of `src/ffi/` with the
//! pinned cbindgen, into `$OUT_DIR/rio.h`. `make header` copies it to
//! `include/rio.h` (checked in); a unit test fails when the two differ.

use std::env;
use std::path::PathBuf;

fn main() {
    let crate_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let out = PathBuf::from(env::var("OUT_DIR").unwrap()).join("rio.h");

    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    println!("cargo:rerun-if-changed=Cargo.toml");
    // The shared object is loaded as librio.so.0 by everything linked against it.
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,librio.so.0");

    let mut config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml"))
        .expect("cbindgen.toml is readable");
    config.after_includes = Some(format!(
        "\n#define RIO_VERSION_MAJOR {}\n#define RIO_VERSION_MINOR {}\n#define RIO_VERSION_PATCH {}\n#define RIO_VERSION_STRING \"{}\"\n",
        env::var("CARGO_PKG_VERSION_MAJOR").unwrap(),
        env::var("CARGO_PKG_VERSION_MINOR").unwrap(),
        env::var("CARGO_PKG_VERSION_PATCH").unwrap(),
        env::var("CARGO_PKG_VERSION").unwrap(),
    ));
    cbindgen::Builder::new()
        .with_crate(&crate_dir)
        .with_config(config)
        .generate()
        .expect("cbindgen could not generate rio.h")
        .write_to_file(&out);
}
