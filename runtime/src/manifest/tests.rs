use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, EmptyDirVolumeSource, EnvVar, EnvVarSource, ExecAction,
    GRPCAction, HTTPGetAction, HTTPHeader, HostAlias, HostPathVolumeSource, Lifecycle,
    LifecycleHandler, PodDNSConfig, PodDNSConfigOption, PodSecurityContext, PodSpec, Probe,
    ResourceRequirements, SecurityContext, SleepAction, TCPSocketAction, Toleration, Volume,
    VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::*;

/// Everything podctl accepts, including the defaults `kubectl get -o yaml` adds.
const REFERENCE: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: web
  namespace: default
  labels: {app: web, app.kubernetes.io/name: web}
  annotations: {note: "hello"}
  uid: 6d3b2f0e-0000-4000-8000-000000000000
  creationTimestamp: "2026-01-01T00:00:00Z"
spec:
  restartPolicy: OnFailure
  terminationGracePeriodSeconds: 10
  activeDeadlineSeconds: 600
  hostNetwork: false
  dnsPolicy: ClusterFirst
  schedulerName: default-scheduler
  enableServiceLinks: true
  preemptionPolicy: PreemptLowerPriority
  priority: 0
  serviceAccountName: default
  securityContext: {}
  volumes:
  - name: cache
    emptyDir: {medium: Memory, sizeLimit: 64Mi}
  - name: scratch
    emptyDir: {}
  - name: host-etc
    hostPath: {path: /etc, type: Directory}
  initContainers:
  - name: setup
    image: busybox:1.36
    command: [sh, -c, "echo ready > /cache/ready"]
    volumeMounts:
    - {name: cache, mountPath: /cache}
  - name: logger
    image: busybox
    restartPolicy: Always
    command: [sh, -c, "touch /tmp/up && exec sleep infinity"]
    startupProbe:
      exec: {command: [test, -e, /tmp/up]}
      failureThreshold: 3
      periodSeconds: 10
      successThreshold: 1
      timeoutSeconds: 1
    lifecycle:
      postStart: {exec: {command: ["true"]}}
  containers:
  - name: app
    image: docker.io/library/nginx:1.27
    imagePullPolicy: IfNotPresent
    args: ["-g", "daemon off;"]
    workingDir: /
    env:
    - {name: GREETING, value: hello}
    - {name: my.var-1, value: "$(GREETING) world"}
    ports:
    - {containerPort: 80, name: http, protocol: TCP}
    livenessProbe:
      httpGet: {path: /, port: http, scheme: HTTP}
      failureThreshold: 3
      periodSeconds: 10
      successThreshold: 1
      timeoutSeconds: 1
    readinessProbe:
      tcpSocket: {port: 80}
      initialDelaySeconds: 2
      failureThreshold: 3
      periodSeconds: 5
      successThreshold: 2
      timeoutSeconds: 1
    lifecycle:
      preStop: {sleep: {seconds: 5}}
    volumeMounts:
    - {name: cache, mountPath: /cache, readOnly: true}
    - {name: scratch, mountPath: /scratch, subPath: app/tmp}
    - {name: host-etc, mountPath: /host/etc, readOnly: true, mountPropagation: None}
    resources: {}
    securityContext: {}
    terminationMessagePath: /dev/termination-log
    terminationMessagePolicy: File
    stdin: false
    tty: false
  - name: sidecar
    image: busybox
    command: [sleep, infinity]
status:
  phase: Running
"#;

