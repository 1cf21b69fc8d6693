//! Multi-document files: ConfigMaps and Secrets beside the pod, what refers to them, and
//! the refusals (duplicates, missing objects and keys, bad data, other kinds).

use super::*;

const APP: &str = r#"apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data:
  MODE: production
  app.conf: |
    listen 8080
binaryData:
  logo.png: iVBORw0K
---
apiVersion: v1
kind: Secret
metadata: {name: creds}
type: Opaque
data:
  password: aHVudGVyMg==
stringData:
  user: admin
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec: {ports: [{port: 80}]}
---
apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  volumes:
  - name: conf
    configMap: {name: settings, items: [{key: app.conf, path: conf/app.conf, mode: 0400}]}
  - name: creds
    secret: {secretName: creds, defaultMode: 0400}
  - name: info
    downwardAPI:
      items:
      - {path: labels, fieldRef: {fieldPath: metadata.labels}}
      - {path: mem, resourceFieldRef: {containerName: app, resource: limits.memory, divisor: 1Mi}}
  - name: all
    projected:
      sources:
      - configMap: {name: settings}
      - secret: {name: creds, items: [{key: user, path: user}]}
  containers:
  - name: app
    image: busybox
    envFrom:
    - configMapRef: {name: settings}
      prefix: CFG_
    env:
    - name: PASSWORD
      valueFrom: {secretKeyRef: {name: creds, key: password}}
    - name: POD_IP
      valueFrom: {fieldRef: {fieldPath: status.podIP}}
    - name: OPTIONAL
      valueFrom: {configMapKeyRef: {name: absent, key: x, optional: true}}
    volumeMounts:
    - {name: conf, mountPath: /etc/app}
    - {name: creds, mountPath: /run/creds}
    - {name: info, mountPath: /etc/info}
    - {name: all, mountPath: /all}
"#;

fn message(e: &ManifestError) -> String {
    e.to_string()
}

#[test]
fn a_pod_with_its_objects() {
    let bundle = parse_bundle(APP, "app.yaml").expect("parses");
    assert_eq!(bundle.warnings(), vec![
        "app.yaml, document 3 (Service \"web\"): skipped Service \"web\": it has no meaning for pods on one host".to_owned()
    ]);
    assert_eq!(
        message(&bundle.refuse_skipped().unwrap_err()),
        "app.yaml, document 3 (Service \"web\"): Service \"web\" has no meaning for pods on one host (refused under --strict; without it, skipped with a warning)"
    );
    let runnable = bundle.runnable("app.yaml").expect("runnable");
    assert_eq!(runnable.pod.metadata.name.as_deref(), Some("web"));
    let secret = &runnable.objects.secrets["creds"];
    let data = secret.data.as_ref().unwrap();
    // stringData is merged into data, decoded from base64 where given as data.
    assert_eq!(data["password"].0, b"hunter2");
    assert_eq!(data["user"].0, b"admin");
    assert!(secret.string_data.is_none());
    assert!(runnable.objects.config_maps.contains_key("settings"));
}

#[test]
fn only_the_objects_the_pod_uses_are_kept() {
    let text = format!(
        "{APP}---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: unused}}\ndata: {{a: b}}\n"
    );
    let runnable = parse_valid(&text, "app.yaml").expect("valid");
    assert_eq!(
        runnable.objects.config_maps.keys().collect::<Vec<_>>(),
        vec!["settings"]
    );
}

