#!/usr/bin/env bash
# A newcomer's first run: a lab network namespace with bridge br0 (192.168.1.1/24,
# fd00:1::1/64), sixboot serving the example config there, and two real machines booting
# from it in QEMU: one legacy BIOS (SeaBIOS, its NIC ROM is iPXE) and one UEFI (OVMF, its
# own PXE). The timeline of each machine streams as it boots; the demo ends with the memtest
# banner and each path's time to utility, then tears everything down.
# KEEP=1 leaves sixboot running and prints where to look.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$PWD/target/release/sixboot
[ -x "$bin" ] || { echo "demo: build first (cargo build --release)" >&2; exit 1; }
[ -f assets/burnin/initrd.img ] || { echo "demo: build the burn-in image first (make assets)" >&2; exit 1; }
limit=${DEMO_LIMIT:-300}

ns=sixboot-demo
work=$(mktemp -d /tmp/sixboot-demo.XXXXXX)
pids=()
server=
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  if [ "${KEEP:-0}" != 1 ]; then
    if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
    ip netns del "$ns" 2>/dev/null || true
    rm -rf "$work"
  fi
}
trap cleanup EXIT

if ip netns list | grep -qw "$ns"; then
  echo "demo: namespace $ns exists (a KEEP=1 demo still running?); stop it first:" >&2
  echo "      ip netns del $ns" >&2
  exit 1
fi
ip netns add "$ns"
ip -n "$ns" link set lo up
ip -n "$ns" link add br0 type bridge
ip -n "$ns" link set br0 up
ip -n "$ns" addr add 192.168.1.1/24 dev br0
ip -n "$ns" -6 addr add fd00:1::1/64 dev br0 nodad
for t in tap-bios tap-uefi; do
  ip -n "$ns" tuntap add "$t" mode tap
  ip -n "$ns" link set "$t" master br0 up
done

mkdir -p "$work/tftp" "$work/http"
cp examples/sixboot.toml "$work/"
cp /usr/lib/ipxe/undionly.kpxe /usr/lib/ipxe/snponly.efi "$work/tftp/"
cp /boot/memtest86+x64.bin /boot/memtest86+x64.efi "$work/http/"
mkdir -p "$work/http/burnin"
cp assets/burnin/vmlinuz assets/burnin/initrd.img "$work/http/burnin/"  # make assets

echo "== sixboot check"
ip netns exec "$ns" "$bin" check --config "$work/sixboot.toml"
echo "== sixboot explain: what each stage of a BIOS machine gets"
"$bin" explain --config "$work/sixboot.toml" --client bios | sed 's/^/   /'
"$bin" explain --config "$work/sixboot.toml" --client ipxe-bios | sed 's/^/   /'

ip netns exec "$ns" env RUST_LOG="${RUST_LOG:-info}" "$bin" serve --config "$work/sixboot.toml" >/dev/null 2>"$work/sixboot.log" &
server=$!
for _ in $(seq 100); do grep -q "HTTP listening\|listening on" "$work/sixboot.log" 2>/dev/null && break; sleep 0.1; done

start=$(date +%s.%N)
ip netns exec "$ns" qemu-system-x86_64 -accel tcg -m 256 -nographic -no-reboot -boot n \
  -netdev tap,id=n0,ifname=tap-bios,script=no,downscript=no -device e1000,netdev=n0,mac=52:54:00:de:00:01 \
  -serial "file:$work/bios.serial" -monitor none -display none >/dev/null 2>&1 &
pids+=($!)
cp /usr/share/OVMF/OVMF_VARS_4M.fd "$work/vars.fd"
ip netns exec "$ns" qemu-system-x86_64 -accel tcg -m 512 -machine q35 -nographic -no-reboot \
  -drive if=pflash,format=raw,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd \
  -drive "if=pflash,format=raw,file=$work/vars.fd" \
  -netdev tap,id=n0,ifname=tap-uefi,script=no,downscript=no -device virtio-net-pci,netdev=n0,mac=52:54:00:de:00:02,romfile= \
  -serial "file:$work/uefi.serial" -monitor none -display none >/dev/null 2>&1 &
pids+=($!)
echo "== booting: BIOS machine 52:54:00:de:00:01, UEFI machine 52:54:00:de:00:02 (QEMU without KVM: allow a minute)"
echo "   time  machine            protocol  stage      detail"

declare -A done_at
shown=0
while :; do
  now=$(date +%s.%N)
  # New timeline lines from sixboot's own log.
  mapfile -t lines < <(grep "sixboot::timeline" "$work/sixboot.log" | tail -n +$((shown + 1)))
  for l in "${lines[@]}"; do
    shown=$((shown + 1))
    mac=$(sed -n 's/.* mac=\([^ ]*\).*/\1/p' <<<"$l"); proto=$(sed -n 's/.* protocol=\([^ ]*\).*/\1/p' <<<"$l")
    stage=$(sed -n 's/.* stage=\([^ ]*\).*/\1/p' <<<"$l"); detail=$(sed -n 's/.* detail=//p' <<<"$l")
    case "$mac" in 52:54:00:de:00:01) who="BIOS $mac" ;; 52:54:00:de:00:02) who="UEFI $mac" ;; *) who="$mac" ;; esac
    printf '%6.1fs  %-23s %-9s %-10s %s\n' "$(echo "$now - $start" | bc)" "$who" "$proto" "$stage" "$detail"
  done
  for m in bios uefi; do
    if [ -z "${done_at[$m]:-}" ] && sed 's/\x1b\[[0-9;?]*[a-zA-Z]//g' "$work/$m.serial" 2>/dev/null | grep -q "Memtest86+ v"; then
      done_at[$m]=$(printf '%.1f' "$(echo "$now - $start" | bc)")
      printf '%6.1fs  %-23s memtest86+ banner on the serial console\n' "${done_at[$m]}" "$(tr a-z A-Z <<<"$m") machine"
    fi
  done
  [ -n "${done_at[bios]:-}" ] && [ -n "${done_at[uefi]:-}" ] && break
  if (( $(echo "$now - $start > $limit" | bc) )); then echo "demo: a machine did not reach memtest within $limit s (log: $work/sixboot.log)"; break; fi
  sleep 0.5
done

echo "== time to utility (VM start to memtest banner)"
printf '   BIOS (SeaBIOS + iPXE ROM, IPv6 only after the ROM): %s s\n' "${done_at[bios]:-not reached}"
printf '   UEFI (OVMF PXE over IPv4, then iPXE over IPv6):     %s s\n' "${done_at[uefi]:-not reached}"
if [ "${KEEP:-0}" = 1 ]; then
  echo "== KEEP=1: sixboot is still running in namespace $ns (pid $server); the VMs were stopped."
  echo "   log:      $work/sixboot.log"
  echo "   metrics:  ip netns exec $ns curl -sg 'http://[fd00:1::1]:8080/metrics'"
  echo "   explain:  $bin explain --config $work/sixboot.toml --client uefi-x64"
  echo "   stop:     kill $server; ip netns del $ns; rm -rf $work"
fi
[ -n "${done_at[bios]:-}" ] && [ -n "${done_at[uefi]:-}" ]
