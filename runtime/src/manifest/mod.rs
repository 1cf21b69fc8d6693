//! The pod manifest: reading a `v1 Pod` YAML (or JSON) strictly, and refusing before anything
//! is created what Kubernetes would reject or podctl cannot honour yet.
//!
//! Layers, each reporting every problem it finds rather than the first:
//! - [`parse`]: YAML syntax, one document, `apiVersion: v1` / `kind: Pod`, no unknown keys
//!   (`k8s-openapi` would drop them silently), every value of the right type;
//! - [`validate`]: the API server's rules (kubectl's wording, see K8S-SEMANTICS §10) plus
//!   podctl's own limits: a field podctl does not implement is refused with its path
//!   instead of being ignored.
//!
//! `status` in a manifest (as `kubectl get -o yaml` exports it) is accepted and ignored, as
//! `kubectl apply` ignores it; so is the metadata the API server sets on create (`uid`,
//! `creationTimestamp`, `generation`, `managedFields`, ...): podctl assigns its own uid.

mod error;
mod objects;
mod parse;
mod quantity;
mod sources;
mod sysctls;
mod unsupported;
mod validate;
mod workloads;

use std::io::Read;
use std::path::Path;

pub use error::{FieldError, ManifestError};
pub use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
pub use objects::Objects;
pub use quantity::{quantity_bytes, quantity_milli, QuantityError};
pub use sysctls::with_dots as sysctl_with_dots;
pub use workloads::{random_suffix, seeded_suffix, Concurrency, Controller, CronRules, JobRules};

/// The text of a manifest file (stdin when path is "-") and the name errors give it.
pub fn read(path: &Path) -> Result<(String, String), ManifestError> {
    let read_error = |source| ManifestError::Read {
        path: path.to_owned(),
        source,
    };
    if path.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(read_error)?;
        Ok((text, "<stdin>".to_string()))
    } else {
        let text = std::fs::read_to_string(path).map_err(read_error)?;
        Ok((text, path.display().to_string()))
    }
}

/// What one manifest file (or several, merged) holds: at most one Pod and the objects it
/// may draw on, each validated on its own.
#[derive(Debug, Default, Clone)]
pub struct Bundle {
    /// The pod (a workload's template), what made it, and where it was given.
    pub pod: Option<(Pod, Controller, String)>,
    pub objects: Objects,
    /// PersistentVolumeClaims by name: local directories kept on this host.
    pub claims: std::collections::BTreeMap<String, PersistentVolumeClaim>,
    /// Cluster objects with no meaning on one host, skipped with a warning.
    pub skipped: Vec<Skipped>,
    /// Where each object was given (`Kind/name` → location), for duplicate errors.
    origins: std::collections::BTreeMap<String, String>,
}

/// An object skipped: a kind podctl has no use for on one host (a Service ...).
#[derive(Debug, Clone)]
pub struct Skipped {
    pub location: String,
    pub kind: String,
    pub name: String,
}

/// A pod ready to run: valid, and every ConfigMap and Secret it refers to given (only
/// those are kept).
#[derive(Debug, Clone)]
pub struct RunnablePod {
    /// The pod to run, named (and labelled) as its controller names its pods.
    pub pod: Pod,
    /// The pod as given (a workload's template) and what made it, for the pods to come:
    /// a Job's next pod, the daemon's name for a file's pod.
    pub template: Pod,
    pub controller: Controller,
    pub objects: Objects,
    /// Every PersistentVolumeClaim given with the pod (as `kubectl apply` creates every
    /// object of a file), by name; a claim the pod uses that is not here must exist on
    /// the host already.
    pub claims: std::collections::BTreeMap<String, PersistentVolumeClaim>,
}

impl RunnablePod {
    /// The same pod named anew: a Job's next pod, or the daemon's stable name for a
    /// file's pod (`suffix` from [`seeded_suffix`]).
    pub fn renamed(&self, suffix: &str) -> RunnablePod {
        RunnablePod {
            pod: self.controller.pod(&self.template, suffix),
            ..self.clone()
        }
    }

