//! A CNI network of the test's own: a bridge, a /24 and a network name no other running test
//! uses, written as a conflist for podctl's `--cni-conf-dir`, and what it leaves on the host
//! counted (bridge ports, IPAM reservations, iptables rules) so that tests can check a pod's
//! network is gone after it.
//!
//! Networks are numbered; a number is held by binding an abstract unix socket named after it,
//! which the kernel releases however the test process ends (no lock file to leave behind).

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The first two octets of every test subnet (`10.213.<n>.0/24`).
const PREFIX: &str = "10.213";
/// Where host-local keeps its reservations.
const IPAM_DIR: &str = "/var/lib/cni/networks";

/// One test's network.
pub struct TestNetwork {
    pub number: u8,
    pub name: String,
    pub bridge: String,
    /// The dir holding the conflist: podctl's `--cni-conf-dir`.
    pub conf_dir: PathBuf,
    _hold: UnixListener,
}

impl TestNetwork {
    /// A free network, its conflist written under `dir`.
    pub fn new(dir: &Path) -> TestNetwork {
        let (number, hold) = (1..=250u8)
            .find_map(|n| {
                let addr = SocketAddr::from_abstract_name(format!("podctl-test-net-{n}")).ok()?;
                UnixListener::bind_addr(&addr).ok().map(|l| (n, l))
            })
            .expect("a free test network number (250 in use?)");
        let name = format!("podctl-test-{number}");
        let bridge = format!("pdtest{number}");
        let net = TestNetwork {
            number,
            name,
            bridge,
            conf_dir: dir.join("net.d"),
            _hold: hold,
        };
        // A crashed earlier run may have left this number's bridge or reservations.
        net.remove_host_state();
        std::fs::create_dir_all(&net.conf_dir).expect("creating the CNI conf dir");
        let conflist = serde_json::json!({
            "cniVersion": "1.0.0",
            "name": net.name,
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": net.bridge,
                    "isGateway": true,
                    "ipMasq": true,
                    "hairpinMode": true,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": net.subnet()}]],
                        "routes": [{"dst": "0.0.0.0/0"}]
                    }
                },
                {"type": "portmap", "capabilities": {"portMappings": true}},
                {"type": "firewall"}
            ]
        });
        std::fs::write(
            net.conf_dir.join("10-test.conflist"),
            serde_json::to_vec_pretty(&conflist).unwrap(),
        )
        .expect("writing the test conflist");
        net
    }

    /// `10.213.<n>.0/24`.
    pub fn subnet(&self) -> String {
        format!("{PREFIX}.{}.0/24", self.number)
    }

    /// The bridge's address, which pods reach the host by.
    pub fn gateway(&self) -> String {
        self.address(1)
    }

    /// Host `n` of the subnet: host-local gives the network's first pod `.2`.
    pub fn address(&self, n: u8) -> String {
        format!("{PREFIX}.{}.{n}", self.number)
    }

    /// What pods of this network left on the host: interfaces on its bridge, address
    /// reservations, iptables rules naming the network or its addresses.
    pub fn leaks(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Ok(ports) = std::fs::read_dir(format!("/sys/class/net/{}/brif", self.bridge)) {
            out.extend(
                ports
                    .flatten()
                    .map(|p| format!("bridge port {}", p.file_name().to_string_lossy())),
            );
        }
        if let Ok(entries) = std::fs::read_dir(Path::new(IPAM_DIR).join(&self.name)) {
            out.extend(
                entries
                    .flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n != "lock" && !n.starts_with("last_reserved_ip"))
                    .map(|n| format!("address reservation {n}")),
            );
        }
        out.extend(
            self.rules()
                .into_iter()
                .map(|(t, r)| format!("iptables -t {t} {r}")),
        );
        out
    }

    /// The iptables rules (table, rule) of this network's pods.
    fn rules(&self) -> Vec<(&'static str, String)> {
        let marks = [
            format!("name: \\\"{}\\\"", self.name),
            format!("{PREFIX}.{}.", self.number),
        ];
        let mut out = Vec::new();
        for table in ["nat", "filter"] {
            let Ok(o) = Command::new("iptables")
                .args(["-w", "-t", table, "-S"])
                .output()
            else {
                continue;
            };
            for line in String::from_utf8_lossy(&o.stdout).lines() {
                if line.starts_with("-A ") && marks.iter().any(|m| line.contains(m.as_str())) {
                    out.push((table, line.to_owned()));
                }
            }
        }
        out
    }

    /// What a reboot does to the network: its iptables rules and its bridge (with the pods'
    /// interfaces) are gone; host-local's reservations, on disk, stay for DEL to release.
    pub fn reboot(&self) {
        self.remove_rules();
        if Path::new("/sys/class/net").join(&self.bridge).exists() {
            let _ = Command::new("ip")
                .args(["link", "del", &self.bridge])
                .output();
        }
    }

    /// Removes the network's pods' rules, and the per-pod chains (`CNI-<hash>`, `CNI-DN-...`)
    /// they lived in or jumped to, as a reboot (or the plugins' DEL) would.
    fn remove_rules(&self) {
        let shared =
            |c: &str| matches!(c, "CNI-FORWARD" | "CNI-ADMIN") || c.starts_with("CNI-HOSTPORT-");
        let mut chains = std::collections::BTreeSet::new();
        for (table, rule) in self.rules() {
            let args = shell_words(&rule[3..]);
            for (i, word) in args.iter().enumerate() {
                let names_chain = i == 0 || args.get(i.wrapping_sub(1)).is_some_and(|w| w == "-j");
                if names_chain && word.starts_with("CNI-") && !shared(word) {
                    chains.insert((table, word.clone()));
                }
            }
            let _ = Command::new("iptables")
                .args(["-w", "-t", table, "-D"])
                .args(&args)
                .output();
        }
        for (table, chain) in chains {
            let _ = Command::new("iptables")
                .args(["-w", "-t", table, "-F", &chain])
                .output();
            let _ = Command::new("iptables")
                .args(["-w", "-t", table, "-X", &chain])
                .output();
        }
    }

    /// Removes the bridge, the reservations dir and any rule of this network (after a failed
    /// test; a passing one has only the bridge and the empty dir left).
    fn remove_host_state(&self) {
        self.reboot();
        let _ = std::fs::remove_dir_all(Path::new(IPAM_DIR).join(&self.name));
    }
}

impl Drop for TestNetwork {
    fn drop(&mut self) {
        self.remove_host_state();
    }
}

/// Splits an `iptables -S` rule into its words, keeping quoted comments whole (unescaped).
fn shell_words(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let (mut quoted, mut escaped, mut any) = (false, false, false);
    for ch in s.chars() {
        match ch {
            _ if escaped => {
                word.push(ch);
                escaped = false;
            }
            '\\' if quoted => escaped = true,
            '"' => {
                quoted = !quoted;
                any = true;
            }
            ' ' if !quoted => {
                if any || !word.is_empty() {
                    out.push(std::mem::take(&mut word));
                }
                any = false;
            }
            _ => word.push(ch),
        }
    }
    if any || !word.is_empty() {
        out.push(word);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn iptables_rules_split_into_words() {
        assert_eq!(
            super::shell_words(
                r#"POSTROUTING -s 10.213.1.2/32 -m comment --comment "name: \"n\" id: \"x\"" -j CNI-1"#
            ),
            [
                "POSTROUTING",
                "-s",
                "10.213.1.2/32",
                "-m",
                "comment",
                "--comment",
                "name: \"n\" id: \"x\"",
                "-j",
                "CNI-1"
            ]
        );
    }
}
