//! Test images built at test time from the host's static busybox, as OCI image-layout and
//! `docker save` tarballs. Output is deterministic (fixed mtimes, owners and order), so the same
//! inputs give the same digests and re-imports can be checked for idempotence.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;
use sha2::{Digest as _, Sha256};

const PATH_ENV: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const CREATED: &str = "2024-01-01T00:00:00Z";

/// Variations of the OCI layout tarball, for tests of names and of corrupt archives.
#[derive(Debug, Clone, Default)]
pub struct OciTarOptions {
    /// gzip the layer (`application/vnd.oci.image.layer.v1.tar+gzip`).
    pub gzip: bool,
    /// `io.containerd.image.name` annotation of the index.json entry.
    pub containerd_name: Option<String>,
    /// `org.opencontainers.image.ref.name` annotation of the index.json entry.
    pub ref_name: Option<String>,
    /// Flip a byte of the layer blob after its digest was computed.
    pub corrupt_layer: bool,
    /// Write a wrong diff id into the config (the blobs themselves are intact).
    pub wrong_diff_id: bool,
    /// gzip the whole tarball.
    pub gzip_archive: bool,
    /// More index.json entries with the same names, for these platforms (`os/arch`), each
    /// pointing at a stub manifest (an empty image: a config for that platform, no layers):
    /// a multi-platform layout.
    pub extra_platforms: Vec<String>,
    /// With `extra_platforms`: list the platforms' manifests in an image index blob instead,
    /// which index.json's single entry points at (the shape of a multi-platform image as a
    /// registry serves it; `skopeo copy --all` pushes this one whole, whereas of several
    /// index.json entries it copies one).
    pub platform_index: bool,
    /// Leave the host platform's entry out of index.json (its blobs stay in the layout).
    pub omit_host: bool,
    /// The image config's `User`.
    pub user: Option<String>,
    /// The image config's `StopSignal`.
    pub stop_signal: Option<String>,
    /// After the busybox layer, one more uncompressed layer per entry: layer `i` holds
    /// `/data/layer-<i>`, that many bytes of deterministic pseudo-random data.
    pub extra_layers: Vec<usize>,
}

impl OciTarOptions {
    /// Both name annotations set, as [`busybox_image_tar`] does: the full name and its tag.
    pub fn named(name: &str) -> Self {
        let tag = name
            .rsplit_once(':')
            .filter(|(_, t)| !t.contains('/'))
            .map_or("latest", |(_, t)| t);
        Self {
            containerd_name: Some(name.to_string()),
            ref_name: Some(tag.to_string()),
            ..Default::default()
        }
    }
}

