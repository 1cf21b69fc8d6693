#!/usr/bin/env python3
"""make bench: the reference pod (bench/reference-pod.yaml: 2 init containers + main, emptyDir
handoff, run to completion and removed), timed four ways in one interleaved run:

  podctl      `podctl run --rm bench/reference-pod.yaml` with `--network none` (loopback only,
              as the references have)
  podctl+cni  the same on a pod network (podctl's default conflist on a bench bridge): the
              difference is what the network set-up (CNI ADD and DEL) adds
  ctr script  three `ctr run --rm` sharing a network namespace and a bind-mounted directory
  runc floor  three `runc run` on prepared bundles sharing a network namespace and a directory

Prints the median wall time of each, the ratios podctl/ctr-script and podctl/runc, the most
containerd shims seen at once during a podctl run, and podctl's peak RSS.

Then a pull from a registry on loopback (docker-registry with its storage in a temp dir, a
~35 MB image of 5 layers built by mkimage and pushed with skopeo), timed two ways in
interleaved rounds, each pull from a store where the image's content and snapshots are gone:

  podctl      `podctl image pull --quiet 127.0.0.1:PORT/bench/multi:1`
  ctr         `ctr images pull --plain-http 127.0.0.1:PORT/bench/multi:1`

each in a containerd namespace of its own. Prints the medians and the ratio podctl/ctr.
Environment: BENCH_RUNS (default 15), BENCH_PULL_RUNS (default 7), CONTAINERD_ADDRESS (else
scripts/containerd.sh picks).
"""

import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import urllib.error
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PODCTL = os.path.join(REPO, "target/release/podctl")
MKIMAGE = os.path.join(REPO, "target/release/mkimage")
POD = os.path.join(REPO, "bench/reference-pod.yaml")
NS = "podctl-bench"
IMAGE = "docker.io/library/busybox:1.35"  # the tag bench/reference-pod.yaml names
STEPS = [
    ("one", ["sh", "-c", "echo one >> /work/log"]),
    ("two", ["sh", "-c", "echo two >> /work/log"]),
    ("main", ["cat", "/work/log"]),
]
RUNS = int(os.environ.get("BENCH_RUNS", "15"))
PULL_RUNS = int(os.environ.get("BENCH_PULL_RUNS", "7"))
PULL_REPO = "bench/multi:1"
PULL_LAYERS = 4  # besides busybox's: 5 layers
PULL_LAYER_SIZE = 8_000_000  # pseudo-random bytes per extra layer: ~34 MB in all
PULL_NS = {"podctl": "podctl-bench-pull", "ctr": "podctl-bench-pull-ctr"}
SNAPSHOTTER = "overlayfs"


# podctl's default network, on a bridge and subnet of the bench's own.
BENCH_NETWORK = {
    "cniVersion": "1.0.0",
    "name": "podctl-bench",
    "plugins": [
        {"type": "bridge", "bridge": "pdbench0", "isGateway": True, "ipMasq": True,
         "hairpinMode": True,
         "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.213.252.0/24"}]],
                  "routes": [{"dst": "0.0.0.0/0"}]}},
        {"type": "portmap", "capabilities": {"portMappings": True}},
        {"type": "firewall"},
    ],
}


def run(args, **kw):
    return subprocess.run(args, check=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          stdin=subprocess.DEVNULL, **kw)


def check_output(out, who):
    if out.split() != [b"one", b"two"]:
        sys.exit(f"bench: {who} printed {out!r}, expected the handoff 'one two'")