#[test]
fn missing_objects_and_keys_are_refused_unless_optional() {
    let pod = r#"apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  volumes:
  - name: a
    configMap: {name: nothere}
  - name: b
    configMap: {name: settings, items: [{key: missing, path: m}]}
  - name: c
    configMap: {name: nothere, optional: true}
  - name: d
    secret: {secretName: nosecret}
  containers:
  - name: app
    image: busybox
    envFrom: [{secretRef: {name: nosecret}}]
    env:
    - name: A
      valueFrom: {configMapKeyRef: {name: settings, key: nokey}}
    - name: B
      valueFrom: {configMapKeyRef: {name: settings, key: nokey, optional: true}}
    - name: C
      valueFrom: {configMapKeyRef: {name: settings, key: logo.png}}
"#;
    let text = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: settings}}\ndata: {{MODE: x}}\nbinaryData: {{logo.png: AAAA}}\n---\n{pod}"
    );
    let err = parse_valid(&text, "app.yaml").expect_err("missing");
    assert_eq!(
        message(&err),
        "The Pod \"web\" refers to objects that are not given:\n\
         * spec.containers[0].envFrom[0].secretRef: secrets \"nosecret\" not found\n\
         * spec.containers[0].env[0].valueFrom.configMapKeyRef: couldn't find key nokey in ConfigMap default/settings\n\
         * spec.containers[0].env[2].valueFrom.configMapKeyRef: couldn't find key logo.png in ConfigMap default/settings\n\
         * spec.volumes[0].configMap: configmaps \"nothere\" not found\n\
         * spec.volumes[1].configMap.items[0].key: couldn't find key missing in ConfigMap default/settings\n\
         * spec.volumes[3].secret: secrets \"nosecret\" not found"
    );
}

#[test]
fn bad_objects_are_refused_with_document_and_field() {
    // Not base64: a wrongly typed value with its path and line.
    let err = parse_bundle(
        "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata:\n  password: not*base64\n",
        "s.yaml",
    )
    .expect_err("base64");
    let text = message(&err);
    assert!(text.starts_with("s.yaml:5:"), "{text}");
    assert!(text.contains("data.password"), "{text}");

    // Keys, sizes, required type keys.
    let err = parse_bundle(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: Bad_Name}\ndata: {\"bad key\": x, dup: y}\nbinaryData: {dup: AAAA}\n",
        "c.yaml",
    )
    .expect_err("invalid");
    let text = message(&err);
    assert!(
        text.starts_with("The ConfigMap \"Bad_Name\" is invalid:"),
        "{text}"
    );
    assert!(
        text.contains("* metadata.name: Invalid value: \"Bad_Name\""),
        "{text}"
    );
    assert!(
        text.contains("* data[bad key]: Invalid value: \"bad key\": a valid config key"),
        "{text}"
    );
    assert!(
        text.contains(
            "* data[dup]: Invalid value: \"dup\": duplicate of key present in binaryData"
        ),
        "{text}"
    );
    let err = parse_bundle(
        "apiVersion: v1\nkind: Secret\nmetadata: {name: tls}\ntype: kubernetes.io/tls\nstringData: {tls.crt: x}\n",
        "t.yaml",
    )
    .expect_err("tls");
    assert_eq!(
        message(&err),
        "The Secret \"tls\" is invalid:\n* data[tls.key]: Required value"
    );

    // An unknown field in the second document names it.
    let err = parse_bundle(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: a, image: busybox}]}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndatta: {}\n",
        "app.yaml",
    )
    .expect_err("unknown");
    assert_eq!(
        message(&err),
        "app.yaml, document 2 (ConfigMap \"c\"): strict decoding error:\n* datta: unknown field"
    );

    // Two objects of one kind and name.
    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n";
    let err = parse_bundle(&format!("{cm}---\n{cm}"), "app.yaml").expect_err("duplicate");
    assert_eq!(
        message(&err),
        "ConfigMap \"c\" is given twice: in app.yaml, document 1 (ConfigMap \"c\") and in app.yaml, document 2 (ConfigMap \"c\")"
    );

    // Errors of several documents are all reported.
    let err = parse_bundle(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: A}\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: B}\n",
        "app.yaml",
    )
    .expect_err("two bad");
    assert!(
        matches!(err, ManifestError::Several(ref list) if list.len() == 2),
        "{err}"
    );
}

