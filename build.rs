//! Compiles `proto/isc_ledger.proto` with the vendored `protoc` (no system
//! protoc needed) and emits the file descriptor set served by gRPC reflection.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // tonic-prost-build finds protoc through $PROTOC.
    std::env::set_var("PROTOC", protoc);
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    tonic_prost_build::configure()
        // A log record's bytes are slices of the received message (no copy,
        // no allocation per record on a ReadLog stream).
        .bytes(".isc.ledger.v1.LogRecord")
        .file_descriptor_set_path(out_dir.join("isc_ledger_descriptor.bin"))
        .compile_protos(&["proto/isc_ledger.proto"], &["proto"])?;
    println!("cargo:rerun-if-changed=proto/isc_ledger.proto");
    Ok(())
}