class Bench:
    def __init__(self, tmp):
        self.tmp = tmp
        self.address = os.environ.get("CONTAINERD_ADDRESS") or run(
            ["bash", os.path.join(REPO, "scripts/containerd.sh"), "start"]).stdout.decode().strip()
        self.env = dict(os.environ, CONTAINERD_ADDRESS=self.address, PODCTL_NAMESPACE=NS,
                        PODCTL_ROOT=os.path.join(tmp, "podctl-root"))
        # The references run in a namespace with loopback only: so does "podctl". "podctl+cni"
        # adds a pod network (podctl's default conflist, on a bench bridge and subnet).
        self.chains_before = os.path.join(tmp, "cni-chains.before")
        run(["bash", os.path.join(REPO, "scripts/cni-chains.sh"), "save", self.chains_before])
        conf_dir = os.path.join(tmp, "net.d")
        os.makedirs(conf_dir)
        with open(os.path.join(conf_dir, "10-bench.conflist"), "w") as f:
            json.dump(BENCH_NETWORK, f)
        self.env_loopback = dict(self.env, PODCTL_NETWORK="none")
        self.env_cni = dict(self.env, PODCTL_CNI_CONF_DIR=conf_dir)
        for var in ("PODCTL_NETWORK", "PODCTL_CNI_BIN_DIR"):
            self.env_cni.pop(var, None)
        tar = os.path.join(tmp, "busybox.tar")
        run([MKIMAGE, "--out", tar, "--name", "busybox:1.35"])
        run([PODCTL, "image", "import", tar], env=self.env)
        self.rootfs = os.path.join(tmp, "rootfs")
        extract_rootfs(tar, self.rootfs)
        self.bundles = [self.make_bundle(name, args) for name, args in STEPS]
        self.shims_seen = 0
        self.max_rss_kib = 0

    def make_bundle(self, name, args):
        bundle = os.path.join(self.tmp, f"bundle-{name}")
        os.makedirs(bundle)
        run(["runc", "spec", "--bundle", bundle])
        path = os.path.join(bundle, "config.json")
        with open(path) as f:
            spec = json.load(f)
        spec["root"] = {"path": self.rootfs, "readonly": True}
        spec["process"]["args"] = args
        spec["process"]["terminal"] = False
        spec["mounts"].append({"destination": "/work", "type": "bind",
                               "source": os.path.join(self.tmp, "work-runc"),
                               "options": ["rbind", "rw"]})
        for ns in spec["linux"]["namespaces"]:
            if ns["type"] == "network":
                ns["path"] = "/run/netns/podctl-bench-runc"
        with open(path, "w") as f:
            json.dump(spec, f)
        return bundle

    def podctl(self, network=False):
        sampler = ShimSampler()
        sampler.start()
        env = self.env_cni if network else self.env_loopback
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            p = subprocess.Popen([PODCTL, "run", "--rm", POD], env=env, stdout=out,
                                 stderr=err, stdin=subprocess.DEVNULL)
            # wait4 rather than wait: it also reports this child's own peak RSS.
            _, status, rusage = os.wait4(p.pid, 0)
            p.returncode = os.waitstatus_to_exitcode(status)
            sampler.stop()
            out.seek(0)
            err.seek(0)
            out, err = out.read(), err.read()
        if p.returncode != 0:
            sys.exit(f"bench: podctl failed ({p.returncode}): {err.decode()}")
        check_output(out.replace(b"[main] ", b""), "podctl")
        self.shims_seen = max(self.shims_seen, sampler.peak)
        self.max_rss_kib = max(self.max_rss_kib, rusage.ru_maxrss)

    def ctr(self):
        netns = "podctl-bench-ctr"
        work = tempfile.mkdtemp(dir=self.tmp)
        run(["ip", "netns", "add", netns])
        try:
            for name, args in STEPS:
                r = run(["ctr", "--address", self.address, "--namespace", NS, "run", "--rm",
                         "--with-ns", f"network:/run/netns/{netns}",
                         "--mount", f"type=bind,src={work},dst=/work,options=rbind:rw",
                         IMAGE, f"bench-ctr-{name}"] + args)
            check_output(r.stdout, "ctr script")
        finally:
            run(["ip", "netns", "del", netns])
            shutil.rmtree(work)

    def runc(self):
        netns = "podctl-bench-runc"
        work = os.path.join(self.tmp, "work-runc")
        os.makedirs(work)
        run(["ip", "netns", "add", netns])
        try:
            for (name, _), bundle in zip(STEPS, self.bundles):
                r = run(["runc", "run", "--bundle", bundle, f"bench-runc-{name}"])
            check_output(r.stdout, "runc floor")
        finally:
            run(["ip", "netns", "del", netns])
            shutil.rmtree(work)

    def cleanup(self):
        subprocess.run([PODCTL, "image", "rm", "busybox:1.35"], env=self.env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # runc keeps an (empty, once every container is gone) state dir per namespace.
        try:
            os.rmdir(f"/run/containerd/runc/{NS}")
        except OSError:
            pass
        # The bench network's bridge, reservations dir and any chains the plugins made.
        subprocess.run(["ip", "link", "del", BENCH_NETWORK["plugins"][0]["bridge"]],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(f"/var/lib/cni/networks/{BENCH_NETWORK['name']}", ignore_errors=True)
        subprocess.run(["bash", os.path.join(REPO, "scripts/cni-chains.sh"), "restore",
                        self.chains_before])


class ShimSampler(threading.Thread):
    """Counts the containerd shims of the pod a podctl run starts: long-lived shims (not the
    short `start`/`delete` invocations) serving a container of the reference pod, started
    after the sampler (a previous run's shim may still be on its way out)."""

    def __init__(self):
        super().__init__(daemon=True)
        self.peak = 0
        self.done = threading.Event()
        self.before = set(self.shims())

    @staticmethod
    def shims():
        found = {}
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    args = f.read().split(b"\0")
                with open(f"/proc/{pid}/stat", "rb") as f:
                    ppid = f.read().rsplit(b")", 1)[1].split()[1].decode()
            except (OSError, IndexError):
                continue
            ids = [b for a, b in zip(args, args[1:]) if a == b"-id"]
            if (b"containerd-shim" in args[0] and NS.encode() in args
                    and b"start" not in args and b"delete" not in args
                    and any(i.startswith(b"bench-ref.") for i in ids)):
                found[pid] = ppid
        # A shim forking runc shows the shim's command line until the exec: not a shim.
        return [pid for pid, ppid in found.items() if ppid not in found]

    def run(self):
        while not self.done.is_set():
            n = len(set(self.shims()) - self.before)
            self.peak = max(self.peak, n)
            time.sleep(0.005)

    def stop(self):
        self.done.set()
        self.join()


def extract_rootfs(tar_path, dest):
    os.makedirs(dest)
    with tarfile.open(tar_path) as t:
        index = json.load(t.extractfile("index.json"))
        blob = lambda d: t.extractfile("blobs/" + d.replace(":", "/"))
        manifest = json.load(blob(index["manifests"][0]["digest"]))
        for layer in manifest["layers"]:
            with tarfile.open(fileobj=blob(layer["digest"])) as lt:
                lt.extractall(dest, filter="tar")


# --- pull from a loopback registry ------------------------------------------------------------

def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def without_proxies(env):
    return {k: v for k, v in env.items() if k.lower() not in ("http_proxy", "https_proxy", "all_proxy")}


class LoopbackRegistry:
    """docker-registry on 127.0.0.1:<free port>, config, storage and log in `dir`."""

    def __init__(self, dir):
        self.dir = dir
        self.proc = None
        self.log = os.path.join(dir, "registry.log")
        for _ in range(5):
            self.port = free_port()
            config = os.path.join(dir, "config.yml")
            with open(config, "w") as f:
                f.write(f"""version: 0.1
log:
  level: warn
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
  addr: 127.0.0.1:{self.port}
  secret: podctl-bench
""")
            with open(self.log, "w") as log:
                self.proc = subprocess.Popen(["docker-registry", "serve", config], stdout=log,
                                             stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                             env={"PATH": "/usr/bin:/bin"})
            if self.wait_ready():
                return
            self.stop()
            with open(self.log) as f:
                text = f.read()
            if "address already in use" not in text:
                sys.exit(f"bench: docker-registry did not come up on {self.host}; its log:\n{text}")
        sys.exit("bench: docker-registry found no free port")

    @property
    def host(self):
        return f"127.0.0.1:{self.port}"

    def wait_ready(self):
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                with opener.open(f"http://{self.host}/v2/", timeout=1) as r:
                    if r.status == 200:
                        return True
            except urllib.error.HTTPError as e:
                if e.code == 401:
                    return True
            except OSError:
                pass
            time.sleep(0.02)
        return False

    def push(self, tar, repo_tag):
        work = tempfile.mkdtemp(prefix="skopeo-", dir=self.dir)
        conf = os.path.join(work, "registries.conf")
        open(conf, "w").close()
        os.makedirs(os.path.join(work, "registries.d"))
        digest_file = os.path.join(work, "digest")
        env = without_proxies(dict(os.environ, CONTAINERS_REGISTRIES_CONF=conf, TMPDIR=work))
        r = subprocess.run(["skopeo", "--insecure-policy", "--registries.d",
                            os.path.join(work, "registries.d"), "--tmpdir", work,
                            "copy", "--quiet", "--all", "--preserve-digests",
                            "--dest-tls-verify=false", "--dest-no-creds",
                            "--digestfile", digest_file,
                            f"oci-archive:{tar}", f"docker://{self.host}/{repo_tag}"],
                           env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE)
        if r.returncode != 0:
            sys.exit(f"bench: skopeo push failed: {r.stderr.decode()}")
        with open(digest_file) as f:
            digest = f.read().strip()
        shutil.rmtree(work, ignore_errors=True)
        return digest

    def stop(self):
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


class PullBench:
    def __init__(self, tmp, address):
        self.tmp = tmp
        self.address = address
        self.registry = LoopbackRegistry(tempfile.mkdtemp(prefix="registry-", dir=tmp))
        try:
            tar = os.path.join(tmp, "multi.tar")
            run([MKIMAGE, "--out", tar, "--name", PULL_REPO, "--gzip",
                 "--layers", str(PULL_LAYERS), "--layer-size", str(PULL_LAYER_SIZE)])
            self.size = os.path.getsize(tar)
            self.digest = self.registry.push(tar, PULL_REPO)
            os.remove(tar)
        except BaseException:
            self.registry.stop()
            raise
        self.ref = f"{self.registry.host}/{PULL_REPO}"
        self.podctl_env = without_proxies(dict(
            os.environ, CONTAINERD_ADDRESS=address, PODCTL_NAMESPACE=PULL_NS["podctl"],
            PODCTL_ROOT=os.path.join(tmp, "podctl-root")))
        self.env = without_proxies(dict(os.environ))
        self.stored = {}  # tool -> (blobs, snapshots) after its last pull

    def ctr(self, ns, *args):
        return subprocess.run(["ctr", "--address", self.address, "--namespace", ns, *args],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              stdin=subprocess.DEVNULL, env=self.env)

    def stored_in(self, ns):
        """(content digests, snapshot keys) in namespace `ns`."""
        blobs = self.ctr(ns, "content", "ls", "--quiet").stdout.decode().split()
        out = self.ctr(ns, "snapshots", "--snapshotter", SNAPSHOTTER, "ls").stdout.decode()
        snapshots = [line.split()[0] for line in out.splitlines()[1:] if line.strip()]
        return blobs, snapshots

    def remove(self, tool):
        """Removes the image with `tool`'s own command and checks that its namespace holds no
        content and no snapshot any more (gc may lag a little); raises otherwise."""
        ns = PULL_NS[tool]
        if tool == "podctl":
            subprocess.run([PODCTL, "image", "rm", self.ref], env=self.podctl_env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           stdin=subprocess.DEVNULL)
        else:
            self.ctr(ns, "images", "rm", "--sync", self.ref)
        deadline = time.monotonic() + 10
        while True:
            blobs, snapshots = self.stored_in(ns)
            if not blobs and not snapshots:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{tool}: namespace {ns} still holds {len(blobs)} blobs and "
                    f"{len(snapshots)} snapshots after removing the image: a pull would not be cold")
            time.sleep(0.05)

    def pull(self, tool):
        """One cold pull with `tool`; returns its wall time, raises RuntimeError on failure."""
        self.remove(tool)
        if tool == "podctl":
            args, env = [PODCTL, "image", "pull", "--quiet", self.ref], self.podctl_env
        else:
            args = ["ctr", "--address", self.address, "--namespace", PULL_NS["ctr"],
                    "images", "pull", "--plain-http", self.ref]
            env = self.env
        start = time.perf_counter()
        r = subprocess.run(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           stdin=subprocess.DEVNULL)
        took = time.perf_counter() - start
        if r.returncode != 0:
            msg = (r.stderr.decode().strip() or r.stdout.decode().strip())[-2000:]
            raise RuntimeError(f"{tool} pull failed ({r.returncode}): {msg}")
        blobs, snapshots = self.stored_in(PULL_NS[tool])
        if self.digest not in blobs:
            raise RuntimeError(f"{tool} pull succeeded but the manifest {self.digest} is not in "
                               f"namespace {PULL_NS[tool]}")
        self.stored[tool] = (len(blobs), len(snapshots))
        return took

    def cleanup(self):
        for tool, ns in PULL_NS.items():
            try:
                self.remove(tool)
            except (RuntimeError, OSError) as e:
                print(f"bench: cleanup: {e}", file=sys.stderr)
            r = subprocess.run(["ctr", "--address", self.address, "namespaces", "remove", ns],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               stdin=subprocess.DEVNULL, env=self.env)
            if r.returncode != 0 and b"not found" not in r.stderr:
                print(f"bench: cleanup: namespace {ns}: {r.stderr.decode().strip()}",
                      file=sys.stderr)
        self.registry.stop()


def pull_bench(address):
    tmp = tempfile.mkdtemp(prefix="podctl-bench-pull-")
    bench = None
    times = {"podctl": [], "ctr": []}
    errors = {}
    try:
        bench = PullBench(tmp, address)
        tools = ["podctl", "ctr"]
        for i in range(PULL_RUNS + 1):  # round 0 warms caches and is not counted
            for tool in tools[i % 2:] + tools[:i % 2]:
                if tool in errors:
                    continue
                try:
                    took = bench.pull(tool)
                except (RuntimeError, OSError) as e:
                    errors[tool] = str(e)
                    continue
                if i > 0:
                    times[tool].append(took)
    finally:
        if bench is not None:
            bench.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"pull of {PULL_REPO} ({PULL_LAYERS + 1} layers, {bench.size / 1e6:.0f} MB) from a "
          f"loopback registry, cold, {PULL_RUNS} interleaved rounds (median, min..max):")
    med = {}
    for tool, ts in times.items():
        if tool in errors:
            print(f"  {tool:<11} failed: {errors[tool]}")
        elif ts:
            med[tool] = statistics.median(ts)
            blobs, snapshots = bench.stored[tool]
            print(f"  {tool:<11} {med[tool]:.3f} s   ({min(ts):.3f}..{max(ts):.3f})   "
                  f"[{blobs} blobs, {snapshots} snapshots stored]")
    fmt = lambda tool: f"{med[tool]:.3f} s" if tool in med else "failed"
    ratio = f"{med['podctl'] / med['ctr']:.2f}" if len(med) == 2 else "n/a"
    print(f"pull: podctl {fmt('podctl')}, ctr {fmt('ctr')}, ratio podctl/ctr {ratio}")


