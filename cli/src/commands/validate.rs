use std::path::PathBuf;

/// Arguments of `podctl validate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Pod manifest (YAML or JSON); `-` reads stdin
    file: PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    let pod = super::load_manifest(&args.file)?;
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    println!("pod/{name} is valid");
    Ok(0)
}
