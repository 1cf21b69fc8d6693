//! The pod network options shared by `run` and `daemon`.

use std::path::PathBuf;

use podctl_runtime::network::{NetworkChoice, NetworkOptions, DEFAULT_BIN_DIRS, DEFAULT_CONF_DIR};

/// Which CNI network pods join, and where networks and plugins are found.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct NetworkArgs {
    /// Network pods join: a CNI network by name (from --cni-conf-dir), or `none` for
    /// loopback only. Default: podctl's own network `podctl` (bridge podctl0, subnet
    /// 10.85.0.0/16, outbound NAT, hostPorts), written to the conf dir as
    /// 87-podctl.conflist when missing; with --cni-conf-dir alone, the first network there
    #[arg(long, env = "PODCTL_NETWORK", value_name = "NAME|none")]
    pub network: Option<String>,
    /// CNI network configuration dir [default: /etc/cni/net.d]
    #[arg(long, env = "PODCTL_CNI_CONF_DIR", value_name = "DIR")]
    pub cni_conf_dir: Option<PathBuf>,
    /// CNI plugin dirs, searched in order (repeat, or separate with ':')
    /// [default: /usr/lib/cni:/opt/cni/bin]
    #[arg(
        long,
        env = "PODCTL_CNI_BIN_DIR",
        value_name = "DIR",
        value_delimiter = ':'
    )]
    pub cni_bin_dir: Vec<PathBuf>,
}

impl NetworkArgs {
    /// The runtime's network options.
    pub fn options(&self) -> NetworkOptions {
        let choice = match self.network.as_deref() {
            Some("none") => NetworkChoice::None,
            Some(name) => NetworkChoice::Named(name.to_owned()),
            None if self.cni_conf_dir.is_some() => NetworkChoice::FirstInDir,
            None => NetworkChoice::Default,
        };
        NetworkOptions {
            choice,
            conf_dir: self
                .cni_conf_dir
                .clone()
                .unwrap_or_else(|| PathBuf::from(DEFAULT_CONF_DIR)),
            bin_dirs: if self.cni_bin_dir.is_empty() {
                DEFAULT_BIN_DIRS.iter().map(PathBuf::from).collect()
            } else {
                self.cni_bin_dir.clone()
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_choice_follows_the_flags() {
        let choice = |network: Option<&str>, dir: Option<&str>| {
            NetworkArgs {
                network: network.map(Into::into),
                cni_conf_dir: dir.map(Into::into),
                cni_bin_dir: Vec::new(),
            }
            .options()
            .choice
        };
        assert_eq!(choice(None, None), NetworkChoice::Default);
        assert_eq!(choice(Some("none"), Some("/x")), NetworkChoice::None);
        assert_eq!(choice(None, Some("/x")), NetworkChoice::FirstInDir);
        assert_eq!(
            choice(Some("lan"), None),
            NetworkChoice::Named("lan".into())
        );
        let opts = NetworkArgs::default().options();
        assert_eq!(opts.conf_dir, PathBuf::from("/etc/cni/net.d"));
        assert_eq!(opts.bin_dirs.len(), 2);
    }
}
