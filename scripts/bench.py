#!/usr/bin/env python3
"""make bench: the reference pod (bench/reference-pod.yaml: 2 init containers + main, emptyDir
handoff, run to completion and removed), timed three ways in one interleaved run:

  podctl      `podctl run --rm bench/reference-pod.yaml`
  ctr script  three `ctr run --rm` sharing a network namespace and a bind-mounted directory
  runc floor  three `runc run` on prepared bundles sharing a network namespace and a directory

Prints the median wall time of each, the ratios podctl/ctr-script and podctl/runc, the most
containerd shims seen at once during a podctl run, and podctl's peak RSS.
Environment: BENCH_RUNS (default 15), CONTAINERD_ADDRESS (else scripts/containerd.sh picks).
"""

import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PODCTL = os.path.join(REPO, "target/release/podctl")
MKIMAGE = os.path.join(REPO, "target/release/mkimage")
POD = os.path.join(REPO, "bench/reference-pod.yaml")
NS = "podctl-bench"
IMAGE = "docker.io/library/busybox:latest"
STEPS = [
    ("one", ["sh", "-c", "echo one >> /work/log"]),
    ("two", ["sh", "-c", "echo two >> /work/log"]),
    ("main", ["cat", "/work/log"]),
]
RUNS = int(os.environ.get("BENCH_RUNS", "15"))


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
        tar = os.path.join(tmp, "busybox.tar")
        run([MKIMAGE, "--out", tar, "--name", "busybox"])
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

    def podctl(self):
        sampler = ShimSampler()
        sampler.start()
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            p = subprocess.Popen([PODCTL, "run", "--rm", POD], env=self.env, stdout=out,
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
        subprocess.run([PODCTL, "image", "rm", "busybox"], env=self.env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # runc keeps an (empty, once every container is gone) state dir per namespace.
        try:
            os.rmdir(f"/run/containerd/runc/{NS}")
        except OSError:
            pass


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


def main():
    if os.geteuid() != 0:
        sys.exit("bench: needs root (namespaces, runc)")
    tmp = tempfile.mkdtemp(prefix="podctl-bench-")
    bench = Bench(tmp)
    variants = [("podctl", bench.podctl), ("ctr script", bench.ctr), ("runc floor", bench.runc)]
    times = {name: [] for name, _ in variants}
    try:
        for _, fn in variants:  # warm caches once each
            fn()
        for i in range(RUNS):
            for name, fn in variants[i % 3:] + variants[:i % 3]:
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
    print(f"  containerd shims seen at once during a podctl run: {bench.shims_seen} (goal: <= 1)")
    if bench.max_rss_kib:
        print(f"  podctl peak RSS: {bench.max_rss_kib / 1024:.1f} MiB")


if __name__ == "__main__":
    main()