#[test]
fn other_files_add_objects_of_their_kind_only() {
    let pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec:\n  containers:\n  - name: app\n    image: busybox\n    env:\n    - name: P\n      valueFrom: {secretKeyRef: {name: creds, key: p}}\n";
    let secret = "apiVersion: v1\nkind: Secret\nmetadata: {name: creds}\nstringData: {p: x}\n";
    let inputs = Inputs {
        manifest: (pod.to_owned(), "pod.yaml".to_owned()),
        secrets: vec![(secret.to_owned(), "creds.yaml".to_owned())],
        ..Default::default()
    };
    let (runnable, warnings) = inputs.runnable().expect("runnable");
    assert!(warnings.is_empty());
    assert!(runnable.objects.secrets.contains_key("creds"));

    let wrong = Inputs {
        manifest: (pod.to_owned(), "pod.yaml".to_owned()),
        config_maps: vec![(secret.to_owned(), "creds.yaml".to_owned())],
        ..Default::default()
    };
    assert_eq!(
        message(&wrong.runnable().unwrap_err()),
        "creds.yaml: Secret \"creds\" in a file given with --configmap: it may hold ConfigMap objects only"
    );

    let twice = Inputs {
        manifest: (format!("{pod}---\n{secret}"), "pod.yaml".to_owned()),
        secrets: vec![(secret.to_owned(), "creds.yaml".to_owned())],
        ..Default::default()
    };
    assert_eq!(
        message(&twice.runnable().unwrap_err()),
        "Secret \"creds\" is given twice: in pod.yaml, document 2 (Secret \"creds\") and in creds.yaml"
    );

    let elsewhere = Inputs {
        manifest: (pod.to_owned(), "pod.yaml".to_owned()),
        secrets: vec![(
            secret.replace("{name: creds}", "{name: creds, namespace: prod}"),
            "creds.yaml".to_owned(),
        )],
        ..Default::default()
    };
    assert_eq!(
        message(&elsewhere.runnable().unwrap_err()),
        "creds.yaml: Secret \"creds\" is in namespace \"prod\", the pod in \"default\": a pod sees only the objects of its own namespace"
    );

    let claim_elsewhere = Inputs {
        manifest: (
            format!("{pod}---\napiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {{name: data, namespace: prod}}\nspec: {{accessModes: [ReadWriteOnce], resources: {{requests: {{storage: 1Gi}}}}}}\n"),
            "pod.yaml".to_owned(),
        ),
        secrets: vec![(secret.to_owned(), "creds.yaml".to_owned())],
        ..Default::default()
    };
    assert!(
        message(&claim_elsewhere.runnable().unwrap_err())
            .contains("PersistentVolumeClaim \"data\" is in namespace \"prod\""),
        "{}",
        message(&claim_elsewhere.runnable().unwrap_err())
    );

    let no_pod = Inputs {
        manifest: (secret.to_owned(), "creds.yaml".to_owned()),
        ..Default::default()
    };
    assert_eq!(
        message(&no_pod.runnable().unwrap_err()),
        "creds.yaml: no Pod in the file (it holds only Secrets)"
    );
}

