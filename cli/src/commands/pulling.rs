//! Image pulls as the CLI shows and configures them: the registry options shared by
//! `image pull`, `run` and `daemon`, and the progress display (a bar per layer on a terminal,
//! a line per layer otherwise).

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use podctl_runtime::image::auth::CredentialSources;
use podctl_runtime::image::{Progress, PullStep, RegistryConfig};
use podctl_runtime::reference;

use super::image::{human_size, short_digest};

/// Where pull credentials come from and which registries speak plain HTTP.
#[derive(Debug, Clone, clap::Args)]
pub struct RegistryArgs {
    /// Registry credentials in Docker's config format (`auths` with base64 `auth`, or
    /// username/password); by default $DOCKER_CONFIG/config.json or ~/.docker/config.json
    /// when it exists
    #[arg(long, env = "REGISTRY_AUTH_FILE", value_name = "FILE")]
    pub authfile: Option<PathBuf>,
    /// Registry (HOST[:PORT]) to pull from over plain HTTP (repeat, or separate with
    /// commas); registries on loopback always are
    #[arg(
        long = "insecure-registry",
        env = "PODCTL_INSECURE_REGISTRIES",
        value_name = "HOST[:PORT]",
        value_delimiter = ','
    )]
    pub insecure_registries: Vec<String>,
    /// Directory of the pull secrets a pod names in imagePullSecrets: the secret `regcred`
    /// is the file <DIR>/regcred.json, in Docker's config format (what a
    /// kubernetes.io/dockerconfigjson Secret holds)
    #[arg(
        long,
        env = "PODCTL_PULL_SECRETS_DIR",
        value_name = "DIR",
        default_value = "/etc/podctl/pull-secrets"
    )]
    pub pull_secrets_dir: PathBuf,
}

impl RegistryArgs {
    /// The runtime's registry configuration.
    pub fn config(&self) -> RegistryConfig {
        RegistryConfig {
            credentials: CredentialSources {
                authfile: self.authfile.clone(),
                pull_secrets_dir: Some(self.pull_secrets_dir.clone()),
            },
            insecure: self.insecure_registries.clone(),
        }
    }
}

/// Pull progress on stderr: nothing when `quiet`, bars on a terminal, lines otherwise.
pub fn progress(quiet: bool) -> Progress<PullStep> {
    if quiet {
        return Progress::default();
    }
    if std::io::stderr().is_terminal() {
        let bars = Bars {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
            layers: Mutex::new(HashMap::new()),
        };
        let bars = Arc::new(bars);
        Progress::new(move |step| bars.show(step))
    } else {
        Progress::new(show_line)
    }
}

/// One line per layer, for logs and pipes.
fn show_line(step: &PullStep) {
    match step {
        PullStep::Resolved {
            reference,
            digest,
            platform,
            layers,
        } => {
            eprintln!(
                "{}",
                resolved_line(reference, digest, platform.as_deref(), layers.len())
            );
            for l in layers.iter().filter(|l| l.present) {
                eprintln!(
                    "layer {} {} already present",
                    short_digest(&l.digest),
                    human_size(l.size)
                );
            }
        }
        PullStep::Downloading { .. } => {}
        PullStep::Downloaded {
            digest,
            size,
            elapsed,
        } => eprintln!("{}", downloaded_line(digest, *size, *elapsed)),
        PullStep::Unpacked { layers } => eprintln!("unpacked {}", count_layers(*layers)),
    }
}

fn resolved_line(reference: &str, digest: &str, platform: Option<&str>, layers: usize) -> String {
    let platform = platform.map(|p| format!(" for {p}")).unwrap_or_default();
    format!(
        "pulling {} ({}{platform}, {})",
        reference::familiar(reference),
        digest,
        count_layers(layers)
    )
}

fn downloaded_line(digest: &str, size: u64, elapsed: std::time::Duration) -> String {
    let secs = elapsed.as_secs_f64().max(0.001);
    format!(
        "layer {} {} downloaded in {:.2}s ({}/s)",
        short_digest(digest),
        human_size(size),
        secs,
        human_size((size as f64 / secs) as u64)
    )
}

fn count_layers(n: usize) -> String {
    if n == 1 {
        "1 layer".into()
    } else {
        format!("{n} layers")
    }
}

/// A bar per layer being downloaded, with bytes and rate.
struct Bars {
    multi: MultiProgress,
    layers: Mutex<HashMap<String, ProgressBar>>,
}

impl Bars {
    fn show(&self, step: &PullStep) {
        let mut layers = self.layers.lock().unwrap_or_else(|e| e.into_inner());
        match step {
            PullStep::Resolved {
                reference,
                digest,
                platform,
                layers: planned,
            } => {
                let _ = self.multi.println(resolved_line(
                    reference,
                    digest,
                    platform.as_deref(),
                    planned.len(),
                ));
                let style = ProgressStyle::with_template(
                    "{prefix} [{bar:30}] {bytes:>10}/{total_bytes:10} {bytes_per_sec:>12} {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> ");
                for l in planned {
                    let bar = self.multi.add(ProgressBar::new(l.size));
                    bar.set_style(style.clone());
                    bar.set_prefix(format!("layer {}", short_digest(&l.digest)));
                    if l.present {
                        bar.set_position(l.size);
                        bar.finish_with_message("already present");
                    }
                    layers.insert(l.digest.clone(), bar);
                }
            }
            PullStep::Downloading { digest, done, .. } => {
                if let Some(bar) = layers.get(digest) {
                    bar.set_position(*done);
                }
            }
            PullStep::Downloaded { digest, size, .. } => {
                if let Some(bar) = layers.get(digest) {
                    bar.set_position(*size);
                    bar.finish_with_message("done");
                }
            }
            PullStep::Unpacked { layers: n } => {
                for bar in layers.values() {
                    if !bar.is_finished() {
                        bar.finish();
                    }
                }
                let _ = self.multi.println(format!("unpacked {}", count_layers(*n)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_name_the_layer_its_size_and_rate() {
        let line = downloaded_line(
            "sha256:0123456789abcdef0123",
            8 << 20,
            std::time::Duration::from_millis(500),
        );
        assert_eq!(
            line,
            "layer 0123456789ab 8.0 MiB downloaded in 0.50s (16.0 MiB/s)"
        );
        assert_eq!(
            resolved_line("127.0.0.1:5000/app:1", "sha256:ab", Some("linux/amd64"), 1),
            "pulling 127.0.0.1:5000/app:1 (sha256:ab for linux/amd64, 1 layer)"
        );
    }
}
