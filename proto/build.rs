fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/podctl.proto");
    tonic_prost_build::configure().compile_protos(&["proto/podctl.proto"], &["proto"])?;
    Ok(())
}