#[test]
fn source_rules_of_the_api_server() {
    let pod =
        |spec: &str| format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: web}}\nspec:\n{spec}");
    let errors = |spec: &str| match parse_bundle(&pod(spec), "p.yaml") {
        Err(ManifestError::Invalid { errors, .. }) => {
            errors.iter().map(ToString::to_string).collect::<Vec<_>>()
        }
        other => panic!("{spec}: {other:?}"),
    };
    assert_eq!(
        errors("  containers:\n  - name: app\n    image: busybox\n    env:\n    - name: A\n      value: x\n      valueFrom: {fieldRef: {fieldPath: metadata.name}}\n    - name: B\n      valueFrom: {}\n    - name: C\n      valueFrom: {fieldRef: {fieldPath: spec.containers}}\n    - name: D\n      valueFrom: {resourceFieldRef: {resource: limits.cpu, divisor: 1Mi}}\n    - name: E\n      valueFrom: {resourceFieldRef: {resource: limits.cpu, containerName: other}}\n    envFrom:\n    - prefix: 1X\n      configMapRef: {name: c}\n    - {}\n"),
        vec![
            "spec.containers[0].env[0].valueFrom: Invalid value: \"\": may not be specified when `value` is not empty",
            "spec.containers[0].env[1].valueFrom: Invalid value: \"\": must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`",
            "spec.containers[0].env[2].valueFrom.fieldRef.fieldPath: Unsupported value: \"spec.containers\": supported values: \"metadata.name\", \"metadata.namespace\", \"metadata.uid\", \"spec.nodeName\", \"spec.serviceAccountName\", \"status.hostIP\", \"status.hostIPs\", \"status.podIP\", \"status.podIPs\"",
            "spec.containers[0].env[3].valueFrom.resourceFieldRef.divisor: Invalid value: \"limits.cpu\": only divisor's values 1m and 1 are supported with the cpu resource",
            "spec.containers[0].env[4].valueFrom.resourceFieldRef.containerName: Not found: \"other\"",
            "spec.containers[0].envFrom[0].prefix: Invalid value: \"1X\": a valid environment variable name must consist of alphabetic characters, digits, '_', '-', or '.', and must not start with a digit (e.g. 'my.env-name',  or 'MY_ENV.NAME',  or 'MyEnvName1', regex used for validation is '[-._a-zA-Z][-._a-zA-Z0-9]*')",
            "spec.containers[0].envFrom: Invalid value: \"\": must specify one of: `configMapRef` or `secretRef`",
        ]
    );
    assert_eq!(
        errors("  volumes:\n  - name: a\n    configMap: {name: '', defaultMode: 01000, items: [{key: k, path: ../x}]}\n  - name: b\n    downwardAPI: {items: [{path: p, fieldRef: {fieldPath: status.podIP}}, {path: q, resourceFieldRef: {resource: limits.memory}}]}\n  - name: c\n    projected: {sources: [{configMap: {name: x, items: [{key: a, path: same}]}}, {secret: {name: y, items: [{key: b, path: same}]}}, {serviceAccountToken: {path: t}}]}\n  containers:\n  - {name: app, image: busybox}\n"),
        vec![
            "spec.volumes[0].configMap.name: Required value",
            "spec.volumes[0].configMap.defaultMode: Invalid value: 512: must be a number between 0 and 0777 (octal), both inclusive",
            "spec.volumes[0].configMap.items[0].path: Invalid value: \"../x\": must not contain '..'",
            "spec.volumes[0].configMap.items[0].path: Invalid value: \"../x\": must not start with '..'",
            "spec.volumes[1].downwardAPI.items[0].fieldRef.fieldPath: Unsupported value: \"status.podIP\": supported values: \"metadata.annotations\", \"metadata.labels\", \"metadata.name\", \"metadata.namespace\", \"metadata.uid\"",
            "spec.volumes[1].downwardAPI.items[1].resourceFieldRef.containerName: Required value",
            "spec.volumes[2].projected.sources[1].secret.items: Invalid value: \"same\": conflicting duplicate paths",
            "spec.volumes[2].projected.sources[2].serviceAccountToken: Forbidden: not supported by podctl yet",
        ]
    );
}

const DEPLOYMENT: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  strategy: {type: Recreate}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: app, image: busybox}]
"#;