    /// Refuses more than one replica: one host runs one (unless asked for every replica,
    /// [`RunnablePod::replicas_fit`]).
    pub fn one_replica(&self) -> Result<(), ManifestError> {
        match self.controller.replicas() {
            1 => Ok(()),
            n => Err(self.invalid(vec![FieldError::new(
                "spec.replicas",
                format!(
                    "Invalid value: {n}: podctl runs one replica on this host (set replicas: 1, \
                     or run every replica in the foreground with `podctl run --all-replicas`)"
                ),
            )])),
        }
    }

    /// With every replica on this host, the pods share its ports: a template that binds a
    /// host port (`hostPort`, or any port with `hostNetwork`) cannot run more than one.
    pub fn replicas_fit(&self) -> Result<(), ManifestError> {
        let n = self.controller.replicas();
        let Some(spec) = self.template.spec.as_ref().filter(|_| n > 1) else {
            return Ok(());
        };
        let errors: Vec<FieldError> = validate::host_bound_ports(spec)
            .map(|(_, path, _, port)| {
                FieldError::new(
                    format!("spec.template.{path}.hostPort"),
                    format!(
                        "Invalid value: {port}: {n} replicas on one host cannot share a host port"
                    ),
                )
            })
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(self.invalid(errors))
        }
    }

    /// Every replica: this pod, then the others named as the controller names them.
    pub fn replica_pods(&self) -> Vec<RunnablePod> {
        let mut pods = vec![self.clone()];
        while pods.len() < self.controller.replicas() as usize {
            let pod = self.renamed(&random_suffix());
            if !pods
                .iter()
                .any(|p| p.pod.metadata.name == pod.pod.metadata.name)
            {
                pods.push(pod);
            }
        }
        pods
    }

    fn invalid(&self, errors: Vec<FieldError>) -> ManifestError {
        let (kind, name) = self.controller.owner().unwrap_or(("Pod", ""));
        ManifestError::Invalid {
            kind,
            name: name.to_owned(),
            errors,
        }
    }
}

impl Bundle {
    /// Only its ConfigMaps, Secrets and claims (what a manifests dir shares).
    pub fn objects_only(&self) -> Bundle {
        Bundle {
            pod: None,
            skipped: Vec::new(),
            ..self.clone()
        }
    }

    /// Only its pod (a file's pod, to be given the dir's objects).
    pub fn pod_only(self) -> Bundle {
        Bundle {
            pod: self.pod,
            ..Bundle::default()
        }
    }

    /// Adds what `other` holds, refusing a second pod or object of one kind and name.
    pub fn merge(&mut self, other: Bundle) -> Result<(), ManifestError> {
        if let Some((pod, controller, location)) = other.pod {
            if let Some((_, _, first)) = &self.pod {
                return Err(ManifestError::SeveralWorkloads {
                    first: first.clone(),
                    second: location,
                });
            }
            self.pod = Some((pod, controller, location));
        }
        for (key, location) in other.origins {
            self.note_origin(&key, location)?;
        }
        self.objects.config_maps.extend(other.objects.config_maps);
        self.objects.secrets.extend(other.objects.secrets);
        self.claims.extend(other.claims);
        self.skipped.extend(other.skipped);
        Ok(())
    }

    /// Records where `Kind/name` was given, refusing it a second time.
    fn note_origin(&mut self, key: &str, location: String) -> Result<(), ManifestError> {
        if let Some(first) = self.origins.get(key) {
            let (kind, name) = key.split_once('/').unwrap_or((key, ""));
            return Err(ManifestError::Duplicate {
                kind: kind.to_owned(),
                name: name.to_owned(),
                first: first.clone(),
                second: location,
            });
        }
        self.origins.insert(key.to_owned(), location);
        Ok(())
    }

    /// One warning line per skipped object.
    pub fn warnings(&self) -> Vec<String> {
        self.skipped
            .iter()
            .map(|s| {
                format!(
                    "{}: skipped {} {:?}: it has no meaning for pods on one host",
                    s.location, s.kind, s.name
                )
            })
            .collect()
    }