/// The host's static busybox.
pub fn busybox_path() -> PathBuf {
    ["/bin/busybox", "/usr/bin/busybox"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .expect("busybox not found at /bin/busybox or /usr/bin/busybox: install busybox-static")
}

/// An OCI image-layout tarball of a busybox image named `name` (both annotations set: the full
/// name and its tag), in `dir`.
pub fn busybox_image_tar(dir: &Path, name: &str, gzip: bool) -> PathBuf {
    oci_image_tar(
        dir,
        &OciTarOptions {
            gzip,
            ..OciTarOptions::named(name)
        },
    )
}

/// The single layer's tar: `/bin/busybox`, a symlink per applet, `/etc/passwd`, `/etc/group`,
/// `/tmp` (1777). Returns its bytes' path.
fn busybox_layer(dir: &Path) -> PathBuf {
    let path = dir.join("busybox-layer.tar");
    if path.exists() {
        return path;
    }
    let busybox = busybox_path();
    let out = Command::new(&busybox)
        .arg("--list")
        .output()
        .expect("running busybox --list");
    let mut applets: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .filter(|a| !a.is_empty() && a != "busybox" && !a.contains('/'))
        .collect();
    applets.sort();
    applets.dedup();

    let partial = dir.join("busybox-layer.tar.partial");
    let mut tar = tar::Builder::new(fs::File::create(&partial).expect("creating the layer"));
    let dir_entry = |tar: &mut tar::Builder<fs::File>, name: &str, mode: u32| {
        let mut h = header(tar::EntryType::Directory, mode, 0);
        tar.append_data(&mut h, name, std::io::empty())
            .expect("adding a directory");
    };
    for (name, mode) in [
        ("bin/", 0o755),
        ("etc/", 0o755),
        ("root/", 0o700),
        ("tmp/", 0o1777),
        ("usr/", 0o755),
        ("usr/bin/", 0o755),
        ("var/", 0o755),
    ] {
        dir_entry(&mut tar, name, mode);
    }
    let data = fs::read(&busybox).expect("reading busybox");
    let mut h = header(tar::EntryType::Regular, 0o755, data.len() as u64);
    tar.append_data(&mut h, "bin/busybox", data.as_slice())
        .expect("adding busybox");
    for applet in &applets {
        let mut h = header(tar::EntryType::Symlink, 0o777, 0);
        tar.append_link(&mut h, format!("bin/{applet}"), "busybox")
            .expect("adding an applet link");
    }
    for (name, content) in [
        (
            "etc/passwd",
            "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
        ),
        ("etc/group", "root:x:0:\nnobody:x:65534:\n"),
    ] {
        let mut h = header(tar::EntryType::Regular, 0o644, content.len() as u64);
        tar.append_data(&mut h, name, content.as_bytes())
            .expect("adding a file");
    }
    tar.into_inner()
        .and_then(|mut f| f.flush())
        .expect("finishing the layer");
    fs::rename(&partial, &path).expect("moving the layer in place");
    path
}

/// Extra layer `index`: `data/` and `data/layer-<index>` holding `size` bytes of
/// pseudo-random data seeded by `index` and `size` (the same bytes on every run). Returns its
/// path (cached in `dir` like the busybox layer).
fn extra_layer(dir: &Path, index: usize, size: usize) -> PathBuf {
    let path = dir.join(format!("extra-layer-{index}-{size}.tar"));
    if path.exists() {
        return path;
    }
    let partial = dir.join(format!("extra-layer-{index}-{size}.tar.partial"));
    let mut tar = tar::Builder::new(fs::File::create(&partial).expect("creating a layer"));
    let mut h = header(tar::EntryType::Directory, 0o755, 0);
    tar.append_data(&mut h, "data/", std::io::empty())
        .expect("adding a directory");
    let mut h = header(tar::EntryType::Regular, 0o644, size as u64);
    let data = std::io::Read::take(PseudoRandom::new(index as u64, size as u64), size as u64);
    tar.append_data(&mut h, format!("data/layer-{index}"), data)
        .expect("adding a data file");
    tar.into_inner()
        .and_then(|mut f| f.flush())
        .expect("finishing a layer");
    fs::rename(&partial, &path).expect("moving a layer in place");
    path
}

/// An endless reader of splitmix64 output: incompressible, deterministic.
struct PseudoRandom {
    state: u64,
    buf: [u8; 8],
    pos: usize,
}

impl PseudoRandom {
    fn new(a: u64, b: u64) -> Self {
        Self {
            state: a.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ b,
            buf: [0; 8],
            pos: 8,
        }
    }
}

impl std::io::Read for PseudoRandom {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let mut done = 0;
        while done < out.len() {
            if self.pos == 8 {
                self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
                let mut z = self.state;
                z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
                self.buf = (z ^ (z >> 31)).to_le_bytes();
                self.pos = 0;
            }
            let n = (8 - self.pos).min(out.len() - done);
            out[done..done + n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
            self.pos += n;
            done += n;
        }
        Ok(out.len())
    }
}

fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_704_067_200);
    h
}

