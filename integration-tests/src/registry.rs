//! A Docker registry on loopback for pull tests: Debian's `docker-registry` (distribution v2)
//! with its storage, config and log in a temp dir, images pushed into it with `skopeo`, blobs
//! corrupted on disk; and [`Proxy`], a TCP relay in front of it that throttles, drops
//! connections, or goes away. Nothing here reaches beyond 127.0.0.1.

use std::collections::HashMap;
use std::fs;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long the registry may take to answer `GET /v2/` before the test fails.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// Attempts at starting the registry when the port picked was taken meanwhile.
const PORT_ATTEMPTS: usize = 5;

/// A running `docker-registry` on `127.0.0.1:<port>`. Dropping it kills the registry and
/// removes its dir.
pub struct Registry {
    dir: Option<tempfile::TempDir>,
    child: Option<Child>,
    port: u16,
    creds: Option<(String, String)>,
}

impl Registry {
    /// A registry anyone may pull from and push to.
    pub fn start() -> Self {
        Self::launch(None)
    }

    /// A registry requiring HTTP basic auth (htpasswd, bcrypt) as `user`/`password` for every
    /// request, `/v2/` included.
    pub fn start_with_auth(user: &str, password: &str) -> Self {
        Self::launch(Some((user.to_string(), password.to_string())))
    }