    /// `--strict`: a skipped object is an error instead of a warning.
    pub fn refuse_skipped(&self) -> Result<(), ManifestError> {
        let mut errors: Vec<ManifestError> = self
            .skipped
            .iter()
            .map(|s| ManifestError::Skipped {
                file: s.location.clone(),
                kind: s.kind.clone(),
                name: s.name.clone(),
            })
            .collect();
        match errors.len() {
            0 => Ok(()),
            1 => Err(errors.remove(0)),
            _ => Err(ManifestError::Several(errors)),
        }
    }

    /// Refuses anything but `kind` objects: what a `--configmap`/`--secret` file may hold.
    pub fn only(&self, file: &str, flag: &'static str) -> Result<(), ManifestError> {
        let expected = if flag == "secret" {
            "Secret"
        } else {
            "ConfigMap"
        };
        let wrong = |kind: &str, name: &str| ManifestError::WrongKind {
            file: file.to_owned(),
            kind: kind.to_owned(),
            name: name.to_owned(),
            flag,
            expected,
        };
        if let Some((pod, controller, _)) = &self.pod {
            let what = controller.describe().unwrap_or_else(|| {
                format!("Pod {:?}", pod.metadata.name.clone().unwrap_or_default())
            });
            let (kind, name) = what.split_once(' ').unwrap_or((&what, ""));
            return Err(wrong(kind, name.trim_matches('"')));
        }
        if let Some(s) = self.skipped.first() {
            return Err(wrong(&s.kind, &s.name));
        }
        if let Some(name) = self.claims.keys().next() {
            return Err(wrong("PersistentVolumeClaim", name));
        }
        let other = if flag == "secret" {
            self.objects
                .config_maps
                .keys()
                .next()
                .map(|n| ("ConfigMap", n))
        } else {
            self.objects.secrets.keys().next().map(|n| ("Secret", n))
        };
        match other {
            Some((kind, name)) => Err(wrong(kind, name)),
            None => Ok(()),
        }
    }

    /// The pod to run, with the objects it refers to: every reference must resolve (unless
    /// `optional`), and every object must be in the pod's namespace. `file` names the
    /// input when it holds no pod.
    pub fn runnable(self, file: &str) -> Result<RunnablePod, ManifestError> {
        let Some((template, controller, _)) = self.pod else {
            let mut kinds: Vec<&str> = Vec::new();
            if !self.objects.config_maps.is_empty() {
                kinds.push("ConfigMaps");
            }
            if !self.objects.secrets.is_empty() {
                kinds.push("Secrets");
            }
            if !self.claims.is_empty() {
                kinds.push("PersistentVolumeClaims");
            }
            if !self.skipped.is_empty() {
                kinds.push("skipped objects");
            }
            return Err(ManifestError::NoPod {
                file: file.to_owned(),
                kinds: if kinds.is_empty() {
                    "nothing".to_owned()
                } else {
                    kinds.join(" and ")
                },
            });
        };
        let pod = controller.pod(&template, &workloads::random_suffix());
        let pod_name = pod.metadata.name.clone().unwrap_or_default();
        if !is_dns_label(&pod_name) {
            // A workload's name may be a subdomain; the pods podctl runs are labels.
            let (kind, name) = controller.owner().unwrap_or(("Pod", &pod_name));
            return Err(ManifestError::Invalid {
                kind,
                name: name.to_owned(),
                errors: vec![FieldError::new(
                    "metadata.name",
                    format!(
                        "Invalid value: {pod_name:?}: the pod it makes must have an RFC 1123 label for a name (lower-case letters, digits and '-', at most 63): use a shorter name without dots"
                    ),
                )],
            });
        }
        let pod_namespace = crate::downward::namespace(&pod).to_owned();
        let metas = self
            .objects
            .config_maps
            .values()
            .map(|o| ("ConfigMap", &o.metadata))
            .chain(
                self.objects
                    .secrets
                    .values()
                    .map(|o| ("Secret", &o.metadata)),
            )
            .chain(
                self.claims
                    .values()
                    .map(|o| ("PersistentVolumeClaim", &o.metadata)),
            );
        for (kind, meta) in metas {
            let namespace = meta.namespace.as_deref().filter(|n| !n.is_empty());
            if let Some(namespace) = namespace.filter(|n| *n != pod_namespace) {
                let name = meta.name.clone().unwrap_or_default();
                return Err(ManifestError::OtherNamespace {
                    file: self
                        .origins
                        .get(&format!("{kind}/{name}"))
                        .map_or(file, String::as_str)
                        .to_owned(),
                    kind: kind.to_owned(),
                    name,
                    namespace: namespace.to_owned(),
                    pod_namespace,
                });
            }
        }
        let missing = self.objects.missing(&pod);
        if !missing.is_empty() {
            return Err(ManifestError::MissingReferences {
                pod: controller.describe().unwrap_or_else(|| {
                    format!("Pod {:?}", pod.metadata.name.clone().unwrap_or_default())
                }),
                errors: missing,
            });
        }
        let objects = self.objects.used_by(&pod);
        Ok(RunnablePod {
            pod,
            template,
            controller,
            objects,
            claims: self.claims,
        })
    }
}

