//! The registry harness itself: a loopback `docker-registry` that images can be pushed to
//! (anonymous and with basic auth), blobs corrupted in its storage, and the proxy in front of
//! it (throttle, dropped connections, cut).

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use podctl_integration_tests::{
    busybox_image_tar, http_get, is_alive, oci_image_tar, HttpResponse, OciTarOptions, Proxy,
    Registry,
};
use sha2::{Digest as _, Sha256};

const ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, \
                      application/vnd.oci.image.index.v1+json, \
                      application/vnd.docker.distribution.manifest.v2+json, \
                      application/vnd.docker.distribution.manifest.list.v2+json";

fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

fn get(host: &str, path: &str, auth: Option<&str>) -> HttpResponse {
    let mut headers = vec![("Accept", ACCEPT)];
    if let Some(a) = auth {
        headers.push(("Authorization", a));
    }
    http_get(host, path, &headers).unwrap_or_else(|e| panic!("GET {path} on {host}: {e}"))
}

fn json(r: &HttpResponse) -> serde_json::Value {
    serde_json::from_slice(&r.body).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {:?}",
            String::from_utf8_lossy(&r.body[..r.body.len().min(300)])
        )
    })
}

/// The pid of the docker-registry serving `dir`'s config.
fn registry_pid(dir: &Path) -> Option<i32> {
    let config = dir.join("config.yml").display().to_string();
    std::fs::read_dir("/proc").ok()?.find_map(|e| {
        let pid: i32 = e.ok()?.file_name().to_str()?.parse().ok()?;
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        (cmd.contains("docker-registry") && cmd.contains(&config)).then_some(pid)
    })
}

#[test]
fn anonymous_registry_serves_pushed_images_through_the_proxy() {
    let images = tempfile::tempdir().unwrap();
    let mut registry = Registry::start();
    assert!(registry.host().starts_with("127.0.0.1:"));
    assert_eq!(get(&registry.host(), "/v2/", None).status, 200);

    // busybox, as the tests build it: the pushed manifest is the tarball's, byte for byte.
    let tar = busybox_image_tar(images.path(), "busybox:1", false);
    let digest = registry.push_oci_tar(&tar, "test/busybox:1");
    let r = get(&registry.host(), "/v2/test/busybox/manifests/1", None);
    assert_eq!(r.status, 200, "{}", registry.log());
    assert_eq!(sha256(&r.body), digest);
    assert_eq!(r.header("docker-content-digest"), Some(digest.as_str()));
    let manifest = json(&r);
    assert_eq!(
        manifest["layers"][0]["mediaType"], "application/vnd.oci.image.layer.v1.tar",
        "skopeo must not recompress: {manifest}"
    );

    // Three extra layers, fetched through an unthrottled proxy.
    let tar = oci_image_tar(
        images.path(),
        &OciTarOptions {
            extra_layers: vec![100_000, 200_000, 300_000],
            ..OciTarOptions::named("multi:2")
        },
    );
    let multi = registry.push_oci_tar(&tar, "test/multi:2");
    let proxy = Proxy::start(&registry.host(), 0);
    let r = get(&proxy.host(), "/v2/test/multi/manifests/2", None);
    assert_eq!(r.status, 200);
    assert_eq!(sha256(&r.body), multi);
    let manifest = json(&r);
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 4, "{manifest}");
    let config = get(
        &proxy.host(),
        &format!(
            "/v2/test/multi/blobs/{}",
            manifest["config"]["digest"].as_str().unwrap()
        ),
        None,
    );
    assert_eq!(
        json(&config)["rootfs"]["diff_ids"]
            .as_array()
            .unwrap()
            .len(),
        4
    );
    let last = layers[3]["digest"].as_str().unwrap().to_string();
    let blob = get(&proxy.host(), &format!("/v2/test/multi/blobs/{last}"), None);
    assert_eq!(blob.status, 200);
    assert_eq!(sha256(&blob.body), last);
    assert_eq!(blob.body.len() as u64, layers[3]["size"].as_u64().unwrap());
    assert!(proxy.bytes_to_clients() > 300_000);

    // A corrupted blob is served with its length but not its digest.
    registry.corrupt_blob(&last);
    let bad = get(&proxy.host(), &format!("/v2/test/multi/blobs/{last}"), None);
    assert_eq!(bad.status, 200);
    assert_eq!(bad.body.len(), blob.body.len());
    assert_ne!(sha256(&bad.body), last);

    // Cut: connecting is refused from then on.
    proxy.cut();
    let err = TcpStream::connect(proxy.host()).expect_err("connecting to a cut proxy");
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused, "{err}");

    // Stop leaves neither the process nor the dir.
    let dir = registry.dir().to_path_buf();
    let pid = registry_pid(&dir).expect("the registry's process");
    registry.stop();
    assert!(!is_alive(pid), "registry {pid} still runs");
    assert!(!dir.exists(), "{} still exists", dir.display());
    assert!(TcpStream::connect(registry.host()).is_err());
}