/// The smallest valid pod; each case below breaks it in one way.
fn base() -> Pod {
    Pod {
        metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            name: Some("web".into()),
            ..Default::default()
        },
        spec: Some(PodSpec {
            containers: vec![container("app")],
            volumes: Some(vec![Volume {
                name: "data".into(),
                empty_dir: Some(EmptyDirVolumeSource::default()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        status: None,
    }
}

fn container(name: &str) -> Container {
    Container {
        name: name.into(),
        image: Some("busybox".into()),
        ..Default::default()
    }
}

/// An init container with `restartPolicy: Always`.
fn sidecar(name: &str) -> Container {
    Container {
        restart_policy: Some("Always".into()),
        ..container(name)
    }
}

fn exec_probe() -> Probe {
    Probe {
        exec: Some(ExecAction {
            command: Some(vec!["true".into()]),
        }),
        ..Default::default()
    }
}

fn http_get(port: IntOrString) -> HTTPGetAction {
    HTTPGetAction {
        port,
        ..Default::default()
    }
}

fn sleep(seconds: i64) -> Option<LifecycleHandler> {
    Some(LifecycleHandler {
        sleep: Some(SleepAction { seconds }),
        ..Default::default()
    })
}

fn spec(pod: &mut Pod) -> &mut PodSpec {
    pod.spec.get_or_insert_with(Default::default)
}

fn app(pod: &mut Pod) -> &mut Container {
    &mut spec(pod).containers[0]
}

fn mount(name: &str, path: &str) -> VolumeMount {
    VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        ..Default::default()
    }
}

fn volumes(pod: &mut Pod) -> &mut Vec<Volume> {
    spec(pod).volumes.get_or_insert_with(Vec::new)
}

fn errors(pod: &Pod) -> Vec<String> {
    match validate(pod) {
        Ok(()) => Vec::new(),
        Err(ManifestError::Invalid { errors, .. }) => {
            errors.iter().map(ToString::to_string).collect()
        }
        Err(other) => panic!("unexpected error kind: {other}"),
    }
}

#[test]
fn reference_manifest_is_accepted() {
    let pod = parse(REFERENCE, "reference.yaml").expect("parses");
    assert_eq!(errors(&pod), Vec::<String>::new());
    let spec = pod.spec.as_ref().expect("spec");
    assert_eq!(spec.containers.len(), 2);
    assert_eq!(
        pod.metadata.labels.as_ref().and_then(|l| l.get("app")),
        Some(&"web".to_owned())
    );
}

#[test]
fn base_pod_is_valid() {
    assert_eq!(errors(&base()), Vec::<String>::new());
}

type Case = (&'static str, fn(&mut Pod), &'static [&'static str]);

const LABEL_FMT: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";

#[test]
fn kubernetes_rules() {
    let cases: &[Case] = &[
        (
            "name required",
            |p| p.metadata.name = None,
            &["metadata.name: Required value"],
        ),
        (
            "name not a subdomain",
            |p| p.metadata.name = Some("Web_1".into()),
            &["metadata.name: Invalid value: \"Web_1\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"],
        ),
        (
            "name a subdomain but not a label",
            |p| p.metadata.name = Some("web.v1".into()),
            &["metadata.name: Invalid value: \"web.v1\": podctl requires the pod name to be an RFC 1123 label (at most 63 characters, lower case alphanumeric characters or '-', no '.') because it becomes the pod's hostname and part of file names"],
        ),
        (
            "no containers",
            |p| spec(p).containers.clear(),
            &["spec.containers: Required value"],
        ),
        (
            "no spec",
            |p| p.spec = None,
            &["spec.containers: Required value"],
        ),
        (
            "missing image",
            |p| app(p).image = None,
            &["spec.containers[0].image: Required value"],
        ),
        (
            "blank image",
            |p| app(p).image = Some("  ".into()),
            &["spec.containers[0].image: Required value"],
        ),
        (
            "container name required",
            |p| app(p).name = String::new(),
            &["spec.containers[0].name: Required value"],
        ),
        (
            "container name not a label",
            |p| app(p).name = "App".into(),
            &["spec.containers[0].name: Invalid value: \"App\": {LABEL}"],
        ),
        (
            "duplicate regular container name",
            |p| spec(p).containers.push(container("app")),
            &["spec.containers[1].name: Duplicate value: \"app\""],
        ),
        (
            "duplicate name across init and regular, reported on the init container",
            |p| spec(p).init_containers = Some(vec![container("app")]),
            &["spec.initContainers[0].name: Duplicate value: \"app\""],
        ),
        (
            "init container clashing with a later regular container",
            |p| {
                spec(p).containers.push(container("side"));
                spec(p).init_containers = Some(vec![container("setup"), container("side")]);
            },
            &["spec.initContainers[1].name: Duplicate value: \"side\""],
        ),
        (
            "duplicate init container name, reported on the later init container",
            |p| spec(p).init_containers = Some(vec![container("setup"), container("setup")]),
            &["spec.initContainers[1].name: Duplicate value: \"setup\""],
        ),
        (
            "duplicates of both kinds, each reported once",
            |p| {
                spec(p).containers.push(container("app"));
                spec(p).init_containers = Some(vec![container("app"), container("app")]);
            },
            &[
                "spec.initContainers[0].name: Duplicate value: \"app\"",
                "spec.initContainers[1].name: Duplicate value: \"app\"",
                "spec.containers[1].name: Duplicate value: \"app\"",
            ],
        ),
        (
            "image reference malformed",
            |p| app(p).image = Some("Busybox@@".into()),
            &["spec.containers[0].image: Invalid value: \"Busybox@@\": bad digest \"@\" (expected sha256:<64 lowercase hex> or sha512:<128 lowercase hex>)"],
        ),
        (
            "image reference not lowercase, on an init container",
            |p| {
                let mut c = container("setup");
                c.image = Some("Busybox:1.36".into());
                spec(p).init_containers = Some(vec![c]);
            },
            &["spec.initContainers[0].image: Invalid value: \"Busybox:1.36\": repository name must be lowercase"],
        ),
        (
            "image reference with inner whitespace",
            |p| app(p).image = Some("busy box".into()),
            &["spec.containers[0].image: Invalid value: \"busy box\": contains whitespace"],
        ),
        (
            "image reference with a bad tag",
            |p| app(p).image = Some("busybox:-1".into()),
            &["spec.containers[0].image: Invalid value: \"busybox:-1\": bad tag \"-1\" (letters, digits, '_', '.', '-', at most 128, not starting with '.' or '-')"],
        ),
        (
            "image with surrounding whitespace is reported once",
            |p| app(p).image = Some(" busybox".into()),
            &["spec.containers[0].image: Invalid value: \" busybox\": must not have leading or trailing whitespace"],
        ),
        (
            "image references of every valid shape are accepted",
            |p| {
                app(p).image = Some("localhost:5000/team/app:v1.2".into());
                let mut c = container("pinned");
                c.image = Some(format!("registry.example.com/app@sha256:{}", "a".repeat(64)));
                spec(p).containers.push(c);
                let mut c = container("setup");
                c.image = Some("index.docker.io/library/busybox:1.36".into());
                spec(p).init_containers = Some(vec![c]);
            },
            &[],
        ),
        (
            "bad pod restartPolicy",
            |p| spec(p).restart_policy = Some("Sometimes".into()),
            &["spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\""],
        ),
        (
            "unknown volume in a mount",
            |p| app(p).volume_mounts = Some(vec![mount("cache", "/cache")]),
            &["spec.containers[0].volumeMounts[0].name: Not found: \"cache\""],
        ),
        (
            "mountPath unique per container",
            |p| app(p).volume_mounts = Some(vec![mount("data", "/d"), mount("data", "/d")]),
            &["spec.containers[0].volumeMounts[1].mountPath: Invalid value: \"/d\": must be unique"],
        ),
        (
            "mountPath absolute",
            |p| app(p).volume_mounts = Some(vec![mount("data", "d")]),
            &["spec.containers[0].volumeMounts[0].mountPath: Invalid value: \"d\": must be an absolute path"],
        ),
        (
            "mountPath required",
            |p| app(p).volume_mounts = Some(vec![mount("data", "")]),
            &["spec.containers[0].volumeMounts[0].mountPath: Required value"],
        ),
        (
            "subPath absolute",
            |p| {
                let mut m = mount("data", "/d");
                m.sub_path = Some("/x".into());
                app(p).volume_mounts = Some(vec![m]);
            },
            &["spec.containers[0].volumeMounts[0].subPath: Invalid value: \"/x\": must be a relative path"],
        ),
        (
            "subPath backsteps",
            |p| {
                let mut m = mount("data", "/d");
                m.sub_path = Some("a/../../b".into());
                app(p).volume_mounts = Some(vec![m]);
            },
            &["spec.containers[0].volumeMounts[0].subPath: Invalid value: \"a/../../b\": must not contain '..'"],
        ),
        (
            "subPath with dots in a name is fine",
            |p| {
                let mut m = mount("data", "/d");
                m.sub_path = Some("a..b/.c".into());
                app(p).volume_mounts = Some(vec![m]);
            },
            &[],
        ),
        (
            "duplicate volume name",
            |p| {
                let dup = volumes(p)[0].clone();
                volumes(p).push(dup);
            },
            &["spec.volumes[1].name: Duplicate value: \"data\""],
        ),
        (
            "volume name not a label",
            |p| volumes(p)[0].name = "my_data".into(),
            &["spec.volumes[0].name: Invalid value: \"my_data\": {LABEL}"],
        ),
        (
            "volume without a source",
            |p| volumes(p)[0].empty_dir = None,
            &["spec.volumes[0]: Required value: must specify a volume type"],
        ),
        (
            "volume with two sources",
            |p| {
                volumes(p)[0].host_path = Some(HostPathVolumeSource {
                    path: "/tmp".into(),
                    type_: None,
                })
            },
            &["spec.volumes[0].emptyDir: Forbidden: may not specify more than 1 volume type"],
        ),
        (
            "hostPath type",
            |p| {
                volumes(p).push(Volume {
                    name: "h".into(),
                    host_path: Some(HostPathVolumeSource {
                        path: "/tmp".into(),
                        type_: Some("Dir".into()),
                    }),
                    ..Default::default()
                })
            },
            &["spec.volumes[1].hostPath.type: Unsupported value: \"Dir\": supported values: \"\", \"BlockDevice\", \"CharDevice\", \"Directory\", \"DirectoryOrCreate\", \"File\", \"FileOrCreate\", \"Socket\""],
        ),
        (
            "hostPath path required",
            |p| {
                volumes(p).push(Volume {
                    name: "h".into(),
                    host_path: Some(HostPathVolumeSource::default()),
                    ..Default::default()
                })
            },
            &["spec.volumes[1].hostPath.path: Required value"],
        ),
        (
            "hostPath path relative",
            |p| {
                volumes(p).push(Volume {
                    name: "h".into(),
                    host_path: Some(HostPathVolumeSource {
                        path: "data/../x".into(),
                        type_: Some(String::new()),
                    }),
                    ..Default::default()
                })
            },
            &[
                "spec.volumes[1].hostPath.path: Invalid value: \"data/../x\": must not contain '..'",
                "spec.volumes[1].hostPath.path: Invalid value: \"data/../x\": must be an absolute path",
            ],
        ),
        (
            "emptyDir medium",
            |p| volumes(p)[0].empty_dir = Some(EmptyDirVolumeSource {
                medium: Some("Disk".into()),
                ..Default::default()
            }),
            &["spec.volumes[0].emptyDir.medium: Unsupported value: \"Disk\": supported values: \"\", \"Memory\""],
        ),
        (
            "emptyDir hugepages",
            |p| volumes(p)[0].empty_dir = Some(EmptyDirVolumeSource {
                medium: Some("HugePages-2Mi".into()),
                ..Default::default()
            }),
            &["spec.volumes[0].emptyDir.medium: Forbidden: not supported by podctl yet"],
        ),
        (
            "emptyDir sizeLimit",
            |p| volumes(p)[0].empty_dir = Some(EmptyDirVolumeSource {
                size_limit: Some(Quantity("1GB".into())),
                ..Default::default()
            }),
            &["spec.volumes[0].emptyDir.sizeLimit: Invalid value: \"1GB\": quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"],
        ),
        (
            "emptyDir sizeLimit on disk",
            |p| volumes(p)[0].empty_dir = Some(EmptyDirVolumeSource {
                size_limit: Some(Quantity("1Gi".into())),
                ..Default::default()
            }),
            &["spec.volumes[0].emptyDir.sizeLimit: Forbidden: not supported by podctl yet for a disk-backed emptyDir (only with medium: Memory, where it sizes the tmpfs)"],
        ),
        (
            "emptyDir sizeLimit with the empty (disk) medium",
            |p| volumes(p)[0].empty_dir = Some(EmptyDirVolumeSource {
                medium: Some(String::new()),
                size_limit: Some(Quantity("1Gi".into())),
                ..Default::default()
            }),
            &["spec.volumes[0].emptyDir.sizeLimit: Forbidden: not supported by podctl yet for a disk-backed emptyDir (only with medium: Memory, where it sizes the tmpfs)"],
        ),
        (
            "emptyDir sizeLimit in memory",
            |p| volumes(p)[0].empty_dir = Some(EmptyDirVolumeSource {
                medium: Some("Memory".into()),
                size_limit: Some(Quantity("64Mi".into())),
                ..Default::default()
            }),
            &[],
        ),
        (
            "emptyDir negative sizeLimit",
            |p| volumes(p)[0].empty_dir = Some(EmptyDirVolumeSource {
                size_limit: Some(Quantity("-1Mi".into())),
                ..Default::default()
            }),
            &["spec.volumes[0].emptyDir.sizeLimit: Invalid value: \"-1Mi\": must be greater than or equal to 0"],
        ),
        (
            "probe on a regular init container",
            |p| {
                let mut c = container("init");
                c.startup_probe = Some(Probe::default());
                c.lifecycle = Some(Lifecycle::default());
                spec(p).init_containers = Some(vec![c]);
            },
            &[
                "spec.initContainers[0].lifecycle: Forbidden: may not be set for init containers without restartPolicy=Always",
                "spec.initContainers[0].startupProbe: Forbidden: may not be set for init containers without restartPolicy=Always",
            ],
        ),
        (
            "init container restartPolicy other than Always",
            |p| {
                let mut c = container("init");
                c.restart_policy = Some("Never".into());
                spec(p).init_containers = Some(vec![c]);
            },
            &["spec.initContainers[0].restartPolicy: Unsupported value: \"Never\": supported values: \"Always\""],
        ),
        (
            "restartPolicy on a regular container",
            |p| app(p).restart_policy = Some("Always".into()),
            &["spec.containers[0].restartPolicy: Forbidden: may not be set for non-init containers"],
        ),
        (
            "env var name",
            |p| {
                app(p).env = Some(vec![
                    EnvVar { name: "1ABC".into(), ..Default::default() },
                    EnvVar { name: String::new(), ..Default::default() },
                    EnvVar { name: "_ok.name-2".into(), ..Default::default() },
                ])
            },
            &[
                "spec.containers[0].env[0].name: Invalid value: \"1ABC\": a valid environment variable name must consist of alphabetic characters, digits, '_', '-', or '.', and must not start with a digit (e.g. 'my.env-name',  or 'MY_ENV.NAME',  or 'MyEnvName1', regex used for validation is '[-._a-zA-Z][-._a-zA-Z0-9]*')",
                "spec.containers[0].env[1].name: Required value",
            ],
        ),
        (
            "imagePullPolicy",
            |p| app(p).image_pull_policy = Some("Sometimes".into()),
            &["spec.containers[0].imagePullPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"IfNotPresent\", \"Never\""],
        ),
        (
            "imagePullPolicy values are accepted",
            |p| {
                app(p).image_pull_policy = Some("Always".into());
                let mut c = container("b");
                c.image_pull_policy = Some("Never".into());
                spec(p).containers.push(c);
            },
            &[],
        ),
        (
            "ports",
            |p| {
                app(p).ports = Some(vec![
                    ContainerPort { container_port: 0, ..Default::default() },
                    ContainerPort { container_port: 70000, protocol: Some("tcp".into()), ..Default::default() },
                    ContainerPort { container_port: 80, name: Some("http".into()), ..Default::default() },
                    ContainerPort { container_port: 81, name: Some("http".into()), ..Default::default() },
                ])
            },
            &[
                "spec.containers[0].ports[0].containerPort: Required value",
                "spec.containers[0].ports[1].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
                "spec.containers[0].ports[1].protocol: Unsupported value: \"tcp\": supported values: \"SCTP\", \"TCP\", \"UDP\"",
                "spec.containers[0].ports[3].name: Duplicate value: \"http\"",
            ],
        ),
        (
            "dnsPolicy None needs dnsConfig",
            |p| spec(p).dns_policy = Some("None".into()),
            &["spec.dnsConfig: Required value: must provide `dnsConfig` when `dnsPolicy` is None"],
        ),
        (
            "dnsPolicy None needs a nameserver",
            |p| {
                spec(p).dns_policy = Some("None".into());
                spec(p).dns_config = Some(PodDNSConfig::default());
            },
            &["spec.dnsConfig.nameservers: Required value: must provide at least one DNS nameserver when `dnsPolicy` is None"],
        ),
        (
            "dnsConfig",
            |p| {
                spec(p).dns_config = Some(PodDNSConfig {
                    nameservers: Some(vec!["1.1.1.1".into(), "10.0.0.x".into(), "::1".into(), "8.8.8.8".into()]),
                    searches: Some(vec!["ok.example.".into(), "Bad_Domain".into()]),
                    options: Some(vec![PodDNSConfigOption { name: Some(String::new()), value: Some("1".into()) }]),
                })
            },
            &[
                "spec.dnsConfig.nameservers: Invalid value: []string{\"1.1.1.1\", \"10.0.0.x\", \"::1\", \"8.8.8.8\"}: must not have more than 3 nameservers",
                "spec.dnsConfig.nameservers[1]: Invalid value: \"10.0.0.x\": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
                "spec.dnsConfig.searches[1]: Invalid value: \"Bad_Domain\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '_', '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '_?[a-z0-9]([-_a-z0-9]*[a-z0-9])?(\\._?[a-z0-9]([-_a-z0-9]*[a-z0-9])?)*')",
                "spec.dnsConfig.options[0]: Required value: must not be empty",
            ],
        ),
        (
            "hostAliases, hostname and subdomain",
            |p| {
                spec(p).host_aliases = Some(vec![
                    HostAlias { ip: "10.1.2.3".into(), hostnames: Some(vec!["db.local".into()]) },
                    HostAlias { ip: "db".into(), hostnames: Some(vec!["UPPER".into()]) },
                ]);
                spec(p).hostname = Some("web_1".into());
                spec(p).subdomain = Some("a.b".into());
            },
            &[
                "spec.hostAliases[1].ip: Invalid value: \"db\": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
                "spec.hostAliases[1].hostnames[0]: Invalid value: \"UPPER\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
                "spec.hostname: Invalid value: \"web_1\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
                "spec.subdomain: Invalid value: \"a.b\": must not contain dots",
            ],
        ),
        (
            "names are accepted",
            |p| {
                spec(p).dns_policy = Some("None".into());
                spec(p).dns_config = Some(PodDNSConfig {
                    nameservers: Some(vec!["10.0.0.10".into()]),
                    searches: Some(vec!["svc.cluster.local".into(), "_sip._tcp.example.".into(), ".".into()]),
                    options: Some(vec![PodDNSConfigOption { name: Some("ndots".into()), value: Some("5".into()) }]),
                });
                spec(p).hostname = Some("web-1".into());
                spec(p).subdomain = Some("db".into());
            },
            &[],
        ),
        (
            "security contexts",
            |p| {
                spec(p).security_context = Some(PodSecurityContext {
                    run_as_user: Some(-1),
                    supplemental_groups: Some(vec![5, 3_000_000_000]),
                    ..Default::default()
                });
                app(p).security_context = Some(SecurityContext {
                    run_as_group: Some(-2),
                    allow_privilege_escalation: Some(false),
                    capabilities: Some(Capabilities {
                        add: Some(vec!["CAP_SYS_ADMIN".into(), "NET_FOO".into()]),
                        drop: Some(vec!["all".into(), "cap_chown".into()]),
                    }),
                    ..Default::default()
                });
            },
            &[
                "spec.containers[0].securityContext.runAsGroup: Invalid value: -2: must be between 0 and 2147483647, inclusive",
                "spec.containers[0].securityContext.capabilities.add[1]: Invalid value: \"NET_FOO\": not a Linux capability (e.g. NET_ADMIN or CAP_NET_ADMIN, or ALL)",
                "spec.containers[0].securityContext: Invalid value: cannot set `allowPrivilegeEscalation` to false and `capabilities.Add` CAP_SYS_ADMIN",
                "spec.securityContext.runAsUser: Invalid value: -1: must be between 0 and 2147483647, inclusive",
                "spec.securityContext.supplementalGroups[1]: Invalid value: 3000000000: must be between 0 and 2147483647, inclusive",
            ],
        ),
        (
            "empty strings mean the defaults",
            |p| {
                spec(p).restart_policy = Some(String::new());
                spec(p).dns_policy = Some(String::new());
                app(p).image_pull_policy = Some(String::new());
                app(p).termination_message_policy = Some(String::new());
                app(p).termination_message_path = Some(String::new());
            },
            &[],
        ),
        (
            "negative grace period",
            |p| spec(p).termination_grace_period_seconds = Some(-1),
            &["spec.terminationGracePeriodSeconds: Invalid value: -1: must be greater than or equal to 0"],
        ),
    ];
    for (name, mutate, want) in cases {
        let mut pod = base();
        mutate(&mut pod);
        let want: Vec<String> = want
            .iter()
            .map(|s| s.replace("{LABEL}", LABEL_FMT))
            .collect();
        assert_eq!(errors(&pod), want, "case {name:?}");
    }
}

#[test]
fn long_names() {
    let mut pod = base();
    app(&mut pod).name = "a".repeat(64);
    pod.metadata.name = Some("a".repeat(64));
    assert_eq!(
        errors(&pod),
        [
            "metadata.name: Invalid value: \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\": podctl requires the pod name to be an RFC 1123 label (at most 63 characters, lower case alphanumeric characters or '-', no '.') because it becomes the pod's hostname and part of file names",
            "spec.containers[0].name: Invalid value: \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\": must be no more than 63 characters",
        ]
    );
}

const HEADER_FMT: &str = "a valid HTTP header must consist of alphanumeric characters or '-' (e.g. 'X-Header-Name', regex used for validation is '[-A-Za-z0-9]+')";

/// validation.go's `validateProbe`, `validateLifecycle` and their handlers, on regular
/// containers and sidecars; complete messages.
#[test]
fn probe_and_hook_rules() {
    let cases: &[Case] = &[
        (
            "probe without a handler",
            |p| app(p).liveness_probe = Some(Probe::default()),
            &["spec.containers[0].livenessProbe: Required value: must specify a handler type"],
        ),
        (
            "probe with three handlers: the first is validated, the others forbidden",
            |p| {
                let mut probe = exec_probe();
                probe.exec = Some(ExecAction { command: None });
                probe.tcp_socket = Some(TCPSocketAction { port: IntOrString::Int(80), host: None });
                probe.grpc = Some(GRPCAction { port: 9000, ..Default::default() });
                app(p).readiness_probe = Some(probe);
            },
            &[
                "spec.containers[0].readinessProbe.exec.command: Required value",
                "spec.containers[0].readinessProbe.tcpSocket: Forbidden: may not specify more than 1 handler type",
                "spec.containers[0].readinessProbe.grpc: Forbidden: may not specify more than 1 handler type",
            ],
        ),
        (
            "exec command required, also when empty",
            |p| {
                app(p).liveness_probe = Some(Probe {
                    exec: Some(ExecAction { command: None }),
                    ..Default::default()
                });
                app(p).startup_probe = Some(Probe {
                    exec: Some(ExecAction { command: Some(vec![]) }),
                    ..Default::default()
                });
            },
            &[
                "spec.containers[0].livenessProbe.exec.command: Required value",
                "spec.containers[0].startupProbe.exec.command: Required value",
            ],
        ),
        (
            "negative probe counts",
            |p| {
                let mut probe = exec_probe();
                probe.initial_delay_seconds = Some(-1);
                probe.timeout_seconds = Some(-2);
                probe.period_seconds = Some(-3);
                probe.success_threshold = Some(-4);
                probe.failure_threshold = Some(-5);
                app(p).readiness_probe = Some(probe);
            },
            &[
                "spec.containers[0].readinessProbe.initialDelaySeconds: Invalid value: -1: must be greater than or equal to 0",
                "spec.containers[0].readinessProbe.timeoutSeconds: Invalid value: -2: must be greater than or equal to 0",
                "spec.containers[0].readinessProbe.periodSeconds: Invalid value: -3: must be greater than or equal to 0",
                "spec.containers[0].readinessProbe.successThreshold: Invalid value: -4: must be greater than or equal to 0",
                "spec.containers[0].readinessProbe.failureThreshold: Invalid value: -5: must be greater than or equal to 0",
            ],
        ),
        (
            "zero counts are the API server's defaults",
            |p| {
                let mut probe = exec_probe();
                probe.initial_delay_seconds = Some(0);
                probe.timeout_seconds = Some(0);
                probe.period_seconds = Some(0);
                probe.success_threshold = Some(0);
                probe.failure_threshold = Some(0);
                app(p).liveness_probe = Some(probe.clone());
                app(p).startup_probe = Some(probe);
            },
            &[],
        ),
        (
            "successThreshold must be 1 for liveness and startup, not readiness",
            |p| {
                let with = |n| Probe { success_threshold: Some(n), ..exec_probe() };
                app(p).liveness_probe = Some(with(2));
                app(p).readiness_probe = Some(with(5));
                app(p).startup_probe = Some(with(3));
            },
            &[
                "spec.containers[0].livenessProbe.successThreshold: Invalid value: 2: must be 1",
                "spec.containers[0].startupProbe.successThreshold: Invalid value: 3: must be 1",
            ],
        ),
        (
            "negative successThreshold of a liveness probe breaks both rules",
            |p| app(p).liveness_probe = Some(Probe { success_threshold: Some(-1), ..exec_probe() }),
            &[
                "spec.containers[0].livenessProbe.successThreshold: Invalid value: -1: must be greater than or equal to 0",
                "spec.containers[0].livenessProbe.successThreshold: Invalid value: -1: must be 1",
            ],
        ),
        (
            "probe grace period",
            |p| {
                app(p).liveness_probe = Some(Probe {
                    termination_grace_period_seconds: Some(0),
                    ..exec_probe()
                });
                app(p).readiness_probe = Some(Probe {
                    termination_grace_period_seconds: Some(10),
                    ..exec_probe()
                });
            },
            &[
                "spec.containers[0].livenessProbe.terminationGracePeriodSeconds: Invalid value: 0: must be greater than 0",
                "spec.containers[0].readinessProbe.terminationGracePeriodSeconds: Invalid value: 10: must not be set for readinessProbes",
            ],
        ),
        (
            "port numbers",
            |p| {
                app(p).liveness_probe = Some(Probe {
                    tcp_socket: Some(TCPSocketAction { port: IntOrString::Int(0), host: None }),
                    ..Default::default()
                });
                app(p).readiness_probe = Some(Probe {
                    http_get: Some(http_get(IntOrString::Int(70000))),
                    ..Default::default()
                });
            },
            &[
                "spec.containers[0].livenessProbe.tcpSocket.port: Invalid value: 0: must be between 1 and 65535, inclusive",
                "spec.containers[0].readinessProbe.httpGet.port: Invalid value: 70000: must be between 1 and 65535, inclusive",
            ],
        ),
        (
            "port names are IANA service names",
            |p| {
                let tcp = |name: &str| Probe {
                    tcp_socket: Some(TCPSocketAction {
                        port: IntOrString::String(name.into()),
                        host: None,
                    }),
                    ..Default::default()
                };
                app(p).liveness_probe = Some(tcp("8080"));
                app(p).readiness_probe = Some(tcp("Web_port"));
                app(p).startup_probe = Some(tcp(""));
            },
            &[
                "spec.containers[0].livenessProbe.tcpSocket.port: Invalid value: \"8080\": must contain at least one letter (a-z)",
                "spec.containers[0].readinessProbe.tcpSocket.port: Invalid value: \"Web_port\": must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)",
                "spec.containers[0].startupProbe.tcpSocket.port: Invalid value: \"\": must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)",
                "spec.containers[0].startupProbe.tcpSocket.port: Invalid value: \"\": must contain at least one letter (a-z)",
            ],
        ),
        (
            "a port name need not be one of the container's ports (the kubelet reports it)",
            |p| {
                app(p).liveness_probe = Some(Probe {
                    http_get: Some(http_get(IntOrString::String("http".into()))),
                    ..Default::default()
                })
            },
            &[],
        ),
        (
            "httpGet scheme",
            |p| {
                let mut get = http_get(IntOrString::Int(80));
                get.scheme = Some("http".into());
                app(p).liveness_probe = Some(Probe { http_get: Some(get), ..Default::default() });
            },
            &["spec.containers[0].livenessProbe.httpGet.scheme: Unsupported value: \"http\": supported values: \"HTTP\", \"HTTPS\""],
        ),
        (
            "httpGet header names",
            |p| {
                let mut get = http_get(IntOrString::Int(80));
                get.http_headers = Some(vec![
                    HTTPHeader { name: "X Bad".into(), value: "1".into() },
                    HTTPHeader { name: String::new(), value: "2".into() },
                    HTTPHeader { name: "X-Ok-2".into(), value: "any value: at all".into() },
                ]);
                app(p).lifecycle = Some(Lifecycle {
                    post_start: Some(LifecycleHandler { http_get: Some(get), ..Default::default() }),
                    ..Default::default()
                });
            },
            &[
                "spec.containers[0].lifecycle.postStart.httpGet.httpHeaders: Invalid value: \"X Bad\": {HEADER}",
                "spec.containers[0].lifecycle.postStart.httpGet.httpHeaders: Invalid value: \"\": {HEADER}",
            ],
        ),
        (
            "hook without a handler",
            |p| {
                app(p).lifecycle = Some(Lifecycle {
                    post_start: Some(LifecycleHandler::default()),
                    ..Default::default()
                })
            },
            &["spec.containers[0].lifecycle.postStart: Required value: must specify a handler type"],
        ),
        (
            "hook with two handlers",
            |p| {
                app(p).lifecycle = Some(Lifecycle {
                    pre_stop: Some(LifecycleHandler {
                        exec: Some(ExecAction { command: Some(vec!["true".into()]) }),
                        ..sleep(1).expect("handler")
                    }),
                    ..Default::default()
                })
            },
            &["spec.containers[0].lifecycle.preStop.sleep: Forbidden: may not specify more than 1 handler type"],
        ),
        (
            "sleep within the default grace period",
            |p| {
                app(p).lifecycle = Some(Lifecycle {
                    post_start: sleep(-1),
                    pre_stop: sleep(31),
                    ..Default::default()
                })
            },
            &[
                "spec.containers[0].lifecycle.postStart.sleep: Invalid value: -1: must be non-negative and less than terminationGracePeriodSeconds (30)",
                "spec.containers[0].lifecycle.preStop.sleep: Invalid value: 31: must be non-negative and less than terminationGracePeriodSeconds (30)",
            ],
        ),
        (
            "sleep within the pod's grace period; zero and the whole period are fine",
            |p| {
                spec(p).termination_grace_period_seconds = Some(5);
                app(p).lifecycle = Some(Lifecycle {
                    post_start: sleep(0),
                    pre_stop: sleep(5),
                    ..Default::default()
                });
                let mut c = container("other");
                c.lifecycle = Some(Lifecycle { pre_stop: sleep(6), ..Default::default() });
                spec(p).containers.push(c);
            },
            &["spec.containers[1].lifecycle.preStop.sleep: Invalid value: 6: must be non-negative and less than terminationGracePeriodSeconds (5)"],
        ),
        (
            "sleep is not measured against a negative grace period",
            |p| {
                spec(p).termination_grace_period_seconds = Some(-1);
                app(p).lifecycle = Some(Lifecycle { pre_stop: sleep(10), ..Default::default() });
            },
            &["spec.terminationGracePeriodSeconds: Invalid value: -1: must be greater than or equal to 0"],
        ),
        (
            "refused handlers are validated first",
            |p| {
                app(p).liveness_probe = Some(Probe {
                    grpc: Some(GRPCAction { port: 0, ..Default::default() }),
                    ..Default::default()
                });
                app(p).lifecycle = Some(Lifecycle {
                    pre_stop: Some(LifecycleHandler {
                        tcp_socket: Some(TCPSocketAction { port: IntOrString::Int(0), host: None }),
                        ..Default::default()
                    }),
                    ..Default::default()
                });
            },
            &[
                "spec.containers[0].lifecycle.preStop.tcpSocket.port: Invalid value: 0: must be between 1 and 65535, inclusive",
                "spec.containers[0].livenessProbe.grpc.port: Invalid value: 0: must be between 1 and 65535, inclusive",
                "spec.containers[0].lifecycle.preStop.tcpSocket: Forbidden: not supported by podctl yet",
                "spec.containers[0].livenessProbe.grpc: Forbidden: not supported by podctl yet",
            ],
        ),
        (
            "a sidecar's probes and hooks follow the same rules",
            |p| {
                let mut c = sidecar("proxy");
                c.liveness_probe = Some(Probe { success_threshold: Some(2), ..exec_probe() });
                c.lifecycle = Some(Lifecycle { pre_stop: sleep(60), ..Default::default() });
                spec(p).init_containers = Some(vec![c]);
            },
            &[
                "spec.initContainers[0].lifecycle.preStop.sleep: Invalid value: 60: must be non-negative and less than terminationGracePeriodSeconds (30)",
                "spec.initContainers[0].livenessProbe.successThreshold: Invalid value: 2: must be 1",
            ],
        ),
        (
            "a regular init container's probes are forbidden whole, not looked into",
            |p| {
                let mut c = container("setup");
                c.liveness_probe = Some(Probe {
                    grpc: Some(GRPCAction { port: 0, ..Default::default() }),
                    success_threshold: Some(2),
                    ..Default::default()
                });
                c.lifecycle = Some(Lifecycle {
                    stop_signal: Some("SIGUSR1".into()),
                    ..Default::default()
                });
                spec(p).init_containers = Some(vec![c]);
            },
            &[
                "spec.initContainers[0].lifecycle: Forbidden: may not be set for init containers without restartPolicy=Always",
                "spec.initContainers[0].livenessProbe: Forbidden: may not be set for init containers without restartPolicy=Always",
            ],
        ),
    ];
    for (name, mutate, want) in cases {
        let mut pod = base();
        mutate(&mut pod);
        let want: Vec<String> = want
            .iter()
            .map(|s| s.replace("{HEADER}", HEADER_FMT))
            .collect();
        assert_eq!(errors(&pod), want, "case {name:?}");
    }
}

#[test]
fn active_deadline_seconds() {
    for ok in [1, 600, 2147483647] {
        let mut pod = base();
        spec(&mut pod).active_deadline_seconds = Some(ok);
        assert_eq!(errors(&pod), Vec::<String>::new(), "{ok}");
    }
    for bad in [0, -5, 2147483648] {
        let mut pod = base();
        spec(&mut pod).active_deadline_seconds = Some(bad);
        assert_eq!(
            errors(&pod),
            [format!(
                "spec.activeDeadlineSeconds: Invalid value: {bad}: must be between 1 and 2147483647, inclusive"
            )],
        );
    }
}

#[test]
fn sidecars_probes_and_hooks_are_accepted() {
    let text = manifest(
        r#"spec:
  activeDeadlineSeconds: 3600
  terminationGracePeriodSeconds: 20
  initContainers:
  - name: setup
    image: busybox
  - name: proxy
    image: busybox
    restartPolicy: Always
    ports: [{containerPort: 15021, name: health}]
    startupProbe:
      httpGet: {port: health, path: /healthz/ready, host: 127.0.0.1}
      periodSeconds: 1
      failureThreshold: 30
    readinessProbe:
      tcpSocket: {port: 15021, host: localhost}
      successThreshold: 3
    livenessProbe:
      exec: {command: [sh, -c, "test -e /tmp/alive"]}
      initialDelaySeconds: 0
    lifecycle:
      postStart: {exec: {command: ["true"]}}
      preStop: {sleep: {seconds: 20}}
  containers:
  - name: app
    image: busybox
    livenessProbe:
      httpGet:
        port: 8080
        path: ""
        scheme: ""
        host: "::1"
        httpHeaders: [{name: X-Probe, value: "yes"}]
    readinessProbe:
      httpGet: {port: web, scheme: HTTP}
    lifecycle:
      preStop: {httpGet: {port: 8080, path: /shutdown}}
  - name: bare
    image: busybox
    lifecycle: {}
"#,
    );
    let pod = parse(&text, "pod.yaml").expect("parses");
    assert_eq!(errors(&pod), Vec::<String>::new());
}

#[test]
fn unsupported_fields_are_refused_with_their_path() {
    let cases: &[Case] = &[
        (
            "gRPC probe",
            |p| {
                app(p).liveness_probe = Some(Probe {
                    grpc: Some(GRPCAction {
                        port: 9000,
                        ..Default::default()
                    }),
                    ..Default::default()
                })
            },
            &["spec.containers[0].livenessProbe.grpc"],
        ),
        (
            "HTTPS probe",
            |p| {
                let mut get = http_get(IntOrString::Int(443));
                get.scheme = Some("HTTPS".into());
                app(p).readiness_probe = Some(Probe {
                    http_get: Some(get),
                    ..Default::default()
                });
            },
            &["spec.containers[0].readinessProbe.httpGet.scheme"],
        ),
        (
            "HTTP/2 probe",
            |p| {
                let mut get = http_get(IntOrString::Int(80));
                get.protocol = Some("HTTP2".into());
                app(p).readiness_probe = Some(Probe {
                    http_get: Some(get),
                    ..Default::default()
                });
            },
            &["spec.containers[0].readinessProbe.httpGet.protocol"],
        ),
        (
            "host names in probes and hooks",
            |p| {
                let mut get = http_get(IntOrString::Int(80));
                get.host = Some("example.com".into());
                app(p).liveness_probe = Some(Probe {
                    http_get: Some(get.clone()),
                    ..Default::default()
                });
                app(p).startup_probe = Some(Probe {
                    tcp_socket: Some(TCPSocketAction {
                        port: IntOrString::Int(5432),
                        host: Some("db".into()),
                    }),
                    ..Default::default()
                });
                app(p).lifecycle = Some(Lifecycle {
                    post_start: Some(LifecycleHandler {
                        http_get: Some(get),
                        ..Default::default()
                    }),
                    ..Default::default()
                });
            },
            &[
                "spec.containers[0].lifecycle.postStart.httpGet.host",
                "spec.containers[0].livenessProbe.httpGet.host",
                "spec.containers[0].startupProbe.tcpSocket.host",
            ],
        ),
        (
            "hosts that need no name resolution",
            |p| {
                for (i, host) in ["", "127.0.0.1", "::1", "localhost"]
                    .into_iter()
                    .enumerate()
                {
                    let mut c = container(&format!("c{i}"));
                    c.readiness_probe = Some(Probe {
                        tcp_socket: Some(TCPSocketAction {
                            port: IntOrString::Int(80),
                            host: Some(host.into()),
                        }),
                        ..Default::default()
                    });
                    let mut get = http_get(IntOrString::Int(80));
                    get.host = Some(host.into());
                    c.liveness_probe = Some(Probe {
                        http_get: Some(get),
                        ..Default::default()
                    });
                    spec(p).containers.push(c);
                }
            },
            &[],
        ),
        (
            "tcpSocket hook, which the kubelet never runs",
            |p| {
                app(p).lifecycle = Some(Lifecycle {
                    pre_stop: Some(LifecycleHandler {
                        tcp_socket: Some(TCPSocketAction {
                            port: IntOrString::Int(80),
                            host: None,
                        }),
                        ..Default::default()
                    }),
                    ..Default::default()
                })
            },
            &["spec.containers[0].lifecycle.preStop.tcpSocket"],
        ),
        (
            "stopSignal",
            |p| {
                app(p).lifecycle = Some(Lifecycle {
                    stop_signal: Some("SIGUSR1".into()),
                    ..Default::default()
                })
            },
            &["spec.containers[0].lifecycle.stopSignal"],
        ),
        (
            "refusals inside a sidecar's probes and hooks",
            |p| {
                let mut c = sidecar("proxy");
                c.startup_probe = Some(Probe {
                    grpc: Some(GRPCAction {
                        port: 15021,
                        ..Default::default()
                    }),
                    ..Default::default()
                });
                c.lifecycle = Some(Lifecycle {
                    stop_signal: Some("SIGQUIT".into()),
                    ..Default::default()
                });
                spec(p).init_containers = Some(vec![c]);
            },
            &[
                "spec.initContainers[0].lifecycle.stopSignal",
                "spec.initContainers[0].startupProbe.grpc",
            ],
        ),
        (
            "pod-level resources",
            |p| {
                spec(p).resources = Some(ResourceRequirements {
                    limits: Some([("cpu".to_owned(), Quantity("1".into()))].into()),
                    ..Default::default()
                })
            },
            &["spec.resources"],
        ),
        (
            "env valueFrom fileKeyRef",
            |p| {
                app(p).env = Some(vec![EnvVar {
                    name: "A".into(),
                    value_from: Some(EnvVarSource {
                        file_key_ref: Some(Default::default()),
                        ..Default::default()
                    }),
                    ..Default::default()
                }])
            },
            &["spec.containers[0].env[0].valueFrom.fileKeyRef"],
        ),
        (
            "subPathExpr and mountPropagation",
            |p| {
                let mut m = mount("data", "/d");
                m.sub_path_expr = Some("$(POD)".into());
                m.mount_propagation = Some("Bidirectional".into());
                m.recursive_read_only = Some("Enabled".into());
                app(p).volume_mounts = Some(vec![m]);
            },
            &[
                "spec.containers[0].volumeMounts[0].subPathExpr",
                "spec.containers[0].volumeMounts[0].mountPropagation",
                "spec.containers[0].volumeMounts[0].recursiveReadOnly",
            ],
        ),
        (
            "hostIP under hostNetwork, hostPort on an init container",
            |p| {
                spec(p).host_network = Some(true);
                app(p).ports = Some(vec![ContainerPort {
                    container_port: 80,
                    host_port: Some(80),
                    host_ip: Some("127.0.0.1".into()),
                    ..Default::default()
                }]);
                let mut init = app(p).clone();
                init.name = "init".into();
                spec(p).init_containers = Some(vec![init]);
            },
            &[
                "spec.initContainers[0].ports[0].hostPort",
                "spec.initContainers[0].ports[0].hostIP",
                "spec.containers[0].ports[0].hostIP",
            ],
        ),
        (
            "hostPort defaulted under hostNetwork is accepted",
            |p| {
                spec(p).host_network = Some(true);
                app(p).ports = Some(vec![ContainerPort {
                    container_port: 80,
                    host_port: Some(80),
                    ..Default::default()
                }])
            },
            &[],
        ),
        (
            "stdin and tty",
            |p| {
                app(p).stdin = Some(true);
                app(p).tty = Some(true);
            },
            &["spec.containers[0].stdin", "spec.containers[0].tty"],
        ),
        (
            "non-default termination message settings",
            |p| {
                app(p).termination_message_path = Some("/tmp/msg".into());
                app(p).termination_message_policy = Some("FallbackToLogsOnError".into());
            },
            &[
                "spec.containers[0].terminationMessagePath",
                "spec.containers[0].terminationMessagePolicy",
            ],
        ),
        (
            "other volume sources",
            |p| {
                volumes(p).push(Volume {
                    name: "cfg".into(),
                    nfs: Some(Default::default()),
                    ..Default::default()
                })
            },
            &["spec.volumes[1].nfs"],
        ),
        (
            "emptyDir mode",
            |p| {
                volumes(p)[0].empty_dir = Some(EmptyDirVolumeSource {
                    mode: Some(0o700),
                    ..Default::default()
                })
            },
            &["spec.volumes[0].emptyDir.mode"],
        ),
        (
            "pod-level fields",
            |p| {
                let s = spec(p);
                s.host_pid = Some(true);
                s.host_ipc = Some(false);
                s.share_process_namespace = Some(true);
                s.node_name = Some("node-1".into());
                s.service_account_name = Some("builder".into());
                s.tolerations = Some(vec![
                    Toleration::default(),
                    Toleration {
                        key: Some("node.kubernetes.io/not-ready".into()),
                        ..Default::default()
                    },
                ]);
                s.security_context = Some(PodSecurityContext {
                    run_as_user: Some(1000),
                    fs_group: Some(2000),
                    supplemental_groups_policy: Some("Strict".into()),
                    ..Default::default()
                });
            },
            &[
                "spec.hostPID",
                "spec.nodeName",
                "spec.securityContext.supplementalGroupsPolicy",
                "spec.serviceAccountName",
                "spec.tolerations",
            ],
        ),
        (
            "metadata",
            |p| {
                p.metadata.generate_name = Some("web-".into());
                p.metadata.finalizers = Some(vec!["x".into()]);
                p.metadata.resource_version = Some("42".into());
                p.metadata.uid = Some("abc".into());
            },
            &[
                "metadata.generateName",
                "metadata.finalizers",
                "metadata.resourceVersion: Forbidden: should not be set on objects to be created",
            ],
        ),
    ];
    for (name, mutate, want) in cases {
        let mut pod = base();
        mutate(&mut pod);
        let want: Vec<String> = want
            .iter()
            .map(|w| {
                if w.contains(": ") {
                    (*w).to_owned()
                } else {
                    format!("{w}: Forbidden: not supported by podctl yet")
                }
            })
            .collect();
        assert_eq!(errors(&pod), want, "case {name:?}");
    }
}

#[test]
fn all_errors_are_reported_together() {
    let text = r#"
apiVersion: v1
kind: Pod
metadata: {name: Web}
spec:
  restartPolicy: Sometimes
  initContainers:
  - {name: app, image: busybox, livenessProbe: {exec: {command: [true]}}}
  containers:
  - name: app
    volumeMounts: [{name: cache, mountPath: /cache}]
"#;
    let err = parse(text, "pod.yaml")
        .and_then(|pod| validate(&pod))
        .expect_err("invalid");
    assert_eq!(
        err.to_string(),
        "The Pod \"Web\" is invalid:\n\
         * metadata.name: Invalid value: \"Web\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')\n\
         * spec.initContainers[0].livenessProbe: Forbidden: may not be set for init containers without restartPolicy=Always\n\
         * spec.initContainers[0].name: Duplicate value: \"app\"\n\
         * spec.containers[0].image: Required value\n\
         * spec.containers[0].volumeMounts[0].name: Not found: \"cache\"\n\
         * spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\""
    );
}

/// Wraps a pod spec body in a valid header.
fn manifest(spec: &str) -> String {
    format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n{spec}")
}

fn unknown(text: &str) -> Vec<String> {
    match parse(text, "pod.yaml") {
        Err(ManifestError::UnknownFields { errors, .. }) => {
            errors.iter().map(ToString::to_string).collect()
        }
        other => panic!("expected unknown fields, got {other:?}"),
    }
}

#[test]
fn unknown_fields_at_every_depth() {
    let cases: &[(&str, &[&str])] = &[
        (
            "specs:\n  containers: []\n",
            &["specs: unknown field"],
        ),
        (
            "spec:\n  containers:\n  - name: app\n    image: busybox\n    volumeMount: []\n",
            &["spec.containers[0].volumeMount: unknown field"],
        ),
        (
            "spec:\n  volumes:\n  - name: v\n    emptyDir: {sizelimit: 1Gi}\n  containers: []\n",
            &["spec.volumes[0].emptyDir.sizelimit: unknown field"],
        ),
        (
            "spec:\n  containers:\n  - name: a\n    image: b\n    imagePullPolcy: Always\n    env: [{name: A, valu: x}]\n    ports: [{containerPort: 80, hostport: 1}]\n  initContainers:\n  - name: c\n    image: d\n    livenessProbe: {exec: {comand: [x]}}\n",
            &[
                "spec.containers[0].imagePullPolcy: unknown field",
                "spec.containers[0].env[0].valu: unknown field",
                "spec.containers[0].ports[0].hostport: unknown field",
                "spec.initContainers[0].livenessProbe.exec.comand: unknown field",
            ],
        ),
    ];
    for (spec, want) in cases {
        assert_eq!(unknown(&manifest(spec)), *want, "spec {spec:?}");
    }
    assert_eq!(
        unknown("apiVersion: v1\nkind: Pod\nmetadata: {name: web, lables: {a: b}}\n"),
        ["metadata.lables: unknown field"]
    );
}

#[test]
fn unknown_fields_display() {
    let err = parse(&manifest("specs: {}\nstatuss: {}\n"), "pod.yaml").expect_err("unknown");
    assert_eq!(
        err.to_string(),
        "pod.yaml: strict decoding error:\n* specs: unknown field\n* statuss: unknown field"
    );
}

#[test]
fn type_errors_name_the_path() {
    let cases: &[(&str, &str)] = &[
        (
            "spec:\n  containers:\n  - name: app\n    image: busybox\n    ports:\n    - containerPort: x\n",
            "pod.yaml:10:22: spec.containers[0].ports[0].containerPort: invalid type: string \"x\", expected i32",
        ),
        (
            "spec:\n  containers:\n  - name: app\n    image: busybox\n    ports:\n    - containerPort: 99999999999\n",
            "pod.yaml:10:22: spec.containers[0].ports[0].containerPort: invalid value: 99999999999, expected i32",
        ),
        (
            "spec:\n  hostNetwork: maybe\n  containers: []\n",
            "pod.yaml:6:16: spec.hostNetwork: invalid type: string \"maybe\", expected boolean",
        ),
    ];
    for (spec, want) in cases {
        let err = parse(&manifest(spec), "pod.yaml").expect_err("type error");
        assert!(matches!(err, ManifestError::WrongType { .. }), "{err:?}");
        assert_eq!(err.to_string(), *want);
    }
    let err = parse(
        &manifest("spec:\n  containers:\n  - name: app\n    command: sleep\n"),
        "pod.yaml",
    )
    .expect_err("type error");
    match err {
        ManifestError::WrongType { path, .. } => assert_eq!(path, "spec.containers[0].command"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn header_is_checked() {
    let cases: &[(&str, &[&str])] = &[
        ("kind: Pod\n", &["apiVersion: Required value"]),
        ("apiVersion: v1\n", &["kind: Required value"]),
        (
            "apiVersion: apps/v1\nkind: Pod\n",
            &["apiVersion: Unsupported value: \"apps/v1\": supported values for kind Pod: \"v1\""],
        ),
        (
            "apiVersion: v1\nkind: Podd\n",
            &["kind: Unsupported value: \"Podd\": podctl reads \"Pod\", \"ConfigMap\", \"Secret\", \"PersistentVolumeClaim\", \"Deployment\", \"StatefulSet\", \"DaemonSet\", \"ReplicaSet\", \"Job\", \"CronJob\" (and skips cluster objects such as Service)"],
        ),
        (
            "apiVersion: 1\nkind: Pod\n",
            &["apiVersion: Invalid value: 1: must be a string"],
        ),
    ];
    for (text, want) in cases {
        match parse(text, "pod.yaml") {
            Err(ManifestError::BadHeader { errors, .. }) => {
                let got: Vec<String> = errors.iter().map(ToString::to_string).collect();
                assert_eq!(got, *want, "text {text:?}");
            }
            other => panic!("text {text:?}: {other:?}"),
        }
    }
}

#[test]
fn yaml_level_errors() {
    let err = parse("apiVersion: v1\nkind: [Pod\n", "pod.yaml").expect_err("syntax");
    assert!(
        matches!(err, ManifestError::Syntax { line: 2, .. }),
        "{err:?}"
    );
    assert!(err.to_string().starts_with("pod.yaml:2:"), "{err}");

    let err = parse("apiVersion: v1\nkind: Pod\napiVersion: v1\n", "pod.yaml").expect_err("dup");
    assert!(
        matches!(err, ManifestError::Syntax { line: 3, .. }),
        "{err:?}"
    );

    let two = "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: b}\n";
    let err = parse(two, "pod.yaml").expect_err("two pods");
    assert_eq!(
        err.to_string(),
        "pod.yaml, document 1 (Pod \"a\") and pod.yaml, document 2 (Pod \"b\") are both workloads: podctl runs one Pod per file"
    );

    // A leading `---` and trailing empty documents are one document.
    for one in [
        "---\napiVersion: v1\nkind: Pod\nmetadata: {name: web}\n---\n---\n",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\n...\n--- # nothing\n",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\n---\n",
        "%YAML 1.2\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: web}\n",
        "--- {apiVersion: v1, kind: Pod, metadata: {name: web}}\n",
    ] {
        assert_eq!(
            parse(one, "pod.yaml").expect(one).metadata.name.as_deref(),
            Some("web")
        );
    }
    // Errors keep the line of the whole file.
    let err = parse(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n---\napiVersion: v1\nkind: Pod\nmetadata: [x\n",
        "app.yaml",
    )
    .expect_err("syntax in the second document");
    assert!(
        matches!(err, ManifestError::Syntax { line: 7, .. }),
        "{err:?}"
    );

    assert!(matches!(
        parse("", "pod.yaml"),
        Err(ManifestError::Empty { .. })
    ));
    assert!(matches!(
        parse("# nothing\n", "pod.yaml"),
        Err(ManifestError::Empty { .. })
    ));
    assert!(matches!(
        parse("- apiVersion: v1\n", "pod.yaml"),
        Err(ManifestError::WrongType { .. })
    ));
}

#[test]
fn json_is_accepted() {
    let text = r#"{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"},
        "spec": {"containers": [{"name": "app", "image": "busybox"}]}}"#;
    let pod = parse(text, "pod.json").expect("json");
    assert_eq!(errors(&pod), Vec::<String>::new());
}

#[test]
fn status_and_server_metadata_are_ignored() {
    let text = manifest(
        "  uid: abc\n  generation: 3\nspec:\n  containers: [{name: app, image: busybox}]\nstatus:\n  phase: Pending\n  podIP: 10.0.0.1\n  fromTheFuture: {a: 1}\n",
    );
    let pod = parse(&text, "pod.yaml").expect("parses");
    assert!(pod.status.is_some());
    assert_eq!(errors(&pod), Vec::<String>::new());
}

#[test]
fn load_reads_files_and_names_missing_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("pod.yaml");
    std::fs::write(&path, REFERENCE).expect("write");
    let pod = load_valid(&path).expect("valid");
    assert_eq!(pod.pod.metadata.name.as_deref(), Some("web"));

    let missing = dir.path().join("missing.yaml");
    let err = load_bundle(&missing).expect_err("missing");
    assert!(matches!(err, ManifestError::Read { .. }));
    assert_eq!(
        err.to_string(),
        format!("cannot read manifest {}", missing.display())
    );

    std::fs::write(
        &path,
        "apiVersion: v1\nkind: Pod\nspec: {containers: [{name: a}]}\n",
    )
    .expect("write");
    let err = load_valid(&path).expect_err("invalid");
    assert_eq!(
        err.to_string(),
        "The Pod \"\" is invalid:\n* metadata.name: Required value\n* spec.containers[0].image: Required value"
    );
}

#[test]
fn field_error_display() {
    let e = FieldError::new("spec.containers[0].image", "Required value");
    assert_eq!(e.to_string(), "spec.containers[0].image: Required value");
}

/// `securityContext` beyond users and capabilities: seccomp, privileged, procMount, sysctls,
/// fsGroup; the API server's rules, the kubelet's sysctl admission, what stays refused.
mod security_context {
    use k8s_openapi::api::core::v1::{
        AppArmorProfile, PodSecurityContext, SELinuxOptions, SeccompProfile, SecurityContext,
        Sysctl,
    };

    use super::{app, base, errors, spec};
    use crate::manifest::Pod;

    fn seccomp(t: &str, local: Option<&str>) -> Option<SeccompProfile> {
        Some(SeccompProfile {
            type_: t.into(),
            localhost_profile: local.map(Into::into),
        })
    }

    fn sysctl(name: &str, value: &str) -> Sysctl {
        Sysctl {
            name: name.into(),
            value: value.into(),
        }
    }

    fn with(mutate: impl FnOnce(&mut Pod)) -> Vec<String> {
        let mut pod = base();
        mutate(&mut pod);
        errors(&pod)
    }

    const NAME_FMT: &str = r"must have at most 253 characters and match regex ([a-z0-9]([-_a-z0-9]*[a-z0-9])?[\./])*[a-z0-9]([-_a-z0-9]*[a-z0-9])?";

    #[test]
    fn accepted_fields() {
        let errs = with(|p| {
            spec(p).security_context = Some(PodSecurityContext {
                fs_group: Some(2000),
                fs_group_change_policy: Some("OnRootMismatch".into()),
                seccomp_profile: seccomp("Localhost", Some("profiles/audit.json")),
                sysctls: Some(vec![
                    sysctl("kernel.shm_rmid_forced", "1"),
                    sysctl("net/ipv4/ip_local_port_range", "1024 65000"),
                    sysctl("net.ipv4.tcp_keepalive_time", "600"),
                ]),
                supplemental_groups_policy: Some("Merge".into()),
                ..Default::default()
            });
            app(p).security_context = Some(SecurityContext {
                privileged: Some(true),
                seccomp_profile: seccomp("Unconfined", None),
                proc_mount: Some("Default".into()),
                ..Default::default()
            });
        });
        assert_eq!(errs, Vec::<String>::new());
    }

    #[test]
    fn seccomp_profile_rules() {
        let errs = with(|p| {
            spec(p).security_context = Some(PodSecurityContext {
                seccomp_profile: seccomp("Localhost", None),
                ..Default::default()
            });
            app(p).security_context = Some(SecurityContext {
                seccomp_profile: seccomp("Localhost", Some("/etc/x.json")),
                ..Default::default()
            });
            let mut c = super::container("b");
            c.security_context = Some(SecurityContext {
                seccomp_profile: seccomp("RuntimeDefault", Some("x.json")),
                ..Default::default()
            });
            spec(p).containers.push(c);
            let mut c = super::container("c");
            c.security_context = Some(SecurityContext {
                seccomp_profile: seccomp("Strict", None),
                ..Default::default()
            });
            spec(p).containers.push(c);
            let mut c = super::container("d");
            c.security_context = Some(SecurityContext {
                seccomp_profile: seccomp("", None),
                ..Default::default()
            });
            spec(p).containers.push(c);
            let mut c = super::container("e");
            c.security_context = Some(SecurityContext {
                seccomp_profile: seccomp("Localhost", Some("../up.json")),
                ..Default::default()
            });
            spec(p).containers.push(c);
        });
        assert_eq!(
            errs,
            [
                "spec.containers[0].securityContext.seccompProfile.localhostProfile: Invalid value: \"/etc/x.json\": must be a relative path",
                "spec.containers[1].securityContext.seccompProfile.localhostProfile: Invalid value: \"x.json\": can only be set when seccomp type is Localhost",
                "spec.containers[2].securityContext.seccompProfile.type: Unsupported value: \"Strict\": supported values: \"Localhost\", \"RuntimeDefault\", \"Unconfined\"",
                "spec.containers[3].securityContext.seccompProfile.type: Required value: type is required when seccompProfile is set",
                "spec.containers[4].securityContext.seccompProfile.localhostProfile: Invalid value: \"../up.json\": must not contain '..'",
                "spec.securityContext.seccompProfile.localhostProfile: Required value: must be set when seccomp type is Localhost",
            ]
        );
    }

    #[test]
    fn privileged_and_proc_mount_rules() {
        let errs = with(|p| {
            app(p).security_context = Some(SecurityContext {
                privileged: Some(true),
                allow_privilege_escalation: Some(false),
                proc_mount: Some("Unmasked".into()),
                ..Default::default()
            });
            let mut c = super::container("b");
            c.security_context = Some(SecurityContext {
                proc_mount: Some("Hidden".into()),
                ..Default::default()
            });
            spec(p).containers.push(c);
        });
        assert_eq!(
            errs,
            [
                "spec.containers[0].securityContext: Invalid value: cannot set `allowPrivilegeEscalation` to false and `privileged` to true",
                "spec.containers[1].securityContext.procMount: Unsupported value: \"Hidden\": supported values: \"Default\", \"Unmasked\"",
                "spec.containers[0].securityContext.procMount: Forbidden: not supported by podctl yet: `Unmasked` requires `hostUsers: false` (a user namespace), which podctl does not support",
            ]
        );
        // With hostUsers: false the API server would take it; podctl refuses both.
        let errs = with(|p| {
            spec(p).host_users = Some(false);
            app(p).security_context = Some(SecurityContext {
                proc_mount: Some("Unmasked".into()),
                ..Default::default()
            });
        });
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert_eq!(
            errs[0],
            "spec.hostUsers: Forbidden: not supported by podctl yet"
        );
        assert!(errs[1].starts_with("spec.containers[0].securityContext.procMount: Forbidden"));
    }

    #[test]
    fn sysctl_rules() {
        let errs = with(|p| {
            spec(p).security_context = Some(PodSecurityContext {
                sysctls: Some(vec![
                    sysctl("", "1"),
                    sysctl("Kernel.Shm", "1"),
                    sysctl("kernel.shm_rmid_forced", "1"),
                    sysctl("kernel.shm_rmid_forced", "0"),
                    sysctl("kernel.msgmax", "65536"),
                    sysctl("net/core/somaxconn", "1024"),
                ]),
                ..Default::default()
            })
        });
        let safe = "kernel.shm_rmid_forced, net.ipv4.ip_local_port_range, net.ipv4.tcp_syncookies, net.ipv4.ping_group_range, net.ipv4.ip_unprivileged_port_start, net.ipv4.ip_local_reserved_ports, net.ipv4.tcp_keepalive_time, net.ipv4.tcp_fin_timeout, net.ipv4.tcp_keepalive_intvl, net.ipv4.tcp_keepalive_probes, net.ipv4.tcp_rmem, net.ipv4.tcp_wmem, net.ipv4.tcp_slow_start_after_idle, net.ipv4.tcp_notsent_lowat";
        assert_eq!(
            errs,
            [
                "spec.securityContext.sysctls[0].name: Required value".to_owned(),
                format!("spec.securityContext.sysctls[1].name: Invalid value: \"Kernel.Shm\": {NAME_FMT}"),
                "spec.securityContext.sysctls[3].name: Duplicate value: \"kernel.shm_rmid_forced\"".to_owned(),
                format!("spec.securityContext.sysctls[4]: Forbidden: forbidden sysctl: \"kernel.msgmax\" not allowlisted: the kubelet admits only its safe sysctls ({safe})"),
                format!("spec.securityContext.sysctls[5]: Forbidden: forbidden sysctl: \"net.core.somaxconn\" not allowlisted: the kubelet admits only its safe sysctls ({safe})"),
            ]
        );
        // The network's sysctls are the host's under hostNetwork: the API server refuses
        // them; the IPC namespace stays the pod's.
        let errs = with(|p| {
            spec(p).host_network = Some(true);
            spec(p).security_context = Some(PodSecurityContext {
                sysctls: Some(vec![
                    sysctl("kernel.shm_rmid_forced", "1"),
                    sysctl("net.ipv4.ip_unprivileged_port_start", "0"),
                ]),
                ..Default::default()
            })
        });
        assert_eq!(
            errs,
            ["spec.securityContext.sysctls[1].name: Invalid value: \"net.ipv4.ip_unprivileged_port_start\": may not be specified when 'hostNetwork' is true"]
        );
    }

    #[test]
    fn fs_group_rules() {
        let errs = with(|p| {
            spec(p).security_context = Some(PodSecurityContext {
                fs_group: Some(-5),
                fs_group_change_policy: Some("Sometimes".into()),
                ..Default::default()
            })
        });
        assert_eq!(
            errs,
            [
                "spec.securityContext.fsGroup: Invalid value: -5: must be between 0 and 2147483647, inclusive",
                "spec.securityContext.fsGroupChangePolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnRootMismatch\"",
            ]
        );
    }

    #[test]
    fn what_stays_refused() {
        let errs = with(|p| {
            spec(p).share_process_namespace = Some(true);
            spec(p).security_context = Some(PodSecurityContext {
                app_armor_profile: Some(AppArmorProfile {
                    type_: "RuntimeDefault".into(),
                    localhost_profile: None,
                }),
                se_linux_options: Some(SELinuxOptions {
                    level: Some("s0:c1".into()),
                    ..Default::default()
                }),
                se_linux_change_policy: Some("MountOption".into()),
                supplemental_groups_policy: Some("Strict".into()),
                ..Default::default()
            });
            app(p).security_context = Some(SecurityContext {
                app_armor_profile: Some(AppArmorProfile {
                    type_: "Unconfined".into(),
                    localhost_profile: None,
                }),
                ..Default::default()
            });
        });
        let refused: Vec<&str> = errs
            .iter()
            .map(|e| {
                e.strip_suffix(": Forbidden: not supported by podctl yet")
                    .unwrap_or(e)
            })
            .collect();
        assert_eq!(
            refused,
            [
                "spec.securityContext.appArmorProfile",
                "spec.securityContext.seLinuxChangePolicy",
                "spec.securityContext.seLinuxOptions",
                "spec.securityContext.supplementalGroupsPolicy",
                "spec.containers[0].securityContext.appArmorProfile",
            ]
        );
    }
}

#[test]
fn host_ports_follow_the_api_servers_rules() {
    let port = |container_port: i32, host_port: i32, host_ip: &str| ContainerPort {
        container_port,
        host_port: Some(host_port),
        host_ip: (!host_ip.is_empty()).then(|| host_ip.to_owned()),
        ..Default::default()
    };
    let mut p = base();
    app(&mut p).ports = Some(vec![
        port(80, 8080, ""),
        port(81, 70000, ""),
        port(82, 9090, "not-an-ip"),
    ]);
    let mut second = container("second");
    second.ports = Some(vec![port(90, 8080, "")]);
    spec(&mut p).containers.push(second);
    assert_eq!(
        errors(&p),
        [
            "spec.containers[0].ports[1].hostPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
            "spec.containers[0].ports[2].hostIP: Invalid value: \"not-an-ip\": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
            "spec.containers[1].ports[0].hostPort: Duplicate value: \"TCP//8080\"",
        ]
    );
    // With hostNetwork the hostPort is the containerPort (defaulted when absent).
    let mut p = base();
    spec(&mut p).host_network = Some(true);
    app(&mut p).ports = Some(vec![port(80, 8080, ""), port(81, 0, "")]);
    assert_eq!(
        errors(&p),
        ["spec.containers[0].ports[0].hostPort: Invalid value: 8080: must match `containerPort` when `hostNetwork` is true"]
    );
}

mod resources {
    use super::{errors, manifest, parse};

    /// The errors of a pod whose only container `app` has `resources` (YAML, indented for
    /// the container), and an init container `init` with `init` as its resources.
    fn with(app: &str, init: &str) -> Vec<String> {
        let text = manifest(&format!(
            "spec:\n  initContainers:\n  - name: init\n    image: busybox\n    resources:\n{init}\n  \
             containers:\n  - name: app\n    image: busybox\n    resources:\n{app}\n"
        ));
        errors(&parse(&text, "pod.yaml").expect("parses"))
    }

    #[test]
    fn cpu_and_memory_are_accepted() {
        let errs = with(
            "      limits: {cpu: 500m, memory: 64Mi}\n      requests: {cpu: 250m, memory: 32Mi, ephemeral-storage: 1Gi}",
            "      limits: {cpu: '1', memory: '0'}\n      requests: {cpu: '0.5'}",
        );
        assert_eq!(errs, Vec::<String>::new());
        // Equal after parsing, whatever the notation.
        let errs = with(
            "      limits: {cpu: '0.5', memory: 1Gi}\n      requests: {cpu: 500m, memory: 1073741824}",
            "      {}",
        );
        assert_eq!(errs, Vec::<String>::new());
    }

    #[test]
    fn the_api_servers_rules() {
        let errs = with(
            "      limits: {cpu: '1', memory: 64Mi, gpu: '1'}\n      requests: {cpu: '2', memory: 128Mi}",
            "      limits: {cpu: one, memory: '-1'}\n      requests: {memory: 1e3x}",
        );
        assert_eq!(
            errs,
            [
                "spec.initContainers[0].resources.limits[cpu]: Invalid value: \"one\": quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
                "spec.initContainers[0].resources.limits[memory]: Invalid value: \"-1\": must be greater than or equal to 0",
                "spec.initContainers[0].resources.requests[memory]: Invalid value: \"1e3x\": quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
                "spec.containers[0].resources.limits[gpu]: Invalid value: \"gpu\": must be a standard resource for containers",
                "spec.containers[0].resources.requests: Invalid value: \"2\": must be less than or equal to cpu limit of 1",
                "spec.containers[0].resources.requests: Invalid value: \"128Mi\": must be less than or equal to memory limit of 64Mi",
            ]
        );
    }

    #[test]
    fn what_podctl_refuses_and_why() {
        let errs = with(
            "      limits: {ephemeral-storage: 1Gi, hugepages-2Mi: 4Mi, example.com/gpu: '1', memory: 4Mi}\n      \
             requests: {hugepages-2Mi: 4Mi, example.com/fpga: '1'}\n      claims: [{name: gpu}]",
            "      limits: {memory: 6Mi}",
        );
        assert_eq!(
            errs,
            [
                "spec.containers[0].resources.limits: Required value: Limit must be set for non overcommitable resources",
                "spec.containers[0].resources.limits[memory]: Invalid value: \"4Mi\": must be at least 6Mi: podctl's minimum, since runc's own init process is charged to the container's memory cgroup before the container starts",
                "spec.containers[0].resources.limits[ephemeral-storage]: Forbidden: not supported by podctl yet: podctl does not enforce ephemeral-storage limits (the kubelet evicts a pod over its limit; podctl evicts nothing); a request alone is accepted",
                "spec.containers[0].resources.limits[example.com/gpu]: Forbidden: not supported by podctl yet: podctl has no extended resources (no device plugins on this host)",
                "spec.containers[0].resources.limits[hugepages-2Mi]: Forbidden: not supported by podctl yet: podctl does not set up huge pages",
                "spec.containers[0].resources.requests[example.com/fpga]: Forbidden: not supported by podctl yet: podctl has no extended resources (no device plugins on this host)",
                "spec.containers[0].resources.requests[hugepages-2Mi]: Forbidden: not supported by podctl yet: podctl does not set up huge pages",
                "spec.containers[0].resources.claims: Forbidden: not supported by podctl yet",
            ]
        );
        // Non-overcommitable resources: requests equal to limits.
        let errs = with(
            "      limits: {hugepages-2Mi: 4Mi}\n      requests: {hugepages-2Mi: 2Mi}",
            "      {}",
        );
        assert_eq!(
            errs[0],
            "spec.containers[0].resources.requests: Invalid value: \"2Mi\": must be equal to hugepages-2Mi limit of 4Mi"
        );
        let text = manifest(
            "spec:\n  resources: {limits: {cpu: '1'}}\n  containers:\n  - name: app\n    image: busybox\n    \
             resizePolicy: [{resourceName: cpu, restartPolicy: NotRequired}]\n",
        );
        assert_eq!(
            errors(&parse(&text, "pod.yaml").unwrap()),
            [
                "spec.resources: Forbidden: not supported by podctl yet",
                "spec.containers[0].resizePolicy: Forbidden: not supported by podctl yet",
            ]
        );
    }
}