/// The texts a pod is run from: its manifest file, and files of ConfigMaps and Secrets.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    /// The manifest: `(text, name)`.
    pub manifest: (String, String),
    pub config_maps: Vec<(String, String)>,
    pub secrets: Vec<(String, String)>,
    /// Refuse skipped kinds instead of warning about them.
    pub strict: bool,
}

impl Inputs {
    /// Reads the files (`-`: stdin for the manifest).
    pub fn read(
        manifest: &Path,
        config_maps: &[std::path::PathBuf],
        secrets: &[std::path::PathBuf],
        strict: bool,
    ) -> Result<Inputs, ManifestError> {
        let all = |paths: &[std::path::PathBuf]| -> Result<Vec<_>, ManifestError> {
            paths.iter().map(|p| read(p)).collect()
        };
        Ok(Inputs {
            manifest: read(manifest)?,
            config_maps: all(config_maps)?,
            secrets: all(secrets)?,
            strict,
        })
    }

    /// Parses and checks everything: the pod to run with the objects it uses, and the
    /// warnings about skipped objects.
    pub fn runnable(&self) -> Result<(RunnablePod, Vec<String>), ManifestError> {
        let (text, source) = &self.manifest;
        let mut bundle = parse_bundle(text, source)?;
        for (flag, files) in [("configmap", &self.config_maps), ("secret", &self.secrets)] {
            for (text, source) in files {
                let extra = parse_bundle(text, source)?;
                extra.only(source, flag)?;
                bundle.merge(extra)?;
            }
        }
        if self.strict {
            bundle.refuse_skipped()?;
        }
        let warnings = bundle.warnings();
        Ok((bundle.runnable(source)?, warnings))
    }
}