    fn launch(creds: Option<(String, String)>) -> Self {
        let binary = find_binary("docker-registry", "docker-registry");
        let dir = tempfile::Builder::new()
            .prefix("podctl-registry-")
            .tempdir_in("/tmp")
            .expect("creating the registry dir");
        let auth = match &creds {
            None => String::new(),
            Some((user, password)) => {
                let out = Command::new(find_binary("htpasswd", "apache2-utils"))
                    .args(["-Bbn", user, password])
                    .stdin(Stdio::null())
                    .output()
                    .expect("running htpasswd");
                assert!(
                    out.status.success(),
                    "htpasswd failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                fs::write(dir.path().join("htpasswd"), &out.stdout).expect("writing htpasswd");
                format!(
                    "auth:\n  htpasswd:\n    realm: podctl-test\n    path: {}\n",
                    dir.path().join("htpasswd").display()
                )
            }
        };
        let mut registry = Registry {
            dir: Some(dir),
            child: None,
            port: 0,
            creds,
        };
        let mut last_failure = String::new();
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port();
            // No notifications, proxy (pull-through cache), redis, debug server or metrics:
            // the registry serves its filesystem and nothing else. Uploads are never purged
            // (that background job only touches the storage, but it logs an error at start).
            let config = format!(
                r#"version: 0.1
log:
  level: info
  formatter: text
storage:
  filesystem:
    rootdirectory: {dir}/storage
  delete:
    enabled: true
  redirect:
    disable: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:{port}
  secret: podctl-integration-tests
{auth}"#,
                dir = registry.dir().display(),
            );
            fs::write(registry.dir().join("config.yml"), config)
                .expect("writing the registry config");
            let log = fs::File::create(registry.log_path()).expect("creating the registry log");
            let child = Command::new(&binary)
                .arg("serve")
                .arg(registry.dir().join("config.yml"))
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("cloning the log handle"))
                .stderr(log)
                // Keep environment overrides (REGISTRY_*) of the caller out of the config.
                .env_clear()
                .env("PATH", "/usr/bin:/bin")
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
            registry.child = Some(child);
            registry.port = port;
            match registry.wait_ready() {
                Ok(()) => return registry,
                Err(failure) => {
                    registry.kill();
                    let log = registry.log();
                    if !log.contains("address already in use") {
                        panic!(
                            "{failure}; registry log {}:\n{log}",
                            registry.log_path().display()
                        );
                    }
                    last_failure = format!("{failure}; log:\n{log}");
                }
            }
        }
        panic!("the registry found no free port in {PORT_ATTEMPTS} attempts: {last_failure}");
    }

    /// Polls `GET /v2/` until the registry answers 200 or 401 (once it logged that it
    /// listens: if the port went to someone else meanwhile, that one must not answer for it).
    fn wait_ready(&mut self) -> Result<(), String> {
        let started = Instant::now();
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                return Err(format!("docker-registry exited during startup ({status})"));
            }
            // Our registry bound the port (it logs so once it did), and it answers.
            let listening = format!("listening on 127.0.0.1:{}", self.port);
            if self.log().contains(&listening) {
                if let Ok(r) = http_get(&self.host(), "/v2/", &[]) {
                    if r.status == 200 || r.status == 401 {
                        return Ok(());
                    }
                }
            }
            if started.elapsed() > START_TIMEOUT {
                return Err(format!(
                    "docker-registry did not answer GET /v2/ on {} within {START_TIMEOUT:?}",
                    self.host()
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// `127.0.0.1:<port>`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The credentials of a registry started with [`Registry::start_with_auth`].
    pub fn creds(&self) -> Option<(&str, &str)> {
        self.creds.as_ref().map(|(u, p)| (u.as_str(), p.as_str()))
    }

    /// `Basic <base64(user:password)>` for an `Authorization` header, with auth.
    pub fn authorization(&self) -> Option<String> {
        self.creds().map(|(u, p)| basic_auth(u, p))
    }

    /// The dir holding the registry's config, log, htpasswd and storage (panics once
    /// stopped).
    pub fn dir(&self) -> &Path {
        self.dir.as_ref().expect("the registry was stopped").path()
    }

    fn log_path(&self) -> PathBuf {
        self.dir().join("registry.log")
    }

    /// The registry's log so far (a line per request), for assertion messages; empty once
    /// stopped.
    pub fn log(&self) -> String {
        match &self.dir {
            Some(_) => fs::read_to_string(self.log_path()).unwrap_or_default(),
            None => String::new(),
        }
    }

    /// Pushes the image of the OCI-layout tarball `tar` as `<host>/<repo_tag>` with
    /// `skopeo copy --all --preserve-digests`: blobs, manifests and index byte for byte as in
    /// the tarball (uncompressed layers stay uncompressed, digests stay). index.json must
    /// have one entry, a manifest or an image index (a multi-platform image is pushed whole
    /// only in the latter shape: [`crate::OciTarOptions::platform_index`]). Returns the
    /// digest the tag points at (`sha256:<hex>`).
    pub fn push_oci_tar(&self, tar: &Path, repo_tag: &str) -> String {
        let skopeo = find_binary("skopeo", "skopeo");
        let work = tempfile::Builder::new()
            .prefix("push-")
            .tempdir_in(self.dir())
            .expect("creating skopeo's temp dir");
        // An empty registries.conf: no mirrors, no short names, no search of other registries.
        let registries_conf = work.path().join("registries.conf");
        fs::write(&registries_conf, "").expect("writing registries.conf");
        // No lookaside (signature storage) configuration of the host either.
        let registries_d = work.path().join("registries.d");
        fs::create_dir(&registries_d).expect("creating registries.d");
        let digest_file = work.path().join("digest");
        let mut cmd = Command::new(skopeo);
        cmd.arg("--insecure-policy")
            .arg("--registries.d")
            .arg(&registries_d)
            .arg("--tmpdir")
            .arg(work.path())
            .args(["copy", "--quiet", "--all", "--preserve-digests"])
            .args(["--dest-tls-verify=false", "--retry-times", "0"])
            .arg("--digestfile")
            .arg(&digest_file);
        match self.creds() {
            Some((u, p)) => cmd.arg("--dest-creds").arg(format!("{u}:{p}")),
            None => cmd.arg("--dest-no-creds"),
        };
        let out = cmd
            .arg(format!("oci-archive:{}", tar.display()))
            .arg(format!("docker://{}/{repo_tag}", self.host()))
            .env("CONTAINERS_REGISTRIES_CONF", &registries_conf)
            .env("REGISTRY_AUTH_FILE", work.path().join("auth.json"))
            .env("TMPDIR", work.path())
            .env_remove("http_proxy")
            .env_remove("https_proxy")
            .env_remove("HTTP_PROXY")
            .env_remove("HTTPS_PROXY")
            .stdin(Stdio::null())
            .output()
            .expect("running skopeo");
        assert!(
            out.status.success(),
            "skopeo copy of {} to {}/{repo_tag} failed ({}):\n{}\nregistry log:\n{}",
            tar.display(),
            self.host(),
            out.status,
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        let digest = fs::read_to_string(&digest_file).expect("reading skopeo's digest file");
        let digest = digest.trim().to_string();
        assert!(
            digest.starts_with("sha256:") && digest.len() == 71,
            "skopeo wrote a strange digest: {digest:?}"
        );
        digest
    }

    /// The data file of blob `digest` (`sha256:<hex>`) in the registry's storage.
    pub fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = digest
            .strip_prefix("sha256:")
            .unwrap_or_else(|| panic!("not a sha256 digest: {digest}"));
        self.dir()
            .join("storage/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }

    /// Flips one byte in the middle of blob `digest`'s data file (its length stays), so the
    /// registry serves content that does not match its digest.
    pub fn corrupt_blob(&self, digest: &str) {
        let path = self.blob_file(digest);
        let mut data =
            fs::read(&path).unwrap_or_else(|e| panic!("reading blob {}: {e}", path.display()));
        assert!(!data.is_empty(), "blob {digest} is empty");
        let mid = data.len() / 2;
        data[mid] ^= 0xff;
        fs::write(&path, data).unwrap_or_else(|e| panic!("writing blob {}: {e}", path.display()));
    }

    /// Kills the registry, waits for it and removes its dir. Idempotent; [`Drop`] calls it.
    pub fn stop(&mut self) {
        self.kill();
        if let Some(dir) = self.dir.take() {
            let path = dir.path().to_path_buf();
            if let Err(e) = dir.close() {
                eprintln!("test registry: cannot remove {}: {e}", path.display());
            }
        }
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A port that was free a moment ago on 127.0.0.1.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("binding 127.0.0.1:0")
}

fn find_binary(name: &str, package: &str) -> PathBuf {
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/usr/sbin")])
        .map(|p| p.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("{name} not found in PATH or /usr/bin: install it (Debian: apt-get install {package})")
        })
}

/// `Basic <base64(user:password)>`.
pub fn basic_auth(user: &str, password: &str) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let input = format!("{user}:{password}");
    let mut out = String::from("Basic ");
    for chunk in input.as_bytes().chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// An HTTP response as [`http_get`] read it.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// `GET path` on `host` (`127.0.0.1:PORT`) as HTTP/1.0 with `headers`, read to the end of the
/// connection. For a manifest, send an `Accept` header: distribution answers 404 for an OCI
/// manifest to a client that does not accept its media type.
pub fn http_get(host: &str, path: &str, headers: &[(&str, &str)]) -> std::io::Result<HttpResponse> {
    let addr: SocketAddr = host
        .parse()
        .map_err(|e| std::io::Error::new(ErrorKind::InvalidInput, format!("{host}: {e}")))?;
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut request = format!("GET {path} HTTP/1.0\r\nHost: {host}\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes())?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    parse_response(&raw)
}

fn parse_response(raw: &[u8]) -> std::io::Result<HttpResponse> {
    let bad = |what: &str| std::io::Error::new(ErrorKind::InvalidData, what.to_string());
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("no end of the response head"))?;
    let head = String::from_utf8_lossy(&raw[..end]);
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("no status line"))?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Ok(HttpResponse {
        status,
        headers,
        body: raw[end + 4..].to_vec(),
    })
}

/// A TCP relay on `127.0.0.1:<port>` in front of a registry (no HTTP parsing), on threads of
/// its own: it throttles what the registry sends, drops every connection on demand, or goes
/// away altogether. Dropping it is [`Proxy::cut`].
pub struct Proxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Mutex<Option<JoinHandle<()>>>,
}

struct Shared {
    target: String,
    bytes_per_sec: u64,
    /// Set by `cut`: the acceptor closes the listener and stops at its next connection.
    closed: AtomicBool,
    next_id: AtomicU64,
    /// Both sockets of every open connection, to shut them down from outside.
    connections: Mutex<HashMap<u64, Vec<TcpStream>>>,
    relays: Mutex<Vec<JoinHandle<()>>>,
    accepted: AtomicU64,
    to_client: AtomicU64,
}

impl Proxy {
    /// Relays connections to `target` (`host:port`), in both directions; what flows from
    /// `target` to the client is throttled to `bytes_per_sec` (0: not throttled).
    pub fn start(target: &str, bytes_per_sec: u64) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding the proxy");
        let addr = listener.local_addr().expect("the proxy's address");
        let shared = Arc::new(Shared {
            target: target.to_string(),
            bytes_per_sec,
            closed: AtomicBool::new(false),
            next_id: AtomicU64::new(0),
            connections: Mutex::new(HashMap::new()),
            relays: Mutex::new(Vec::new()),
            accepted: AtomicU64::new(0),
            to_client: AtomicU64::new(0),
        });
        let acceptor = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("test-proxy-accept".into())
                .spawn(move || accept_loop(listener, shared))
                .expect("starting the proxy thread")
        };
        Proxy {
            addr,
            shared,
            acceptor: Mutex::new(Some(acceptor)),
        }
    }

    /// `127.0.0.1:<port>`.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// Closes every open connection now (both sides see the connection end: the client gets
    /// EOF or a reset mid-response); new connections are accepted and relayed as before.
    pub fn drop_connections(&self) {
        let open: Vec<Vec<TcpStream>> = lock(&self.shared.connections)
            .drain()
            .map(|(_, s)| s)
            .collect();
        for sockets in open {
            for s in sockets {
                let _ = s.shutdown(Shutdown::Both);
            }
        }
    }

    /// Closes every connection and the listener: from now on connecting is refused, as when
    /// the registry went away. Idempotent.
    pub fn cut(&self) {
        if let Some(acceptor) = lock(&self.acceptor).take() {
            self.shared.closed.store(true, Ordering::SeqCst);
            // Wakes the acceptor, which sees `closed` and drops the listener.
            let _ = TcpStream::connect(self.addr);
            let _ = acceptor.join();
        }
        self.drop_connections();
    }

    /// Connections accepted so far.
    pub fn connections_accepted(&self) -> u64 {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    /// Bytes relayed from the target to clients so far.
    pub fn bytes_to_clients(&self) -> u64 {
        self.shared.to_client.load(Ordering::SeqCst)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
        let relays: Vec<JoinHandle<()>> = lock(&self.shared.relays).drain(..).collect();
        for r in relays {
            let _ = r.join();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Accepts until `closed` (`cut` connects once more to wake it up); the listener is dropped
/// (closed) on return.
fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    for client in listener.incoming() {
        if shared.closed.load(Ordering::SeqCst) {
            break;
        }
        let client = match client {
            Ok(c) => c,
            Err(e) => {
                eprintln!("test proxy: accept: {e}");
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        shared.accepted.fetch_add(1, Ordering::SeqCst);
        let _ = client.set_nodelay(true);
        let id = shared.next_id.fetch_add(1, Ordering::SeqCst);
        match client.try_clone() {
            Ok(c) => {
                lock(&shared.connections).insert(id, vec![c]);
            }
            Err(_) => continue,
        }
        let relay = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("test-proxy-conn".into())
                .spawn(move || connection(id, client, shared))
        };
        match relay {
            Ok(handle) => {
                let mut relays = lock(&shared.relays);
                relays.retain(|h| !h.is_finished());
                relays.push(handle);
            }
            Err(e) => eprintln!("test proxy: cannot start a relay thread: {e}"),
        }
    }
}

/// One relayed connection: connects to the target, relays both ways until both are done.
fn connection(id: u64, client: TcpStream, shared: Arc<Shared>) {
    let upstream = match TcpStream::connect(&shared.target) {
        Ok(u) => u,
        Err(_) => {
            let _ = client.shutdown(Shutdown::Both);
            lock(&shared.connections).remove(&id);
            return;
        }
    };
    let _ = upstream.set_nodelay(true);
    {
        let mut open = lock(&shared.connections);
        match (open.get_mut(&id), upstream.try_clone()) {
            (Some(sockets), Ok(u)) => sockets.push(u),
            // Dropped (or cut) meanwhile.
            _ => {
                let _ = client.shutdown(Shutdown::Both);
                let _ = upstream.shutdown(Shutdown::Both);
                open.remove(&id);
                return;
            }
        }
    }
    let (Ok(client2), Ok(upstream2)) = (client.try_clone(), upstream.try_clone()) else {
        let _ = client.shutdown(Shutdown::Both);
        let _ = upstream.shutdown(Shutdown::Both);
        lock(&shared.connections).remove(&id);
        return;
    };
    let up = std::thread::Builder::new()
        .name("test-proxy-up".into())
        .spawn(move || pump(client2, upstream2, 0, None));
    let to_client = &shared.to_client;
    pump(upstream, client, shared.bytes_per_sec, Some(to_client));
    if let Ok(up) = up {
        let _ = up.join();
    }
    lock(&shared.connections).remove(&id);
}

/// Copies `from` to `to` at most `bytes_per_sec` (0: as fast as it comes) until EOF or an
/// error; passes EOF on as a half-close, an error as a shutdown of both sockets.
fn pump(mut from: TcpStream, mut to: TcpStream, bytes_per_sec: u64, count: Option<&AtomicU64>) {
    // Small reads when throttled, so that the pace is even (about 50 steps a second).
    let chunk = if bytes_per_sec == 0 {
        64 * 1024
    } else {
        (bytes_per_sec / 50).clamp(1, 16 * 1024) as usize
    };
    let mut buf = vec![0u8; chunk];
    let started = Instant::now();
    let mut sent: u64 = 0;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => {
                let _ = to.shutdown(Shutdown::Write);
                return;
            }
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        if bytes_per_sec > 0 {
            // Due time of the end of this chunk at the given rate.
            let due = Duration::from_secs_f64((sent + n as u64) as f64 / bytes_per_sec as f64);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
        sent += n as u64;
        if let Some(count) = count {
            count.fetch_add(n as u64, Ordering::SeqCst);
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}
