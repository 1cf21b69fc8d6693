#!/usr/bin/env bash
# Installs what podctl needs on a Debian machine, skipping what is already there:
# containerd and runc (the runtime podctl drives), protoc (containerd-client's build runs
# prost-build), busybox-static (test and demo images are built from it), the CNI plugins, and
# for pull tests and the pull benchmark a loopback registry: docker-registry, skopeo (pushes
# test images into it) and apache2-utils (htpasswd, for its basic auth).
set -euo pipefail

need=()
command -v containerd >/dev/null 2>&1 || need+=(containerd)
command -v runc >/dev/null 2>&1 || need+=(runc)
command -v protoc >/dev/null 2>&1 || need+=(protobuf-compiler)
dpkg -s busybox-static >/dev/null 2>&1 || need+=(busybox-static)
[ -d /usr/lib/cni ] || need+=(containernetworking-plugins)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
# The bridge, portmap and firewall plugins program the host's firewall with it.
command -v iptables >/dev/null 2>&1 || need+=(iptables)
command -v python3 >/dev/null 2>&1 || need+=(python3)
command -v docker-registry >/dev/null 2>&1 || need+=(docker-registry)
command -v skopeo >/dev/null 2>&1 || need+=(skopeo)
command -v htpasswd >/dev/null 2>&1 || need+=(apache2-utils)

if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: missing packages: ${need[*]}; run as root (or install them) and retry" >&2
    exit 1
  fi
  echo "setup: installing ${need[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  # The package starts a registry on every interface (:5000) on systemd hosts; the tests and
  # the bench start their own on loopback, so do not leave that one running.
  if [[ " ${need[*]} " == *" docker-registry "* ]] && command -v systemctl >/dev/null 2>&1; then
    systemctl disable --now docker-registry >/dev/null 2>&1 || true
  fi
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo not found: podctl builds with a Rust toolchain (https://rustup.rs)" >&2
  exit 1
fi