/// Parses every document of a manifest file and validates each object on its own (the
/// references between them are checked by [`Bundle::runnable`]); `source` names the file.
pub fn parse_bundle(text: &str, source: &str) -> Result<Bundle, ManifestError> {
    let mut bundle = Bundle::default();
    let mut errors = Vec::new();
    for doc in parse::parse(text, source)? {
        let result = match doc.object {
            parse::Object::Pod(pod) => match validate(&pod) {
                Ok(()) => bundle.merge(Bundle {
                    pod: Some((*pod, Controller::None, doc.location)),
                    ..Bundle::default()
                }),
                Err(e) => Err(e),
            },
            parse::Object::Workload(w) => {
                let read = match w {
                    parse::Workload::Deployment(d) => workloads::deployment(&d),
                    parse::Workload::ReplicaSet(r) => workloads::replica_set(&r),
                    parse::Workload::StatefulSet(s) => workloads::stateful_set(&s),
                    parse::Workload::DaemonSet(d) => workloads::daemon_set(&d),
                    parse::Workload::Job(j) => workloads::job(&j),
                    parse::Workload::CronJob(c) => workloads::cron_job(&c),
                };
                read.and_then(|r| {
                    for claim in r.claims {
                        let name = claim.metadata.name.clone().unwrap_or_default();
                        let key = format!("PersistentVolumeClaim/{name}");
                        bundle.note_origin(&key, doc.location.clone())?;
                        bundle.claims.insert(name, claim);
                    }
                    bundle.merge(Bundle {
                        pod: Some((r.template, r.controller, doc.location)),
                        ..Bundle::default()
                    })
                })
            }
            parse::Object::ConfigMap(cm) => {
                let key = format!(
                    "ConfigMap/{}",
                    cm.metadata.name.as_deref().unwrap_or_default()
                );
                bundle
                    .objects
                    .add_config_map(*cm)
                    .and_then(|()| bundle.note_origin(&key, doc.location))
            }
            parse::Object::Secret(s) => {
                let key = format!("Secret/{}", s.metadata.name.as_deref().unwrap_or_default());
                bundle
                    .objects
                    .add_secret(*s)
                    .and_then(|()| bundle.note_origin(&key, doc.location))
            }
            parse::Object::Claim(c) => {
                let name = c.metadata.name.clone().unwrap_or_default();
                objects::validate_claim(&c)
                    .and_then(|()| {
                        bundle.note_origin(&format!("PersistentVolumeClaim/{name}"), doc.location)
                    })
                    .map(|()| {
                        bundle.claims.insert(name, *c);
                    })
            }
            parse::Object::Skipped { kind, name } => {
                bundle.skipped.push(Skipped {
                    location: doc.location,
                    kind,
                    name,
                });
                Ok(())
            }
        };
        if let Err(e) = result {
            errors.push(e);
        }
    }
    match errors.len() {
        0 => Ok(bundle),
        1 => Err(errors.remove(0)),
        _ => Err(ManifestError::Several(errors)),
    }
}

/// Reads and parses a manifest file (`-`: stdin); see [`parse_bundle`].
pub fn load_bundle(path: &Path) -> Result<Bundle, ManifestError> {
    let (text, source) = read(path)?;
    parse_bundle(&text, &source)
}

/// The one Pod of `text`, decoded strictly but not validated (other objects are ignored).
pub fn parse(text: &str, source: &str) -> Result<Pod, ManifestError> {
    let mut pods = parse::parse(text, source)?
        .into_iter()
        .filter_map(|d| match d.object {
            parse::Object::Pod(pod) => Some((pod, d.location)),
            _ => None,
        });
    match (pods.next(), pods.next()) {
        (Some((pod, _)), None) => Ok(*pod),
        (Some((_, first)), Some((_, second))) => {
            Err(ManifestError::SeveralWorkloads { first, second })
        }
        (None, _) => Err(ManifestError::NoPod {
            file: source.to_owned(),
            kinds: "other objects".to_owned(),
        }),
    }
}

/// Runs every validation rule; collects ALL field errors (not just the first).
///
/// Kubernetes' rules come first, then the fields podctl refuses; a field already reported
/// by a rule is not reported again as unsupported.
pub fn validate(pod: &Pod) -> Result<(), ManifestError> {
    let mut errors = validate::rules(pod);
    for e in unsupported::refusals(pod) {
        if !errors.iter().any(|known| known.path == e.path) {
            errors.push(e);
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ManifestError::Invalid {
            kind: "Pod",
            name: pod.metadata.name.clone().unwrap_or_default(),
            errors,
        })
    }
}

/// The pod of a file and the objects it refers to, all checked: what `podctl run FILE`
/// runs when no other file adds objects.
pub fn load_valid(path: &Path) -> Result<RunnablePod, ManifestError> {
    let (text, source) = read(path)?;
    parse_valid(&text, &source)
}

/// [`load_valid`] on text.
pub fn parse_valid(text: &str, source: &str) -> Result<RunnablePod, ManifestError> {
    parse_bundle(text, source)?.runnable(source)
}

#[cfg(test)]
mod bundle_tests;
#[cfg(test)]
mod tests;

pub(crate) use validate::is_env_var_name;

/// Whether `name` is a DNS-1123 label, the form of pod and container names podctl accepts.
pub fn is_dns_label(name: &str) -> bool {
    validate::dns1123_label(name).is_empty()
}
