fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    tonic_prost_build::configure().file_descriptor_set_path(out.join("trust_descriptor.bin")).compile_protos(
        &[
            "proto/trust/v1/ca.proto",
            "proto/trust/v1/tsa.proto",
            "proto/trust/v1/signing.proto",
            "proto/trust/v1/log.proto",
            "proto/trust/v1/diagnostics.proto",
        ],
        &["proto"],
    )?;
    Ok(())
}
