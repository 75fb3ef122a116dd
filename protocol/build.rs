//! Compiles `proto/agent.proto` with protox (pure Rust), so no system `protoc` is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/agent.proto");
    let descriptors = protox::compile(["proto/agent.proto"], ["proto"])?;
    tonic_prost_build::configure()
        .codec_path("crate::codec::AgentCodec")
        .compile_fds(descriptors)?;
    Ok(())
}
