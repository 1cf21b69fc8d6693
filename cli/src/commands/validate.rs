use super::ManifestArgs;

/// Arguments of `podctl validate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    manifest: ManifestArgs,
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    let (_, runnable) = args.manifest.load()?;
    let name = runnable.pod.metadata.name.as_deref().unwrap_or_default();
    let mut uses: Vec<String> = runnable
        .objects
        .config_maps
        .keys()
        .map(|n| format!("configmap/{n}"))
        .collect();
    uses.extend(
        runnable
            .objects
            .secrets
            .keys()
            .map(|n| format!("secret/{n}")),
    );
    if uses.is_empty() {
        println!("pod/{name} is valid");
    } else {
        println!("pod/{name} is valid (uses {})", uses.join(", "));
    }
    Ok(0)
}
