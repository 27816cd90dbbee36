#!/usr/bin/env bash
# A first run: a lab namespace with bridge br0 (192.168.1.1/24, fd00:1::1/64), sixboot
# serving the example config there, and clients asking it for DHCPv4: what firmware gets,
# and what iPXE and an OS get (nothing). KEEP=1 leaves sixboot running.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=target/release/sixboot
[ -x "$bin" ] || { echo "demo: build first (cargo build --release)" >&2; exit 1; }

ns=sixboot-demo
work=$(mktemp -d /tmp/sixboot-demo.XXXXXX)
pid=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  ip netns del "$ns-client" 2>/dev/null || true
  ip netns del "$ns" 2>/dev/null || true
  rm -rf "$work"
}
if [ "${KEEP:-0}" != 1 ]; then trap cleanup EXIT; fi

ip netns del "$ns-client" 2>/dev/null || true
ip netns del "$ns" 2>/dev/null || true
ip netns add "$ns"
ip -n "$ns" link set lo up
ip -n "$ns" link add br0 type bridge
ip -n "$ns" link set br0 up
ip -n "$ns" addr add 192.168.1.1/24 dev br0
ip -n "$ns" -6 addr add fd00:1::1/64 dev br0 nodad
ip netns add "$ns-client"
ip -n "$ns" link add vclient type veth peer name eth0 netns "$ns-client"
ip -n "$ns" link set vclient master br0 up
ip -n "$ns-client" link set lo up
ip -n "$ns-client" link set eth0 up

mkdir -p "$work/tftp" "$work/http"
cp examples/sixboot.toml "$work/"
for f in undionly.kpxe snponly.efi; do
  if [ -f "/usr/lib/ipxe/$f" ]; then cp "/usr/lib/ipxe/$f" "$work/tftp/"; else echo placeholder > "$work/tftp/$f"; fi
done
for f in memtest86+x64.bin memtest86+x64.efi; do
  if [ -f "/boot/$f" ]; then cp "/boot/$f" "$work/http/"; else echo placeholder > "$work/http/$f"; fi
done

echo "== sixboot check"
ip netns exec "$ns" "$bin" check --config "$work/sixboot.toml"
for kind in bios uefi-x64 ipxe-bios os; do
  echo "== sixboot explain --client $kind"
  "$bin" explain --config "$work/sixboot.toml" --client "$kind"
done

echo "== sixboot serve (log: $work/sixboot.log)"
ip netns exec "$ns" env RUST_LOG="${RUST_LOG:-sixboot=debug}" "$bin" serve --config "$work/sixboot.toml" 2>"$work/sixboot.log" &
pid=$!
for _ in $(seq 50); do grep -q "DHCPv4 listening" "$work/sixboot.log" 2>/dev/null && break; sleep 0.1; done

echo "== an OS DHCP client (dhclient) asks for IPv4: it must get nothing"
printf 'timeout 5;\n' > "$work/dhclient.conf"
ip netns exec "$ns-client" timeout 15 dhclient -4 -d -1 -v -sf /bin/true -cf "$work/dhclient.conf" \
  -lf "$work/dhclient.leases" -pf "$work/dhclient.pid" eth0 2>&1 | grep -E "DHCP|No " || true
echo "== what sixboot logged"
sed -e 's/^[^ ]* *//' "$work/sixboot.log"

if [ "${KEEP:-0}" = 1 ]; then
  echo "== sixboot is still running in namespace $ns (pid $pid); logs: $work/sixboot.log"
  echo "   stop it with: kill $pid; ip netns del $ns-client; ip netns del $ns"
fi
