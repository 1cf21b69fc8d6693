use podctl_runtime::lifecycle;

use crate::Global;

/// Arguments of `podctl rm`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Names of the pods to remove
    #[arg(required = true)]
    pods: Vec<String>,
    /// Kill the pod's containers first if they still run
    #[arg(short, long)]
    force: bool,
}

pub async fn run(g: &Global, args: Args) -> anyhow::Result<u8> {
    let client = super::connect(g).await?;
    let mut failed = false;
    for pod in &args.pods {
        match lifecycle::remove(&client, &g.root, pod, args.force).await {
            Ok(()) => println!("{pod}"),
            Err(e) => {
                eprintln!("podctl: {e}");
                failed = true;
            }
        }
    }
    Ok(u8::from(failed))
}
