use std::path::PathBuf;

use podctl_runtime::image::{self, ImageError, ImportOptions, ImportStep, Progress};
use podctl_runtime::reference;

use crate::output::{print_data, table};
use crate::{Format, Global};

/// `podctl image ...`
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Import an OCI image-layout or `docker save` tarball and unpack it for running
    Import {
        /// The tarball (plain or gzip-compressed)
        file: PathBuf,
        /// Name to record the image under, overriding the names in the archive
        #[arg(long)]
        name: Option<String>,
        #[arg(short, long, value_enum, default_value_t = Format::Table)]
        output: Format,
        /// No progress lines on stderr
        #[arg(short, long)]
        quiet: bool,
    },
    /// Pull an image from its registry, with progress, and unpack it for running.
    ///
    /// Layers already in containerd are not downloaded again; the others download
    /// concurrently, are checked against their digest and size, and resume where they broke
    /// off when a connection drops. A failed or interrupted pull records nothing. Registries on
    /// loopback are spoken to over plain HTTP, others over HTTPS unless named with
    /// --insecure-registry.
    Pull {
        /// Image reference: name[:tag] or name@sha256:digest (`busybox` means
        /// docker.io/library/busybox:latest)
        image: String,
        #[command(flatten)]
        registry: super::pulling::RegistryArgs,
        /// Pull secrets (names of files in --pull-secrets-dir) to try before the host's
        /// credentials, as a pod's imagePullSecrets are
        #[arg(long = "pull-secret", value_name = "NAME")]
        pull_secrets: Vec<String>,
        #[arg(short, long, value_enum, default_value_t = Format::Table)]
        output: Format,
        /// No progress on stderr
        #[arg(short, long)]
        quiet: bool,
    },
    /// List images
    #[command(alias = "list")]
    Ls {
        #[arg(short, long, value_enum, default_value_t = Format::Table)]
        output: Format,
    },
    /// Remove images (their content and snapshots go once nothing else uses them)
    #[command(alias = "remove")]
    Rm {
        /// Image references (`busybox` means docker.io/library/busybox:latest)
        #[arg(required = true)]
        images: Vec<String>,
    },
}

pub async fn run(g: &Global, cmd: Command) -> anyhow::Result<u8> {
    let client = super::connect(g).await?;
    match cmd {
        Command::Import {
            file,
            name,
            output,
            quiet,
        } => {
            let opts = ImportOptions {
                name,
                snapshotter: image::DEFAULT_SNAPSHOTTER.to_string(),
                progress: if quiet {
                    Progress::default()
                } else {
                    Progress::new(show_step)
                },
                ..Default::default()
            };
            let imported =
                interruptible(&opts.cancel, "import", image::import(&client, &file, &opts)).await?;
            match output {
                Format::Table => {
                    for i in &imported {
                        println!("imported {} ({}, {})", i.name, i.digest, count(i.layers, "layer"));
                    }
                }
                f => print_data(
                    f,
                    &imported
                        .iter()
                        .map(|i| serde_json::json!({"name": i.name, "digest": i.digest, "layers": i.layers, "size": i.size}))
                        .collect::<Vec<_>>(),
                )?,
            }
            Ok(0)
        }
        Command::Pull {
            image: reference,
            registry,
            pull_secrets,
            output,
            quiet,
        } => {
            let name = reference::normalize(&reference).map_err(super::invalid)?;
            let opts = image::PullOptions {
                registries: registry.config(),
                pull_secrets,
                progress: super::pulling::progress(quiet),
                ..Default::default()
            };
            let pulled =
                interruptible(&opts.cancel, "pull", image::pull(&client, &name, &opts)).await?;
            match output {
                Format::Table => println!(
                    "pulled {} ({}, {}, {}, {} downloaded)",
                    pulled.name,
                    pulled.digest,
                    count(pulled.layers, "layer"),
                    human_size(pulled.size),
                    human_size(pulled.downloaded)
                ),
                f => print_data(
                    f,
                    &serde_json::json!({"name": pulled.name, "digest": pulled.digest, "layers": pulled.layers, "size": pulled.size, "downloaded": pulled.downloaded}),
                )?,
            }
            Ok(0)
        }
        Command::Ls { output } => {
            let images = image::list(&client).await?;
            match output {
                Format::Table => {
                    let rows: Vec<Vec<String>> = images
                        .iter()
                        .map(|i| {
                            vec![
                                reference::familiar(&i.name),
                                short_digest(&i.digest),
                                human_size(i.size),
                            ]
                        })
                        .collect();
                    print!("{}", table(&["IMAGE", "DIGEST", "SIZE"], &rows));
                }
                f => print_data(
                    f,
                    &images
                        .iter()
                        .map(|i| serde_json::json!({"name": i.name, "digest": i.digest, "size": i.size}))
                        .collect::<Vec<_>>(),
                )?,
            }
            Ok(0)
        }
        Command::Rm { images } => {
            let mut failed = false;
            for r in &images {
                let name = reference::normalize(r).map_err(super::invalid)?;
                match image::remove(&client, &name).await {
                    Ok(()) => println!("{name}"),
                    Err(e) => {
                        eprintln!("podctl: {e}");
                        failed = true;
                    }
                }
            }
            Ok(u8::from(failed))
        }
    }
}

/// Runs an image operation that a stop signal cancels (through `cancel`): it then unwinds,
/// and podctl exits 130.
async fn interruptible<T>(
    cancel: &image::Cancel,
    what: &str,
    op: impl std::future::Future<Output = Result<T, ImageError>>,
) -> anyhow::Result<T> {
    let interrupted = {
        let (cancel, what) = (cancel.clone(), what.to_string());
        tokio::spawn(async move {
            super::wait_for_stop_signal().await;
            eprintln!("podctl: interrupted: removing what the {what} wrote");
            cancel.cancel();
        })
    };
    let result = op.await;
    interrupted.abort();
    match result {
        Err(e @ (ImageError::Cancelled { .. } | ImageError::PullCancelled { .. })) => {
            Err(crate::Exit {
                code: super::EXIT_INTERRUPTED,
                error: e.into(),
            }
            .into())
        }
        other => Ok(other?),
    }
}

/// One line per import step on stderr, so a long import shows where it is.
fn show_step(step: &ImportStep) {
    match step {
        ImportStep::Verified { blobs, bytes } => {
            eprintln!(
                "verified {} ({})",
                count(*blobs, "blob"),
                human_size(*bytes)
            )
        }
        ImportStep::Blob {
            digest,
            size,
            stored,
        } => eprintln!(
            "blob {} {} {}",
            short_digest(digest),
            human_size(*size),
            if *stored {
                "written"
            } else {
                "already present"
            }
        ),
        ImportStep::Unpacked { image, layers } => {
            eprintln!(
                "unpacked {} ({})",
                reference::familiar(image),
                count(*layers, "layer")
            )
        }
    }
}

fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

pub(crate) fn short_digest(d: &str) -> String {
    let hex = d.strip_prefix("sha256:").unwrap_or(d);
    hex.chars().take(12).collect()
}

pub(crate) fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}
