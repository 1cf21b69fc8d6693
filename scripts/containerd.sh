#!/usr/bin/env bash
# Usage: scripts/containerd.sh start|stop
# start: prints the address of a reachable containerd socket. Uses $CONTAINERD_ADDRESS or the
# system socket when one answers; otherwise starts a private containerd (root, state and socket
# under /var/lib/podctl-containerd and /run/podctl-containerd) and prints its socket.
# stop: stops the private containerd started here, if any.
set -euo pipefail

dir_state=/run/podctl-containerd
dir_root=/var/lib/podctl-containerd
sock=$dir_state/containerd.sock

answers() { [ -S "$1" ] && timeout 5 ctr --address "$1" version >/dev/null 2>&1; }

case "${1:-}" in
start)
  for candidate in "${CONTAINERD_ADDRESS:-}" /run/containerd/containerd.sock "$sock"; do
    if [ -n "$candidate" ] && answers "$candidate"; then
      echo "$candidate"
      exit 0
    fi
  done
  mkdir -p "$dir_state" "$dir_root"
  cat >"$dir_state/config.toml" <<CONF
version = 2
root = "$dir_root"
state = "$dir_state/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$sock"
[ttrpc]
  address = "$sock.ttrpc"
CONF
  echo "containerd.sh: starting a private containerd on $sock (log: $dir_state/containerd.log)" >&2
  setsid containerd --config "$dir_state/config.toml" >"$dir_state/containerd.log" 2>&1 < /dev/null &
  echo $! >"$dir_state/containerd.pid"
  for _ in $(seq 1 100); do
    if answers "$sock"; then
      echo "$sock"
      exit 0
    fi
    sleep 0.1
  done
  echo "containerd.sh: containerd did not answer on $sock; its log says:" >&2
  tail -n 20 "$dir_state/containerd.log" >&2
  exit 1
  ;;
stop)
  if [ -f "$dir_state/containerd.pid" ]; then
    kill "$(cat "$dir_state/containerd.pid")" 2>/dev/null || true
    rm -f "$dir_state/containerd.pid"
  fi
  ;;
*)
  echo "usage: $0 start|stop" >&2
  exit 2
  ;;
esac
