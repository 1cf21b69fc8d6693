//! The pod network through the real CNI plugins (bridge, host-local, portmap, firewall), on
//! a bridge and /24 of each test's own: addresses in the status and /etc/hosts, pods reaching
//! each other and the host, hostPorts, their conflicts, and bad network set-ups. Every test
//! ends with the fixture's check that no bridge port, address reservation or iptables rule of
//! its pods is left. All traffic stays on this machine (the test bridge and loopback).

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

use podctl_integration_tests::{
    assert_success, http_get, lines_of, pod, pod_with_policy, prefixed_lines, text, Fixture,
};
use serde_json::Value;

/// The pod's status, as `inspect -o json` shows it; `None` before it exists.
fn status(f: &Fixture, name: &str) -> Option<Value> {
    let out = f.podctl(&["inspect", name, "-o", "json"], None);
    if !out.status.success() {
        return None;
    }
    let pod: Value = serde_json::from_slice(&out.stdout).expect("inspect prints JSON");
    Some(pod["status"].clone())
}

/// Waits for the pod's main container to run and returns its podIP.
fn running_pod_ip(f: &Fixture, name: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(s) = status(f, name) {
            let running = s["containerStatuses"][0]["state"]["running"].is_object();
            if let (true, Some(ip)) = (running, s["podIP"].as_str()) {
                return ip.to_owned();
            }
        }
        assert!(
            Instant::now() < deadline,
            "pod {name} never ran with an address"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A web server pod answering `body` on port 8080 (and `hostPort` when given).
fn web_pod(name: &str, body: &str, host_port: Option<u16>) -> String {
    let port = match host_port {
        Some(p) => format!("[{{containerPort: 8080, hostPort: {p}}}]"),
        None => "[{containerPort: 8080}]".to_owned(),
    };
    pod(
        name,
        &format!(
            r#"  terminationGracePeriodSeconds: 2
  containers:
    - name: web
      image: busybox:1.35
      command: ["sh", "-c", "mkdir /www && echo {body} > /www/index.html && exec httpd -f -p 8080 -h /www"]
      ports: {port}
"#
        ),
    )
}

/// A port nothing listens on now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn get_until_ok(addr: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match http_get(addr, "/", &[]) {
            Ok(r) if r.status == 200 => return String::from_utf8_lossy(&r.body).trim().to_owned(),
            other => assert!(
                Instant::now() < deadline,
                "GET http://{addr}/ never answered: {other:?}"
            ),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_get_addresses_and_reach_each_other() {
    let f = Fixture::new("net-pods").await;
    let server = f.start(
        &["run", "--rm", "-"],
        Some(&web_pod("server", "hello-from-server", None)),
    );
    let server_ip = running_pod_ip(&f, "server");
    assert_eq!(server_ip, f.net.address(2), "the network's first pod");
    let s = status(&f, "server").unwrap();
    assert_eq!(s["podIPs"][0]["ip"], server_ip.as_str());
    assert!(s["hostIP"].as_str().is_some_and(|h| !h.is_empty()), "{s:#}");

    let out = f.podctl(&["run", "-"], Some(&pod(
        "client",
        &format!(
            r#"  hostname: asker
  containers:
    - name: c
      image: busybox:1.35
      command: ["sh", "-c", "timeout 10 wget -q -O- http://{server_ip}:8080/; ip -4 -o addr show eth0 | tr -s ' ' | cut -d' ' -f4; grep asker /etc/hosts"]
"#
        ),
    )));
    assert_success(&out, "podctl run client");
    let lines = lines_of(&out, "c");
    assert_eq!(lines[0], "hello-from-server");
    let client_ip = lines[1].split('/').next().unwrap().to_owned();
    assert_ne!(client_ip, server_ip);
    // The kubelet's line for the pod's own address.
    assert_eq!(lines[2], format!("{client_ip}\tasker"));
    let final_status: Value = {
        let out = f.podctl(&["inspect", "client", "-o", "json"], None);
        serde_json::from_slice::<Value>(&out.stdout).unwrap()["status"].clone()
    };
    assert_eq!(
        final_status["podIP"],
        client_ip.as_str(),
        "{final_status:#}"
    );
    f.remove("client");

    server.signal(nix::sys::signal::Signal::SIGTERM);
    let out = server.wait(Duration::from_secs(30));
    assert!(out.status.code().is_some(), "{}", text(&out.stderr));
    f.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_init_container_waits_for_a_service_on_the_network() {
    let f = Fixture::new("net-wait").await;
    let gateway = f.net.gateway();
    let port = free_port();
    let manifest = pod_with_policy(
        "migrate",
        "Never",
        &format!(
            r#"  initContainers:
    - name: wait-for-db
      image: busybox:1.35
      command: ["sh", "-c", "until timeout 2 wget -q -O- http://{gateway}:{port}/; do echo waiting; sleep 0.2; done"]
  containers:
    - name: app
      image: busybox:1.35
      command: ["echo", "app started"]
"#
        ),
    );
    let mut run = f.start(&["run", "--rm", "-"], Some(&manifest));
    // The init container runs on the pod's network and finds nothing there a few times.
    run.wait_until("the init container waited", Duration::from_secs(20), || {
        run_log_has(&f, "migrate", "waiting")
    });
    // Then the "database" comes up on the bridge's gateway address, answering every
    // connection (some may be attempts the init container gave up on).
    let listener = TcpListener::bind((gateway.as_str(), port)).expect("listening on the gateway");
    let (peers_tx, peers) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let _ = peers_tx.send(conn.peer_addr().map(|p| p.ip().to_string()));
            let mut request = [0u8; 1024];
            let _ = conn.read(&mut request);
            let _ = conn.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 9\r\n\r\ndb-ready\n");
        }
    });
    let out = run.wait(Duration::from_secs(30));
    assert_success(&out, "podctl run");
    let init = lines_of(&out, "wait-for-db");
    assert!(init.iter().any(|l| l == "waiting"), "{init:?}");
    assert_eq!(init.last().map(String::as_str), Some("db-ready"));
    assert_eq!(lines_of(&out, "app"), ["app started"]);
    let peer = peers
        .try_recv()
        .expect("the init container connected")
        .unwrap();
    assert!(peer.starts_with("10.213."), "{peer}");
    f.finish().await;
}

