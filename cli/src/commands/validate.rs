use podctl_runtime::manifest;

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
    let what = match &runnable.controller {
        manifest::Controller::CronJob(c) => {
            // Its next time shows the schedule is read as meant.
            let next = c
                .next_time()
                .map(|t| format!(", next time {t}"))
                .unwrap_or_default();
            format!("cronjob/{} is valid{next}", c.name)
        }
        _ => format!("pod/{name} is valid"),
    };
    if uses.is_empty() {
        println!("{what}");
    } else {
        println!("{what} (uses {})", uses.join(", "));
    }
    Ok(0)
}
