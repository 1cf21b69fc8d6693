//! How pods are supervised: the crash-loop back-off and log rotation. Both `podctl run` and
//! `podctl daemon` take these options; a pod run with `run -d` gets the daemon's.

use std::path::PathBuf;
use std::time::Duration;

use podctl_runtime::lifecycle::{BackoffPolicy, RunOptions};
use podctl_runtime::podlogs::{self, LogRotation};

/// Options of the pods' supervision and image pulls, shared by `run` and `daemon`.
#[derive(Debug, Clone, clap::Args)]
pub struct SupervisionArgs {
    #[command(flatten)]
    pub registry: super::pulling::RegistryArgs,
    #[command(flatten)]
    pub network: super::networking::NetworkArgs,
    /// First delay of the crash-loop back-off before a failed container is restarted
    /// (Kubernetes: 10s); doubles after every restart up to --backoff-cap
    #[arg(long, env = "PODCTL_BACKOFF_BASE", default_value = "10s", value_parser = super::parse_duration)]
    pub backoff_base: Duration,
    /// Longest delay of the crash-loop back-off (Kubernetes: 5m); a container that ran for
    /// twice this long starts over from --backoff-base
    #[arg(long, env = "PODCTL_BACKOFF_CAP", default_value = "5m", value_parser = super::parse_duration)]
    pub backoff_cap: Duration,
    /// Size past which a container's log file is rotated, as a Kubernetes quantity (10Mi,
    /// 512Ki, bytes); the kubelet's containerLogMaxSize
    #[arg(long, env = "PODCTL_LOG_MAX_SIZE", default_value = "10Mi", value_parser = podlogs::parse_max_size)]
    pub log_max_size: u64,
    /// Log files kept per container run, the current one included (at least 2); the
    /// kubelet's containerLogMaxFiles
    #[arg(long, env = "PODCTL_LOG_MAX_FILES", default_value_t = podlogs::DEFAULT_MAX_FILES, value_parser = clap::value_parser!(u32).range(2..))]
    pub log_max_files: u32,
}

impl SupervisionArgs {
    /// The runtime's options for pods kept under `root`; refuses (exit 2) a back-off whose
    /// base is zero or above its cap.
    pub fn run_options(&self, root: PathBuf, remove: bool) -> anyhow::Result<RunOptions> {
        if self.backoff_base.is_zero() || self.backoff_cap < self.backoff_base {
            return Err(super::invalid(anyhow::anyhow!(
                "--backoff-base must be above zero and at most --backoff-cap"
            )));
        }
        Ok(RunOptions {
            root,
            remove,
            snapshotter: podctl_runtime::image::DEFAULT_SNAPSHOTTER.to_string(),
            backoff: BackoffPolicy {
                base: self.backoff_base,
                cap: self.backoff_cap,
            },
            log_rotation: LogRotation {
                max_size: self.log_max_size,
                max_files: self.log_max_files,
            },
            registries: self.registry.config(),
            pull_progress: Default::default(),
            pull_cancel: Default::default(),
            network: self.network.options(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(base: u64, cap: u64) -> SupervisionArgs {
        SupervisionArgs {
            registry: crate::commands::pulling::RegistryArgs {
                authfile: None,
                insecure_registries: vec![],
                pull_secrets_dir: "/etc/podctl/pull-secrets".into(),
            },
            network: crate::commands::networking::NetworkArgs {
                network: None,
                cni_conf_dir: None,
                cni_bin_dir: Vec::new(),
            },
            backoff_base: Duration::from_millis(base),
            backoff_cap: Duration::from_millis(cap),
            log_max_size: 1024,
            log_max_files: 3,
        }
    }

    #[test]
    fn the_backoff_is_checked_once_for_run_and_daemon() {
        let opts = args(200, 2000).run_options("/r".into(), true).unwrap();
        assert_eq!(opts.backoff.base, Duration::from_millis(200));
        assert_eq!(opts.backoff.cap, Duration::from_secs(2));
        assert_eq!(opts.log_rotation.max_size, 1024);
        assert_eq!(opts.log_rotation.max_files, 3);
        assert!(opts.remove);
        assert!(args(200, 200).run_options("/r".into(), false).is_ok());
        for (base, cap) in [(0, 1000), (2000, 1000)] {
            let e = args(base, cap).run_options("/r".into(), false).unwrap_err();
            assert_eq!(e.downcast_ref::<crate::Exit>().map(|x| x.code), Some(2));
        }
    }
}
