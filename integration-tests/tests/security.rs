//! `securityContext` against a real containerd and runc: seccomp (podctl's `RuntimeDefault`
//! default, `Unconfined`, `Localhost` files), `privileged`, `sysctls`, `fsGroup`. Each test
//! checks the kernel's view from inside the container, and ends with the leak check.

use std::os::unix::fs::FileTypeExt;
use std::path::Path;
use std::process::Output;

use podctl_integration_tests::{assert_success, lines_of, pod, text, Fixture};

/// The line of `/proc/self/status` starting with `field` (e.g. `CapBnd:`) of this process.
fn own_status(field: &str) -> String {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find(|l| l.starts_with(field))
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status"))
        .to_owned()
}

/// `podctl run --rm <manifest file>` with podctl's seccomp root at `seccomp_root`.
fn run_with_seccomp_root(f: &Fixture, manifest: &str, seccomp_root: &Path) -> Output {
    let file = f.root.path().join("manifest.yaml");
    std::fs::write(&file, manifest).unwrap();
    f.command(&["run", "--rm", file.to_str().unwrap()])
        .env("PODCTL_SECCOMP_ROOT", seccomp_root)
        .output()
        .expect("running podctl")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_seccomp_profile_refuses_what_unconfined_allows() {
    let f = Fixture::new("seccompdefault").await;
    // Creating a user namespace needs no capability, so only a seccomp filter refuses it:
    // the same command, with the same capabilities, tells the default profile from none.
    let probe = "grep Seccomp: /proc/self/status; \
                 unshare -U true 2>&1 && echo userns-made || echo userns-refused; \
                 unshare -n true 2>&1 && echo netns-made || echo netns-refused";
    let out = f.run(&pod(
        "seccompdefault",
        &format!(
            r#"
  containers:
    - name: confined
      image: busybox:1.35
      command: ["sh", "-c", "{probe}"]
    - name: unconfined
      image: busybox:1.35
      command: ["sh", "-c", "{probe}"]
      securityContext:
        seccompProfile: {{type: Unconfined}}
        capabilities: {{add: [SYS_ADMIN]}}
    - name: admin
      image: busybox:1.35
      command: ["sh", "-c", "{probe}"]
      securityContext:
        capabilities: {{add: [SYS_ADMIN]}}
"#
        ),
    ));
    assert_success(&out, "podctl run");
    let confined = lines_of(&out, "confined");
    assert_eq!(confined[0], "Seccomp:\t2", "{confined:?}");
    assert!(
        confined[1].contains("Operation not permitted"),
        "{confined:?}"
    );
    assert_eq!(confined[2], "userns-refused", "{confined:?}");
    assert!(
        confined[3].contains("Operation not permitted"),
        "{confined:?}"
    );
    assert_eq!(confined[4], "netns-refused", "{confined:?}");
    assert_eq!(
        lines_of(&out, "unconfined"),
        ["Seccomp:\t0", "userns-made", "netns-made"]
    );
    // The default profile allows namespace syscalls to a container holding CAP_SYS_ADMIN.
    assert_eq!(
        lines_of(&out, "admin"),
        ["Seccomp:\t2", "userns-made", "netns-made"]
    );
    f.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn localhost_profile_is_read_from_the_seccomp_root() {
    let f = Fixture::new("seccomplocal").await;
    let seccomp_root = f.root.path().join("seccomp");
    std::fs::create_dir_all(seccomp_root.join("profiles")).unwrap();
    // Everything allowed but mkdir, which fails with EACCES: no other profile does that.
    std::fs::write(
        seccomp_root.join("profiles/no-mkdir.json"),
        r#"{
  "defaultAction": "SCMP_ACT_ALLOW",
  "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]
}"#,
    )
    .unwrap();
    let probe = "grep Seccomp: /proc/self/status; mkdir /tmp/d 2>&1 && echo made || echo refused";
    let manifest = pod(
        "seccomplocal",
        &format!(
            r#"
  securityContext:
    seccompProfile: {{type: Localhost, localhostProfile: profiles/no-mkdir.json}}
  containers:
    - name: local
      image: busybox:1.35
      command: ["sh", "-c", "{probe}"]
    - name: default
      image: busybox:1.35
      command: ["sh", "-c", "{probe}"]
      securityContext:
        seccompProfile: {{type: RuntimeDefault}}
"#
        ),
    );
    let out = run_with_seccomp_root(&f, &manifest, &seccomp_root);
    assert_success(&out, "podctl run");
    let local = lines_of(&out, "local");
    assert_eq!(local.len(), 3, "{local:?}");
    assert_eq!(local[0], "Seccomp:\t2");
    assert!(local[1].contains("Permission denied"), "{local:?}");
    assert_eq!(local[2], "refused");
    assert_eq!(lines_of(&out, "default"), ["Seccomp:\t2", "made"]);

    // A profile that is not there fails the pod before anything runs, naming the field and
    // the file; nothing of the pod is left.
    let manifest = pod(
        "nofile",
        r#"
  containers:
    - name: c
      image: busybox:1.35
      command: ["true"]
      securityContext:
        seccompProfile: {type: Localhost, localhostProfile: profiles/missing.json}
"#,
    );
    let out = run_with_seccomp_root(&f, &manifest, &seccomp_root);
    let err = text(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert_ne!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("spec.containers[0].securityContext.seccompProfile.localhostProfile"),
        "{err}"
    );
    assert!(
        err.contains(
            &seccomp_root
                .join("profiles/missing.json")
                .display()
                .to_string()
        ),
        "{err}"
    );
    assert!(err.contains("No such file or directory"), "{err}");
    assert!(!f.pod_dir("nofile").exists());

    // An absolute path is the API server's error: exit 2.
    let manifest = pod(
        "absolute",
        r#"
  securityContext:
    seccompProfile: {type: Localhost, localhostProfile: /etc/passwd}
  containers:
    - {name: c, image: "busybox:1.35", command: ["true"]}
"#,
    );
    let out = run_with_seccomp_root(&f, &manifest, &seccomp_root);
    f.assert_refused(&out, 2, "spec.securityContext.seccompProfile.localhostProfile: Invalid value: \"/etc/passwd\": must be a relative path", None);
    f.finish().await;
}

/// A top-level device of the host's `/dev` that runc does not create in every container.
fn host_only_device() -> String {
    let defaults = [
        "null", "zero", "full", "random", "urandom", "tty", "ptmx", "console",
    ];
    let mut names: Vec<String> = std::fs::read_dir("/dev")
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_type()
                .is_ok_and(|t| t.is_char_device() || t.is_block_device())
        })
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !defaults.contains(&n.as_str()))
        .collect();
    names.sort();
    names
        .into_iter()
        .next()
        .expect("the host has a device runc does not add by default")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn privileged_container_gets_every_capability_the_host_devices_and_no_filter() {
    let f = Fixture::new("privileged").await;
    let device = host_only_device();
    let probe = format!(
        "grep -E '^(CapEff|Seccomp):' /proc/self/status; \
         grep ' /sys sysfs ' /proc/mounts | cut -d' ' -f4 | cut -d, -f1; \
         test -e /dev/{device} && echo has-{device} || echo no-{device}; \
         test -c /proc/keys && echo keys-masked || echo keys-unmasked"
    );
    let out = f.run(&pod(
        "privileged",
        &format!(
            r#"
  containers:
    - name: priv
      image: busybox:1.35
      command: ["sh", "-c", "{probe}"]
      securityContext:
        privileged: true
        capabilities: {{drop: [ALL]}}
    - name: plain
      image: busybox:1.35
      command: ["sh", "-c", "{probe}"]
"#
        ),
    ));
    assert_success(&out, "podctl run");
    // All of the host's bounding set (containerd: every capability it holds), drop or not.
    let host = own_status("CapBnd:");
    let host_mask = host.trim_start_matches("CapBnd:");
    assert_eq!(
        lines_of(&out, "priv"),
        [
            format!("CapEff:{host_mask}"),
            "Seccomp:\t0".to_owned(),
            "rw".to_owned(),
            format!("has-{device}"),
            "keys-unmasked".to_owned(),
        ]
    );
    // An ordinary container: containerd's 14 capabilities, the default filter, /sys
    // read-only, no host devices, /proc/keys masked (runc binds /dev/null over it).
    assert_eq!(
        lines_of(&out, "plain"),
        [
            "CapEff:\t00000000a80425fb".to_owned(),
            "Seccomp:\t2".to_owned(),
            "ro".to_owned(),
            format!("no-{device}"),
            "keys-masked".to_owned(),
        ]
    );

    // privileged with allowPrivilegeEscalation: false is the API server's error.
    let out = f.run(&pod(
        "noescalation",
        r#"
  containers:
    - name: c
      image: busybox:1.35
      command: ["true"]
      securityContext: {privileged: true, allowPrivilegeEscalation: false}
"#,
    ));
    f.assert_refused(&out, 2, "spec.containers[0].securityContext: Invalid value: cannot set `allowPrivilegeEscalation` to false and `privileged` to true", Some("noescalation"));
    f.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn safe_sysctls_are_set_in_the_pod_and_unsafe_ones_refused() {
    let f = Fixture::new("sysctls").await;
    let host_shm = std::fs::read_to_string("/proc/sys/kernel/shm_rmid_forced").unwrap();
    let host_port =
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start").unwrap();
    let probe =
        "cat /proc/sys/kernel/shm_rmid_forced /proc/sys/net/ipv4/ip_unprivileged_port_start";
    let out = f.run(&pod(
        "sysctls",
        &format!(
            r#"
  securityContext:
    sysctls:
      - {{name: kernel.shm_rmid_forced, value: "1"}}
      - {{name: net/ipv4/ip_unprivileged_port_start, value: "81"}}
  initContainers:
    - name: init
      image: busybox:1.35
      command: ["sh", "-c", "{probe}"]
  containers:
    - name: main
      image: busybox:1.35
      command: ["sh", "-c", "{probe}"]
"#
        ),
    ));
    assert_success(&out, "podctl run");
    assert_eq!(lines_of(&out, "init"), ["1", "81"]);
    assert_eq!(lines_of(&out, "main"), ["1", "81"]);
    // Set in the pod's namespaces, not the host's.
    assert_eq!(
        std::fs::read_to_string("/proc/sys/kernel/shm_rmid_forced").unwrap(),
        host_shm
    );
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start").unwrap(),
        host_port
    );

    // An unsafe sysctl is the kubelet's SysctlForbidden: refused before anything exists.
    let out = f.run(&pod(
        "unsafe",
        r#"
  securityContext:
    sysctls: [{name: kernel.msgmax, value: "65536"}]
  containers:
    - {name: c, image: "busybox:1.35", command: ["true"]}
"#,
    ));
    f.assert_refused(&out, 2, "spec.securityContext.sysctls[0]: Forbidden: forbidden sysctl: \"kernel.msgmax\" not allowlisted", Some("unsafe"));

    // With hostNetwork the network sysctls would be the host's: the API server's error.
    let out = f.run(&pod(
        "hostnet",
        r#"
  hostNetwork: true
  securityContext:
    sysctls: [{name: net.ipv4.ip_unprivileged_port_start, value: "0"}]
  containers:
    - {name: c, image: "busybox:1.35", command: ["true"]}
"#,
    ));
    f.assert_refused(&out, 2, "spec.securityContext.sysctls[0].name: Invalid value: \"net.ipv4.ip_unprivileged_port_start\": may not be specified when 'hostNetwork' is true", None);
    f.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fs_group_owns_empty_dirs_and_joins_every_container() {
    let f = Fixture::new("fsgroup").await;
    let out = f.run(&pod(
        "fsgroup",
        r#"
  securityContext:
    runAsUser: 1000
    fsGroup: 2000
  volumes:
    - {name: data, emptyDir: {}}
    - {name: mem, emptyDir: {medium: Memory}}
  containers:
    - name: app
      image: busybox:1.35
      command: ["sh", "-c", "id -u; id -G; stat -c '%g %a' /data /mem; mkdir /data/d && touch /data/d/f && stat -c '%g' /data/d /data/d/f"]
      volumeMounts:
        - {name: data, mountPath: /data}
        - {name: mem, mountPath: /mem}
"#,
    ));
    assert_success(&out, "podctl run");
    let lines = lines_of(&out, "app");
    assert_eq!(lines.len(), 6, "{lines:?}");
    assert_eq!(lines[0], "1000");
    assert!(
        lines[1].split(' ').any(|g| g == "2000"),
        "fsGroup among the groups: {lines:?}"
    );
    // Group fsGroup, setgid and group-writable (the tmpfs root keeps its sticky bit).
    assert_eq!(lines[2], "2000 2777", "{lines:?}");
    assert_eq!(lines[3], "2000 3777", "{lines:?}");
    // What the container creates inherits the group.
    assert_eq!(&lines[4..], ["2000", "2000"], "{lines:?}");
    f.finish().await;
}