def main():
    if os.geteuid() != 0:
        sys.exit("bench: needs root (namespaces, runc)")
    tmp = tempfile.mkdtemp(prefix="podctl-bench-")
    bench = Bench(tmp)
    variants = [("podctl", bench.podctl), ("podctl+cni", lambda: bench.podctl(network=True)),
                ("ctr script", bench.ctr), ("runc floor", bench.runc)]
    times = {name: [] for name, _ in variants}
    try:
        for _, fn in variants:  # warm caches once each
            fn()
        for i in range(RUNS):
            k = i % len(variants)
            for name, fn in variants[k:] + variants[:k]:
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
    finally:
        bench.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)
    med = {name: statistics.median(ts) for name, ts in times.items()}
    print(f"reference pod, {RUNS} interleaved runs each (median, min..max):")
    for name, ts in times.items():
        print(f"  {name:<11} {med[name]:.3f} s   ({min(ts):.3f}..{max(ts):.3f})")
    print(f"  podctl/ctr-script = {med['podctl'] / med['ctr script']:.2f}  (goal: <= 1.0 now, 0.5 later)")
    print(f"  podctl/runc-floor = {med['podctl'] / med['runc floor']:.2f}  (goal: <= 2.0)")
    print(f"  the pod network (CNI bridge, host-local, portmap, firewall: ADD and DEL) adds "
          f"{(med['podctl+cni'] - med['podctl']) * 1000:.0f} ms to the pod "
          f"(podctl+cni/ctr-script = {med['podctl+cni'] / med['ctr script']:.2f})")
    print(f"  containerd shims seen at once during a podctl run: {bench.shims_seen} (goal: <= 1)")
    if bench.max_rss_kib:
        print(f"  podctl peak RSS: {bench.max_rss_kib / 1024:.1f} MiB")
    print()
    pull_bench(bench.address)


if __name__ == "__main__":
    main()