#[test]
fn workloads_run_their_template_named_as_their_controller_names_pods() {
    let d = parse_valid(DEPLOYMENT, "web.yaml").expect("deployment");
    let name = d.pod.metadata.name.clone().unwrap();
    let labels = d.pod.metadata.labels.clone().unwrap();
    let hash = &labels["pod-template-hash"];
    assert_eq!(labels["app"], "web");
    assert!(name.starts_with(&format!("web-{hash}-")), "{name}");
    assert_eq!(name.len(), format!("web-{hash}-").len() + 5, "{name}");
    assert!(super::is_dns_label(&name));
    // The same template hashes the same; a seeded name is stable, a random one is not.
    let again = parse_valid(DEPLOYMENT, "web.yaml").unwrap();
    assert_eq!(
        again.pod.metadata.labels.clone().unwrap()["pod-template-hash"],
        *hash
    );
    assert_eq!(
        d.renamed(&seeded_suffix("abc")).pod.metadata.name,
        again.renamed(&seeded_suffix("abc")).pod.metadata.name
    );

    let sts = parse_valid(
        "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: db}\nspec:\n  serviceName: db\n  selector: {matchLabels: {app: db}}\n  template:\n    metadata: {labels: {app: db}}\n    spec: {containers: [{name: db, image: busybox}]}\n",
        "db.yaml",
    )
    .expect("statefulset");
    assert_eq!(sts.pod.metadata.name.as_deref(), Some("db-0"));
    let spec = sts.pod.spec.as_ref().unwrap();
    assert_eq!(spec.hostname.as_deref(), Some("db-0"));
    assert_eq!(spec.subdomain.as_deref(), Some("db"));
    let labels = sts.pod.metadata.labels.unwrap();
    assert_eq!(labels["statefulset.kubernetes.io/pod-name"], "db-0");
    assert_eq!(labels["apps.kubernetes.io/pod-index"], "0");

    let job = parse_valid(
        "apiVersion: batch/v1\nkind: Job\nmetadata: {name: migrate}\nspec:\n  backoffLimit: 2\n  completions: 3\n  parallelism: 5\n  activeDeadlineSeconds: 60\n  template:\n    spec:\n      restartPolicy: Never\n      containers: [{name: m, image: busybox}]\n",
        "job.yaml",
    )
    .expect("job");
    let Controller::Job(rules) = &job.controller else {
        panic!("{:?}", job.controller)
    };
    assert_eq!(
        (
            rules.backoff_limit,
            rules.completions,
            rules.parallelism,
            rules.active_deadline_seconds
        ),
        (2, 3, 3, Some(60))
    );
    assert_eq!(
        job.pod.metadata.labels.unwrap()["batch.kubernetes.io/job-name"],
        "migrate"
    );
    assert!(job.pod.metadata.name.unwrap().starts_with("migrate-"));
}

#[test]
fn a_stateful_set_claims_storage_per_ordinal() {
    let sts = parse_valid(
        "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: db}\nspec:\n  selector: {matchLabels: {app: db}}\n  volumeClaimTemplates:\n  - metadata: {name: data}\n    spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}\n  template:\n    metadata: {labels: {app: db}}\n    spec: {containers: [{name: db, image: busybox, volumeMounts: [{name: data, mountPath: /data}]}]}\n",
        "db.yaml",
    )
    .expect("statefulset");
    let claim = &sts.claims["data-db-0"];
    assert_eq!(claim.metadata.labels.clone().unwrap()["app"], "db");
    let volumes = sts.pod.spec.clone().unwrap().volumes.unwrap();
    let source = volumes[0].persistent_volume_claim.clone().unwrap();
    assert_eq!(
        (volumes[0].name.as_str(), source.claim_name.as_str()),
        ("data", "data-db-0")
    );
    // A bad claim template is reported at its own path.
    let err = parse_bundle(
        "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: db}\nspec:\n  selector: {matchLabels: {app: db}}\n  volumeClaimTemplates:\n  - metadata: {name: data}\n    spec: {accessModes: [ReadWriteOnce]}\n  template:\n    metadata: {labels: {app: db}}\n    spec: {containers: [{name: db, image: busybox}]}\n",
        "db.yaml",
    )
    .expect_err("no storage");
    assert!(
        message(&err)
            .contains("* spec.volumeClaimTemplates[0].spec.resources[storage]: Required value"),
        "{}",
        message(&err)
    );
}