fn sha256_file(path: &Path) -> (String, u64) {
    let mut f = fs::File::open(path).expect("opening a blob");
    let mut h = Sha256::new();
    let n = std::io::copy(&mut f, &mut h).expect("hashing a blob");
    (format!("sha256:{}", hex::encode(h.finalize())), n)
}

fn sha256_bytes(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

fn gzip_file(from: &Path, to: &Path) {
    let mut input = fs::File::open(from).expect("opening a file to gzip");
    let out = fs::File::create(to).expect("creating a gzip file");
    let mut gz = flate2::GzBuilder::new()
        .mtime(0)
        .write(out, flate2::Compression::fast());
    std::io::copy(&mut input, &mut gz).expect("gzipping");
    gz.finish().expect("finishing gzip");
}

/// The host platform in Go's names.
fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

fn config_json(diff_ids: &[String], user: Option<&str>, stop_signal: Option<&str>) -> Vec<u8> {
    let mut config = json!({ "Env": [PATH_ENV], "Cmd": ["sh"], "User": user.unwrap_or_default() });
    if let Some(signal) = stop_signal {
        config["StopSignal"] = json!(signal);
    }
    // One history entry per layer; the first one's text predates the extra layers.
    let mut history = vec![json!({ "created": CREATED, "created_by": "podctl integration tests" })];
    for i in 1..diff_ids.len() {
        history.push(json!({
            "created": CREATED,
            "created_by": format!("podctl integration tests: extra layer {}", i - 1),
        }));
    }
    serde_json::to_vec(&json!({
        "created": CREATED,
        "architecture": go_arch(),
        "os": "linux",
        "config": config,
        "rootfs": { "type": "layers", "diff_ids": diff_ids },
        "history": history,
    }))
    .expect("serializing the config")
}

/// Appends a whole file under `name`.
fn append_file(tar: &mut tar::Builder<Box<dyn Write>>, name: &str, path: &Path) {
    let size = fs::metadata(path).expect("stat of a blob").len();
    let mut h = header(tar::EntryType::Regular, 0o644, size);
    let f = fs::File::open(path).expect("opening a blob");
    tar.append_data(&mut h, name, f).expect("adding a blob");
}

fn append_bytes(tar: &mut tar::Builder<Box<dyn Write>>, name: &str, data: &[u8]) {
    let mut h = header(tar::EntryType::Regular, 0o644, data.len() as u64);
    tar.append_data(&mut h, name, data).expect("adding a file");
}

fn archive_writer(path: &Path, gzip: bool) -> tar::Builder<Box<dyn Write>> {
    let f = fs::File::create(path).expect("creating the archive");
    let w: Box<dyn Write> = if gzip {
        Box::new(flate2::write::GzEncoder::new(
            f,
            flate2::Compression::fast(),
        ))
    } else {
        Box::new(f)
    };
    tar::Builder::new(w)
}

fn finish(tar: tar::Builder<Box<dyn Write>>) {
    let mut w = tar.into_inner().expect("finishing the archive");
    w.flush().expect("flushing the archive");
    // A GzEncoder writes its trailer on drop.
    drop(w);
}

/// An OCI image-layout tarball of the busybox image, shaped by `opts`; returns its path.
pub fn oci_image_tar(dir: &Path, opts: &OciTarOptions) -> PathBuf {
    fs::create_dir_all(dir).expect("creating the image dir");
    let layer_tar = busybox_layer(dir);
    let (diff_id, _) = sha256_file(&layer_tar);
    let (layer_path, layer_media) = if opts.gzip {
        let gz = dir.join("busybox-layer.tar.gz");
        if !gz.exists() {
            gzip_file(&layer_tar, &gz);
        }
        (gz, "application/vnd.oci.image.layer.v1.tar+gzip")
    } else {
        (layer_tar, "application/vnd.oci.image.layer.v1.tar")
    };
    let (layer_digest, layer_size) = sha256_file(&layer_path);
    // Extra layers are uncompressed: each one's digest is its diff id.
    let extra: Vec<(PathBuf, String, u64)> = opts
        .extra_layers
        .iter()
        .enumerate()
        .map(|(i, &size)| {
            let path = extra_layer(dir, i, size);
            let (digest, len) = sha256_file(&path);
            (path, digest, len)
        })
        .collect();
    let config_diff_id = if opts.wrong_diff_id {
        sha256_bytes(b"not the layer")
    } else {
        diff_id
    };
    let mut diff_ids = vec![config_diff_id];
    diff_ids.extend(extra.iter().map(|(_, digest, _)| digest.clone()));
    let config = config_json(&diff_ids, opts.user.as_deref(), opts.stop_signal.as_deref());
    let config_digest = sha256_bytes(&config);
    let mut layers =
        vec![json!({ "mediaType": layer_media, "digest": layer_digest, "size": layer_size })];
    for (_, digest, size) in &extra {
        layers.push(json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": digest,
            "size": size,
        }));
    }
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest,
            "size": config.len(),
        },
        "layers": layers,
    }))
    .expect("serializing the manifest");
    let manifest_digest = sha256_bytes(&manifest);
    let mut annotations = serde_json::Map::new();
    if let Some(n) = &opts.containerd_name {
        annotations.insert("io.containerd.image.name".into(), json!(n));
    }
    if let Some(n) = &opts.ref_name {
        annotations.insert("org.opencontainers.image.ref.name".into(), json!(n));
    }
    // In index.json every entry carries the names; in an image index blob none does.
    let nested = opts.platform_index && !opts.extra_platforms.is_empty();
    let entry = |digest: &str, size: usize, os: &str, arch: &str| {
        let mut e = json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": digest,
            "size": size,
            "platform": { "architecture": arch, "os": os },
        });
        if !nested {
            e["annotations"] = json!(annotations);
        }
        e
    };
    let mut entries = Vec::new();
    if !opts.omit_host {
        entries.push(entry(&manifest_digest, manifest.len(), "linux", go_arch()));
    }
    // Stub manifests of other platforms: empty images (a config naming the platform, no
    // layers), whose blobs are all in the layout so that the whole layout can be pushed.
    let mut stub_blobs: Vec<Vec<u8>> = Vec::new();
    for platform in &opts.extra_platforms {
        let (os, arch) = platform.split_once('/').expect("platform as os/arch");
        let stub_config = serde_json::to_vec(&json!({
            "architecture": arch,
            "os": os,
            "rootfs": { "type": "layers", "diff_ids": [] },
        }))
        .expect("serializing a stub config");
        let stub = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": sha256_bytes(&stub_config),
                "size": stub_config.len(),
            },
            "layers": [],
        }))
        .expect("serializing a stub manifest");
        entries.push(entry(&sha256_bytes(&stub), stub.len(), os, arch));
        for blob in [stub_config, stub] {
            if !stub_blobs.contains(&blob) {
                stub_blobs.push(blob);
            }
        }
    }
    let index_of = |manifests: Vec<serde_json::Value>| {
        serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": manifests,
        }))
        .expect("serializing an index")
    };
    let index = if nested {
        let platforms = index_of(entries);
        let top = json!({
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": sha256_bytes(&platforms),
            "size": platforms.len(),
            "annotations": annotations,
        });
        stub_blobs.push(platforms);
        index_of(vec![top])
    } else {
        index_of(entries)
    };

    let blob = |d: &str| format!("blobs/sha256/{}", d.trim_start_matches("sha256:"));
    let name = format!(
        "busybox-oci{}{}{}{}{}{}.tar{}",
        if opts.gzip { "-gz" } else { "" },
        if opts.corrupt_layer { "-corrupt" } else { "" },
        if opts.wrong_diff_id { "-baddiff" } else { "" },
        if opts.containerd_name.is_none() && opts.ref_name.is_none() {
            "-unnamed"
        } else {
            ""
        },
        if extra.is_empty() {
            String::new()
        } else {
            format!("-layers{}", extra.len())
        },
        if nested { "-multiarch" } else { "" },
        if opts.gzip_archive { ".gz" } else { "" },
    );
    let out = dir.join(format!("{}-{name}", unique_suffix()));
    let mut tar = archive_writer(&out, opts.gzip_archive);
    append_bytes(&mut tar, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#);
    append_bytes(&mut tar, "index.json", &index);
    for d in ["blobs/", "blobs/sha256/"] {
        let mut h = header(tar::EntryType::Directory, 0o755, 0);
        tar.append_data(&mut h, d, std::io::empty())
            .expect("adding a directory");
    }
    if opts.corrupt_layer {
        let mut data = fs::read(&layer_path).expect("reading the layer");
        let mid = data.len() / 2;
        data[mid] ^= 0xff;
        append_bytes(&mut tar, &blob(&layer_digest), &data);
    } else {
        append_file(&mut tar, &blob(&layer_digest), &layer_path);
    }
    for (path, digest, _) in &extra {
        append_file(&mut tar, &blob(digest), path);
    }
    append_bytes(&mut tar, &blob(&config_digest), &config);
    append_bytes(&mut tar, &blob(&manifest_digest), &manifest);
    for data in &stub_blobs {
        append_bytes(&mut tar, &blob(&sha256_bytes(data)), data);
    }
    finish(tar);
    out
}

