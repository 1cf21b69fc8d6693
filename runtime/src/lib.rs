//! podctl's library: Kubernetes `v1 Pod` semantics on one host, driven over containerd's gRPC API.

pub mod cgroups;
pub mod claims;
pub mod containerd;
pub mod cron;
pub mod daemon;
pub mod downward;
pub mod exec;
pub mod expand;
pub mod image;
pub mod jobs;
pub mod lifecycle;
pub mod manifest;
pub mod network;
pub mod oci;
pub mod pause;
pub mod podlogs;
pub mod pods;
pub(crate) mod probe;
pub mod reference;
pub mod replicas;
pub mod sandbox;
pub mod seccomp;
pub mod staticpods;
pub mod status;

/// An error and its causes on one line, `: `-separated, leaving out a cause whose text the
/// line already holds (some messages embed their source, some only return it).
pub fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    let mut line = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !line.contains(&text) {
            line = format!("{line}: {text}");
        }
        source = cause.source();
    }
    line
}

#[cfg(test)]
mod tests {
    #[derive(Debug, thiserror::Error)]
    #[error("reading {path}: {source}")]
    struct Embeds {
        path: &'static str,
        source: std::io::Error,
    }

    #[derive(Debug, thiserror::Error)]
    #[error("loading the pod")]
    struct Wraps(#[source] Embeds);

    #[test]
    fn causes_are_shown_once() {
        let e = Wraps(Embeds {
            path: "pod.yaml",
            source: std::io::Error::other("disk on fire"),
        });
        assert_eq!(
            super::describe(&e),
            "loading the pod: reading pod.yaml: disk on fire"
        );
    }
}
