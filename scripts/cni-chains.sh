#!/usr/bin/env bash
# The CNI plugins make host-wide iptables chains on first use (the firewall plugin's
# CNI-FORWARD and CNI-ADMIN, portmap's CNI-HOSTPORT-*) and jumps to them from the built-in
# chains; they stay when the last pod's rules go. `make test` records which exist before the
# tests (`save FILE`) and afterwards (`restore FILE`) removes those the tests made, once no
# pod's rule is left in them. A host that ran pods before the tests keeps its chains.
set -euo pipefail

chains=(filter:CNI-FORWARD filter:CNI-ADMIN nat:CNI-HOSTPORT-DNAT nat:CNI-HOSTPORT-MASQ nat:CNI-HOSTPORT-SETMARK)
command -v iptables >/dev/null 2>&1 || exit 0

case "${1:-}" in
  save)
    for c in "${chains[@]}"; do
      if iptables -w -t "${c%%:*}" -S "${c#*:}" >/dev/null 2>&1; then echo "$c"; fi
    done >"$2"
    ;;
  restore)
    made=()
    for c in "${chains[@]}"; do
      grep -qx "$c" "$2" 2>/dev/null && continue
      iptables -w -t "${c%%:*}" -S "${c#*:}" >/dev/null 2>&1 && made+=("$c")
    done
    [ ${#made[@]} -eq 0 ] && exit 0
    # A pod's rule (an address or a CNI id) still in one of them: leave them all.
    for c in "${made[@]}"; do
      if iptables -w -t "${c%%:*}" -S "${c#*:}" | grep -qE '(id: |/32)'; then
        echo "cni-chains: ${c#*:} still holds pod rules; left in place" >&2
        exit 0
      fi
    done
    for c in "${made[@]}"; do
      t=${c%%:*} n=${c#*:}
      jumps=$(iptables -w -t "$t" -S | grep -E -- "-j $n( |\$)" || true)
      while read -r rule; do
        [ -n "$rule" ] && eval "iptables -w -t $t -D ${rule#-A }"
      done <<<"$jumps"
    done
    for c in "${made[@]}"; do iptables -w -t "${c%%:*}" -F "${c#*:}"; done
    for c in "${made[@]}"; do iptables -w -t "${c%%:*}" -X "${c#*:}"; done
    ;;
  *)
    echo "usage: $0 save|restore FILE" >&2
    exit 2
    ;;
esac