#[test]
fn auth_registry_refuses_anonymous_requests() {
    let images = tempfile::tempdir().unwrap();
    let registry = Registry::start_with_auth("tester", "s3cret:pw");
    let r = get(&registry.host(), "/v2/", None);
    assert_eq!(r.status, 401);
    let challenge = r.header("www-authenticate").unwrap_or_default();
    assert!(challenge.starts_with("Basic realm="), "{challenge}");
    let auth = registry.authorization().unwrap();
    assert_eq!(
        get(&registry.host(), "/v2/", Some("Basic dGVzdGVyOndyb25n")).status,
        401
    );
    assert_eq!(get(&registry.host(), "/v2/", Some(&auth)).status, 200);

    let tar = busybox_image_tar(images.path(), "busybox:1", true);
    let digest = registry.push_oci_tar(&tar, "private/busybox:1");
    let path = "/v2/private/busybox/manifests/1";
    assert_eq!(get(&registry.host(), path, None).status, 401);
    let r = get(&registry.host(), path, Some(&auth));
    assert_eq!(r.status, 200);
    assert_eq!(sha256(&r.body), digest);
}

#[test]
fn multi_platform_index_is_pushed_whole() {
    let images = tempfile::tempdir().unwrap();
    let registry = Registry::start();
    let tar = oci_image_tar(
        images.path(),
        &OciTarOptions {
            extra_platforms: vec!["linux/s390x".into(), "windows/amd64".into()],
            platform_index: true,
            ..OciTarOptions::named("multi:1")
        },
    );
    let digest = registry.push_oci_tar(&tar, "test/multiarch:1");
    let r = get(&registry.host(), "/v2/test/multiarch/manifests/1", None);
    assert_eq!(r.status, 200);
    assert_eq!(sha256(&r.body), digest);
    let index = json(&r);
    assert_eq!(
        index["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    let manifests = index["manifests"].as_array().unwrap();
    assert_eq!(manifests.len(), 3, "{index}");
    for m in manifests {
        let d = m["digest"].as_str().unwrap();
        let r = get(
            &registry.host(),
            &format!("/v2/test/multiarch/manifests/{d}"),
            None,
        );
        assert_eq!(r.status, 200, "{d}");
        let config = json(&r)["config"]["digest"].as_str().unwrap().to_string();
        let r = get(
            &registry.host(),
            &format!("/v2/test/multiarch/blobs/{config}"),
            None,
        );
        assert_eq!(r.status, 200, "config of {d}");
        assert_eq!(json(&r)["os"], m["platform"]["os"]);
    }
}

#[test]
fn proxy_throttles_and_drops_connections() {
    let images = tempfile::tempdir().unwrap();
    let registry = Registry::start();
    let tar = oci_image_tar(
        images.path(),
        &OciTarOptions {
            extra_layers: vec![400_000],
            ..OciTarOptions::named("big:1")
        },
    );
    registry.push_oci_tar(&tar, "test/big:1");
    let manifest = json(&get(&registry.host(), "/v2/test/big/manifests/1", None));
    let layer = manifest["layers"][1]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let path = format!("/v2/test/big/blobs/{layer}");

    // 400 kB at 1 MB/s: about 0.4 s.
    let proxy = Proxy::start(&registry.host(), 1_000_000);
    let started = Instant::now();
    let blob = get(&proxy.host(), &path, None);
    let took = started.elapsed();
    assert_eq!(sha256(&blob.body), layer);
    assert!(took >= Duration::from_millis(350), "took {took:?}");
    assert!(took < Duration::from_secs(3), "took {took:?}");

    // A download in flight is cut short; the next connection works.
    let host = proxy.host();
    let request = format!("GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n");
    let reader = std::thread::spawn(move || {
        let mut s = TcpStream::connect(host).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(request.as_bytes()).unwrap();
        let mut got = Vec::new();
        let result = s.read_to_end(&mut got);
        (got.len(), result.is_ok())
    });
    std::thread::sleep(Duration::from_millis(150));
    proxy.drop_connections();
    let (got, _) = reader.join().unwrap();
    assert!(got > 0 && got < 300_000, "read {got} bytes");
    let again = get(&proxy.host(), "/v2/test/big/manifests/1", None);
    assert_eq!(again.status, 200);
    assert_eq!(proxy.connections_accepted(), 3);
}
