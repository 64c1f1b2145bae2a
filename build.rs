//! Compiles `proto/isc_ledger.proto` with the vendored `protoc` (no system
//! protoc needed) and emits the file descriptor set served by gRPC reflection.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // tonic-prost-build finds protoc through $PROTOC.
    std::env::set_var("PROTOC", protoc);
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    tonic_prost_build::configure()
        // `ReadLog`'s message is written and read in its wire form, a batch
        // of records at a time, not a prost struct per record
        // (src/api/log_wire.rs; the bytes are prost's).
        .extern_path(
            ".isc.ledger.v1.LogRecord",
            "crate::api::log_wire::LogRecord",
        )
        .file_descriptor_set_path(out_dir.join("isc_ledger_descriptor.bin"))
        .compile_protos(&["proto/isc_ledger.proto"], &["proto"])?;
    println!("cargo:rerun-if-changed=proto/isc_ledger.proto");
    Ok(())
}
