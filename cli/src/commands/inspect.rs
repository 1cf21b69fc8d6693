//! `podctl inspect`: one pod as Kubernetes shows it.

use podctl_runtime::pods;

use crate::output::print_data;
use crate::{Format, Global};

/// Arguments of `podctl inspect`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Name of the pod (running or finished)
    pod: String,
    /// yaml (the default, as `kubectl get pod NAME -o yaml` users expect) or json: a v1 Pod
    /// object, its manifest with `.status` (phase, conditions, container statuses), live
    /// while the pod runs and final after
    #[arg(short, long, value_enum, default_value_t = Output::Yaml)]
    output: Output,
}

/// The formats `inspect` prints in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Output {
    Yaml,
    Json,
}

pub async fn run(g: &Global, args: Args) -> anyhow::Result<u8> {
    let record = pods::get(&g.root, &g.namespace, &args.pod)?;
    let format = match args.output {
        Output::Yaml => Format::Yaml,
        Output::Json => Format::Json,
    };
    print_data(format, &record.to_kubernetes(&g.namespace))?;
    Ok(0)
}