/// A `docker save` tarball of the busybox image tagged `repo_tag` (as docker writes it, e.g.
/// `busybox:latest`): `manifest.json`, `<config hex>.json`, and `<id>/layer.tar` as a symlink
/// to the layer data (docker links layers shared between images the same way).
pub fn docker_save_tar(dir: &Path, repo_tag: &str) -> PathBuf {
    fs::create_dir_all(dir).expect("creating the image dir");
    let layer_tar = busybox_layer(dir);
    let (diff_id, _) = sha256_file(&layer_tar);
    let config = config_json(std::slice::from_ref(&diff_id), None, None);
    let config_hex = sha256_bytes(&config)
        .trim_start_matches("sha256:")
        .to_string();
    let layer_id = diff_id.trim_start_matches("sha256:").to_string();
    let manifest = serde_json::to_vec(&json!([{
        "Config": format!("{config_hex}.json"),
        "RepoTags": [repo_tag],
        "Layers": [format!("{layer_id}/layer.tar")],
    }]))
    .expect("serializing manifest.json");
    let repositories = {
        let (repo, tag) = repo_tag.rsplit_once(':').unwrap_or((repo_tag, "latest"));
        serde_json::to_vec(&json!({ repo: { tag: layer_id } })).expect("serializing repositories")
    };

    let out = dir.join(format!("{}-busybox-docker-save.tar", unique_suffix()));
    let mut tar = archive_writer(&out, false);
    for d in ["layers/".to_string(), format!("{layer_id}/")] {
        let mut h = header(tar::EntryType::Directory, 0o755, 0);
        tar.append_data(&mut h, d, std::io::empty())
            .expect("adding a directory");
    }
    append_file(&mut tar, &format!("layers/{layer_id}.tar"), &layer_tar);
    let mut h = header(tar::EntryType::Symlink, 0o777, 0);
    tar.append_link(
        &mut h,
        format!("{layer_id}/layer.tar"),
        format!("../layers/{layer_id}.tar"),
    )
    .expect("adding the layer link");
    append_bytes(&mut tar, &format!("{layer_id}/VERSION"), b"1.0");
    append_bytes(&mut tar, &format!("{config_hex}.json"), &config);
    append_bytes(&mut tar, "manifest.json", &manifest);
    append_bytes(&mut tar, "repositories", &repositories);
    finish(tar);
    out
}

fn unique_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}