#[test]
fn workload_rules() {
    let invalid = |text: &str| match parse_bundle(text, "w.yaml") {
        Err(e) => e.to_string(),
        Ok(_) => panic!("accepted: {text}"),
    };
    let bad = DEPLOYMENT
        .replace("replicas: 1", "replicas: -1")
        .replace("matchLabels: {app: web}", "matchLabels: {app: api}")
        .replace("image: busybox", "image: \"\"");
    assert_eq!(
        invalid(&bad),
        "The Deployment \"web\" is invalid:\n\
         * spec.template.spec.containers[0].image: Required value\n\
         * spec.template.metadata.labels: Invalid value: {\"app\": \"web\"}: `selector` does not match template `labels`\n\
         * spec.replicas: Invalid value: -1: must be greater than or equal to 0"
    );
    let never = DEPLOYMENT.replace("containers:", "restartPolicy: Never\n      containers:");
    assert!(
        invalid(&never).contains(
            "spec.template.spec.restartPolicy: Unsupported value: \"Never\": supported values: \"Always\""
        ),
        "{}",
        invalid(&never)
    );
    let job = "apiVersion: batch/v1\nkind: Job\nmetadata: {name: j}\nspec:\n  suspend: true\n  template:\n    spec:\n      containers: [{name: m, image: busybox}]\n";
    assert_eq!(
        invalid(job),
        "The Job \"j\" is invalid:\n\
         * spec.template.spec.restartPolicy: Required value: valid values: \"OnFailure\", \"Never\"\n\
         * spec.suspend: Forbidden: not supported by podctl yet"
    );
    let two = format!(
        "{DEPLOYMENT}---\n{}",
        DEPLOYMENT.replace("name: web}", "name: api}")
    );
    assert!(
        invalid(&two).contains("are both workloads"),
        "{}",
        invalid(&two)
    );
}

const CRON_JOB: &str = "apiVersion: batch/v1\nkind: CronJob\nmetadata: {name: backup}\nspec:\n  schedule: \"30 2 * * *\"\n  timeZone: Europe/Berlin\n  concurrencyPolicy: Replace\n  startingDeadlineSeconds: 120\n  failedJobsHistoryLimit: 0\n  jobTemplate:\n    spec:\n      backoffLimit: 1\n      template:\n        spec:\n          restartPolicy: OnFailure\n          containers: [{name: b, image: busybox}]\n";

#[test]
fn a_cron_job_makes_jobs_named_by_their_time() {
    let cron = parse_valid(CRON_JOB, "cron.yaml").expect("cronjob");
    let Controller::CronJob(rules) = &cron.controller else {
        panic!("{:?}", cron.controller)
    };
    assert_eq!(rules.schedule_text, "30 2 * * *");
    assert_eq!(rules.time_zone.as_deref(), Some("Europe/Berlin"));
    assert_eq!(rules.concurrency, Concurrency::Replace);
    assert_eq!(rules.starting_deadline_seconds, Some(120));
    assert_eq!(
        (
            rules.successful_jobs_history_limit,
            rules.failed_jobs_history_limit
        ),
        (3, 0)
    );
    assert!(!rules.suspend);
    assert_eq!(rules.job.backoff_limit, 1);
    // `<cronjob>-<minutes since the epoch>`, as the controller names its Jobs.
    let at: jiff::Timestamp = "2026-11-25T01:30:00Z".parse().unwrap();
    let job = rules.job(at);
    assert_eq!(job.name, format!("backup-{}", at.as_second() / 60));
    let pod = Controller::Job(job.clone()).pod(&cron.template, "abcde");
    assert_eq!(
        pod.metadata.name.as_deref(),
        Some(format!("{}-abcde", job.name).as_str())
    );
    assert_eq!(pod.metadata.labels.unwrap()["job-name"], job.name);
}

