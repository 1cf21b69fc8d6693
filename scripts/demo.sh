#!/usr/bin/env bash
# make demo: run examples/init-demo.yaml and examples/sidecar-job.yaml on a containerd,
# starting a private one if needed.
set -euo pipefail
cd "$(dirname "$0")/.."

CONTAINERD_ADDRESS=$(bash scripts/containerd.sh start)
export CONTAINERD_ADDRESS
podctl=target/release/podctl

mkdir -p target/demo
echo "==> building the demo image from the host's static busybox" >&2
target/release/mkimage --out target/demo/busybox.tar --name busybox:1.35
echo "==> $podctl image import target/demo/busybox.tar" >&2
"$podctl" image import target/demo/busybox.tar
echo "==> $podctl run --rm examples/init-demo.yaml" >&2
"$podctl" run --rm examples/init-demo.yaml
echo "==> $podctl run --rm --events examples/sidecar-job.yaml" >&2
"$podctl" run --rm --events examples/sidecar-job.yaml