fn run_log_has(f: &Fixture, pod: &str, needle: &str) -> bool {
    std::fs::read_to_string(f.log_path(pod, "wait-for-db", 0)).is_ok_and(|l| l.contains(needle))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_ports_are_published_and_never_shared() {
    let f = Fixture::new("net-hostport").await;
    let port = free_port();
    let web = f.start(
        &["run", "--rm", "-"],
        Some(&web_pod("web", "published", Some(port))),
    );
    running_pod_ip(&f, "web");
    // From the host itself, on loopback, as `curl localhost:PORT` would.
    assert_eq!(get_until_ok(&format!("127.0.0.1:{port}")), "published");
    // And on the host's own address, as from another machine.
    let host_ip = status(&f, "web").unwrap()["hostIP"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(get_until_ok(&format!("{host_ip}:{port}")), "published");

    // A second pod asking for the same hostPort is refused before anything of it exists.
    let out = f.run(&web_pod("web2", "never", Some(port)));
    f.assert_refused(
        &out,
        125,
        &format!(
            "hostPort {port}/TCP of pod \"{ns}/web2\" is already taken by pod \"{ns}/web\"",
            ns = f.namespace
        ),
        Some("web2"),
    );

    web.signal(nix::sys::signal::Signal::SIGTERM);
    web.wait(Duration::from_secs(30));
    // Freed with the pod: the next pod asking for the port gets it, and the traffic.
    let next = f.start(
        &["run", "--rm", "-"],
        Some(&web_pod("next", "the-next-one", Some(port))),
    );
    running_pod_ip(&f, "next");
    assert_eq!(get_until_ok(&format!("127.0.0.1:{port}")), "the-next-one");
    next.signal(nix::sys::signal::Signal::SIGTERM);
    next.wait(Duration::from_secs(30));

    // A hostPort the network cannot publish is refused, not left unpublished.
    let out = f.podctl(
        &["run", "--rm", "--network", "none", "-"],
        Some(&web_pod("lo", "x", Some(port))),
    );
    f.assert_refused(
        &out,
        125,
        "cannot be published: the network is \"none\" (loopback only)",
        Some("lo"),
    );
    f.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_network_set_ups_are_refused_with_nothing_created() {
    let f = Fixture::new("net-bad").await;
    let manifest = pod(
        "p",
        "  containers:\n    - name: c\n      image: busybox:1.35\n      command: [\"true\"]\n",
    );
    // A missing plugin: named, with the dirs searched.
    let out = f.podctl(
        &[
            "run",
            "--cni-bin-dir",
            "/nonexistent/cni:/also/missing",
            "-",
        ],
        Some(&manifest),
    );
    f.assert_refused(
        &out,
        125,
        "CNI plugin \"bridge\" not found in /nonexistent/cni, /also/missing",
        Some("p"),
    );

    // A network over a subnet the host routes elsewhere: the test network's own, once its
    // bridge exists, from a second config with another bridge.
    let out = f.run(&pod(
        "first",
        "  containers:\n    - name: c\n      image: busybox:1.35\n      command: [\"true\"]\n",
    ));
    assert_success(&out, "podctl run first");
    let other = f.root.path().join("other.d");
    std::fs::create_dir_all(&other).unwrap();
    let list = serde_json::json!({
        "cniVersion": "1.0.0", "name": "overlapping",
        "plugins": [{"type": "bridge", "bridge": "pdoverlap0",
                     "ipam": {"type": "host-local", "subnet": f.net.subnet()}}]
    });
    std::fs::write(other.join("10-o.conflist"), list.to_string()).unwrap();
    let out = f.podctl(
        &["run", "--cni-conf-dir", other.to_str().unwrap(), "-"],
        Some(&manifest),
    );
    f.assert_refused(
        &out,
        125,
        &format!(
            "subnet {} overlaps the host's route to {} on {}",
            f.net.subnet(),
            f.net.subnet(),
            f.net.bridge
        ),
        Some("p"),
    );

    // A network named but absent, and a hostPort out of range.
    let out = f.podctl(&["run", "--network", "nosuch", "-"], Some(&manifest));
    f.assert_refused(&out, 125, "no CNI network named \"nosuch\"", None);
    let out = f.run(&web_pod("p", "x", None).replace(
        "containerPort: 8080",
        "containerPort: 8080, hostPort: 70000",
    ));
    f.assert_refused(&out, 2, "spec.containers[0].ports[0].hostPort: Invalid value: 70000: must be between 1 and 65535, inclusive", Some("p"));

    // `--network none`: loopback only, no address.
    let out = f.podctl(
        &["run", "--rm", "--network", "none", "-o", "json", "-"],
        Some(&pod(
            "lonely",
            "  containers:\n    - name: c\n      image: busybox:1.35\n      command: [\"sh\", \"-c\", \"ls /sys/class/net\"]\n",
        )),
    );
    assert_success(&out, "podctl run --network none");
    assert_eq!(prefixed_lines(&text(&out.stderr), "c"), ["lo"]);
    let s: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(s.get("podIP").is_none(), "{s:#}");
    f.finish().await;
}

/// The README's network examples, as written (only the host ports moved to free ones).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_network_examples_run() {
    let f = Fixture::new("net-examples").await;
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let port = free_port();
    let web = std::fs::read_to_string(examples.join("web-hostport.yaml"))
        .unwrap()
        .replace("hostPort: 8080", &format!("hostPort: {port}"));
    let server = f.start(&["run", "--rm", "-"], Some(&web));
    assert_eq!(
        get_until_ok(&format!("127.0.0.1:{port}")),
        "hello from pod web"
    );
    server.signal(nix::sys::signal::Signal::SIGTERM);
    server.wait(Duration::from_secs(30));

    let port = free_port();
    let wait = std::fs::read_to_string(examples.join("wait-for-service.yaml"))
        .unwrap()
        .replace("8000", &port.to_string());
    let mut run = f.start(&["run", "--rm", "-"], Some(&wait));
    run.wait_until("the init container waited", Duration::from_secs(20), || {
        std::fs::read_to_string(f.log_path("wait-for-service", "wait-for-db", 0))
            .is_ok_and(|l| l.contains("waiting for the service"))
    });
    // The service comes up on the host (all addresses, as `python3 -m http.server` binds).
    let listener = TcpListener::bind(("0.0.0.0", port)).unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let mut request = [0u8; 1024];
            let _ = conn.read(&mut request);
            let _ = conn.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nup\n");
        }
    });
    let out = run.wait(Duration::from_secs(30));
    assert_success(&out, "podctl run examples/wait-for-service.yaml");
    let init = lines_of(&out, "wait-for-db");
    assert_eq!(
        init.last().map(String::as_str),
        Some(format!("the service on {}:{port} answers", f.net.gateway()).as_str())
    );
    assert_eq!(lines_of(&out, "app"), ["app starts: the service is up"]);
    f.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_network_pods_use_the_hosts_address_and_claim_their_ports() {
    let f = Fixture::new("net-hostnet").await;
    let port = free_port();
    let manifest = pod(
        "hostnet",
        &format!(
            r#"  hostNetwork: true
  terminationGracePeriodSeconds: 2
  containers:
    - name: web
      image: busybox:1.35
      command: ["sh", "-c", "mkdir /www && echo on-the-host > /www/index.html && exec httpd -f -p 127.0.0.1:{port} -h /www"]
      ports: [{{containerPort: {port}, hostPort: {port}}}]
"#
        ),
    );
    let server = f.start(&["run", "--rm", "-"], Some(&manifest));
    let ip = running_pod_ip(&f, "hostnet");
    let s = status(&f, "hostnet").unwrap();
    assert_eq!(s["hostIP"], ip.as_str(), "{s:#}");
    assert_eq!(get_until_ok(&format!("127.0.0.1:{port}")), "on-the-host");
    // No CNI: the test network's bridge was never made.
    assert!(!std::path::Path::new("/sys/class/net")
        .join(&f.net.bridge)
        .exists());

    // Its port is claimed: a pod on the network asking for it is refused.
    let out = f.run(&web_pod("thief", "x", Some(port)));
    f.assert_refused(
        &out,
        125,
        &format!("is already taken by pod \"{}/hostnet\"", f.namespace),
        None,
    );
    server.signal(nix::sys::signal::Signal::SIGTERM);
    server.wait(Duration::from_secs(30));
    f.finish().await;
}
