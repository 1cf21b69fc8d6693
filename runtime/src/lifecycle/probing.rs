//! A container's probes and lifecycle hooks, read from its spec once, and run against one
//! attempt of it: hooks as single actions, probes as periodic workers reporting verdicts to
//! the container's runner.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Container, Probe};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::state::{EventType, Shared};
use super::LifecycleError;
use crate::containerd::Client;
use crate::probe::{self, Action, Outcome, Settings, Target, Tracker};

/// Which probe a verdict comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ProbeKind {
    Startup,
    Liveness,
    Readiness,
}

impl ProbeKind {
    fn name(self) -> &'static str {
        match self {
            ProbeKind::Startup => "Startup",
            ProbeKind::Liveness => "Liveness",
            ProbeKind::Readiness => "Readiness",
        }
    }
}

/// A probe: what it does and when.
#[derive(Debug, Clone)]
pub(crate) struct ProbeSpec {
    pub action: Action,
    pub settings: Settings,
}

/// Everything a container runs besides its own process.
#[derive(Debug, Clone, Default)]
pub(crate) struct Handlers {
    pub post_start: Option<Action>,
    pub pre_stop: Option<Action>,
    pub startup: Option<ProbeSpec>,
    pub liveness: Option<ProbeSpec>,
    pub readiness: Option<ProbeSpec>,
}

impl Handlers {
    /// Reads the container's hooks and probes; `path` is the container's field path
    /// (`spec.containers[0]`), for errors such as a named port the container does not have.
    pub fn from_container(c: &Container, path: &str) -> Result<Self, LifecycleError> {
        let wrap = |field: &str| {
            let at = format!("{path}.{field}");
            move |source| LifecycleError::Handler { path: at, source }
        };
        let probe = |p: &Option<Probe>, field: &str| -> Result<Option<ProbeSpec>, LifecycleError> {
            p.as_ref()
                .map(|p| {
                    Ok(ProbeSpec {
                        action: Action::from_probe(p, c).map_err(wrap(field))?,
                        settings: Settings::from_probe(p),
                    })
                })
                .transpose()
        };
        let lifecycle = c.lifecycle.as_ref();
        let hook = |field: &str| -> Result<Option<Action>, LifecycleError> {
            let handler = match field {
                "postStart" => lifecycle.and_then(|l| l.post_start.as_ref()),
                _ => lifecycle.and_then(|l| l.pre_stop.as_ref()),
            };
            handler
                .map(|h| Action::from_hook(h, c).map_err(wrap(&format!("lifecycle.{field}"))))
                .transpose()
        };
        Ok(Self {
            post_start: hook("postStart")?,
            pre_stop: hook("preStop")?,
            startup: probe(&c.startup_probe, "startupProbe")?,
            liveness: probe(&c.liveness_probe, "livenessProbe")?,
            readiness: probe(&c.readiness_probe, "readinessProbe")?,
        })
    }
}

/// One attempt of a container, as actions need it: owned, so a spawned task can hold it.
#[derive(Clone)]
pub(crate) struct AttemptTarget {
    pub client: Client,
    pub container_id: String,
    pub process: oci_spec::runtime::Process,
    pub io_dir: PathBuf,
    pub netns: Option<PathBuf>,
}

impl AttemptTarget {
    fn target(&self) -> Target<'_> {
        Target {
            client: &self.client,
            container_id: &self.container_id,
            process: &self.process,
            io_dir: &self.io_dir,
            netns: self.netns.as_deref(),
        }
    }

    /// Runs one hook action on its own task, bounded by `timeout`.
    pub fn spawn_action(&self, action: Action, timeout: Duration) -> JoinHandle<Outcome> {
        let me = self.clone();
        tokio::spawn(async move { probe::execute(&action, &me.target(), timeout).await })
    }

    /// Runs a probe every period, the first time `initialDelaySeconds` after the container
    /// `started`, and sends each verdict change to `verdicts`; a startup probe ends with its
    /// first success. Every failed try is an `Unhealthy` event, as the kubelet records them.
    pub fn spawn_probe(
        &self,
        kind: ProbeKind,
        spec: ProbeSpec,
        started: Instant,
        shared: Arc<Shared>,
        container: String,
        verdicts: mpsc::Sender<(ProbeKind, bool)>,
    ) -> JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            let settings = spec.settings;
            let mut tracker = Tracker::new(&settings);
            tokio::time::sleep_until((started + settings.initial_delay).into()).await;
            loop {
                let outcome = probe::execute(&spec.action, &me.target(), settings.timeout).await;
                match &outcome {
                    Outcome::Success => {}
                    Outcome::Failure(msg) => shared.event(
                        EventType::Warning,
                        "Unhealthy",
                        Some(&container),
                        format!("{} probe failed: {msg}", kind.name()),
                    ),
                    Outcome::Error(msg) => shared.event(
                        EventType::Warning,
                        "Unhealthy",
                        Some(&container),
                        format!("{} probe errored: {msg}", kind.name()),
                    ),
                }
                if let Some(verdict) = tracker.record(&outcome) {
                    if verdicts.send((kind, verdict)).await.is_err() {
                        return;
                    }
                    if kind == ProbeKind::Startup && verdict {
                        return;
                    }
                }
                tokio::time::sleep(settings.period).await;
            }
        })
    }
}