#[test]
fn cron_job_rules() {
    let invalid = |text: &str| match parse_bundle(text, "c.yaml") {
        Err(e) => e.to_string(),
        Ok(_) => panic!("accepted: {text}"),
    };
    let bad = CRON_JOB
        .replace("30 2 * * *", "61 2 * * *")
        .replace("Europe/Berlin", "Mars/Base")
        .replace("Replace", "Sometimes")
        .replace(
            "startingDeadlineSeconds: 120",
            "startingDeadlineSeconds: -1",
        )
        .replace("restartPolicy: OnFailure", "restartPolicy: Always");
    assert_eq!(
        invalid(&bad),
        "The CronJob \"backup\" is invalid:\n\
         * spec.schedule: Invalid value: \"61 2 * * *\": end of range (61) above maximum (59): 61\n\
         * spec.timeZone: Invalid value: \"Mars/Base\": unknown time zone Mars/Base\n\
         * spec.concurrencyPolicy: Unsupported value: \"Sometimes\": supported values: \"Allow\", \"Forbid\", \"Replace\"\n\
         * spec.startingDeadlineSeconds: Invalid value: -1: must be greater than or equal to 0\n\
         * spec.jobTemplate.spec.template.spec.restartPolicy: Unsupported value: \"Always\": supported values: \"OnFailure\", \"Never\""
    );
    let tz = CRON_JOB.replace("30 2 * * *", "CRON_TZ=UTC 30 2 * * *");
    assert!(
        invalid(&tz).contains("cannot use TZ or CRON_TZ in schedule, use timeZone field instead"),
        "{}",
        invalid(&tz)
    );
    let local = CRON_JOB.replace("Europe/Berlin", "Local");
    assert!(
        invalid(&local).contains("timeZone must be an explicit time zone"),
        "{}",
        invalid(&local)
    );
    let long = CRON_JOB.replace("name: backup", &format!("name: {}", "b".repeat(53)));
    assert!(
        invalid(&long).contains("must be no more than 52 characters"),
        "{}",
        invalid(&long)
    );
}

#[test]
fn more_replicas_only_when_asked_for_and_without_host_ports() {
    let three = parse_valid(&DEPLOYMENT.replace("replicas: 1", "replicas: 3"), "d.yaml")
        .expect("three replicas parse");
    assert_eq!(three.controller.replicas(), 3);
    assert_eq!(
        message(&three.one_replica().unwrap_err()),
        "The Deployment \"web\" is invalid:\n\
         * spec.replicas: Invalid value: 3: podctl runs one replica on this host (set replicas: 1, or run every replica in the foreground with `podctl run --all-replicas`)"
    );
    three.replicas_fit().expect("no hostPort");
    let pods = three.replica_pods();
    let mut names: Vec<String> = pods
        .iter()
        .map(|p| p.pod.metadata.name.clone().unwrap())
        .collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 3, "{names:?}");
    let hash = match &three.controller {
        Controller::Deployment { template_hash, .. } => template_hash.clone(),
        other => panic!("{other:?}"),
    };
    assert!(names.iter().all(|n| n.starts_with(&format!("web-{hash}-"))));

    let ported = parse_valid(
        &DEPLOYMENT.replace("replicas: 1", "replicas: 2").replace(
            "image: busybox}",
            "image: busybox, ports: [{containerPort: 80, hostPort: 8080}]}",
        ),
        "d.yaml",
    )
    .expect("parses");
    assert_eq!(
        message(&ported.replicas_fit().unwrap_err()),
        "The Deployment \"web\" is invalid:\n\
         * spec.template.spec.containers[0].ports[0].hostPort: Invalid value: 8080: 2 replicas on one host cannot share a host port"
    );
    // One replica; a StatefulSet refuses more even with --all-replicas.
    parse_valid(DEPLOYMENT, "d.yaml")
        .unwrap()
        .one_replica()
        .unwrap();
    let sts = "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: db}\nspec:\n  replicas: 2\n  selector: {matchLabels: {app: db}}\n  template:\n    metadata: {labels: {app: db}}\n    spec: {containers: [{name: db, image: busybox}]}\n";
    let err = parse_bundle(sts, "s.yaml").unwrap_err();
    assert!(
        message(&err).contains("spec.replicas: Invalid value: 2: podctl runs one replica on this host (set replicas: 1)"),
        "{}",
        message(&err)
    );
}
