#!/usr/bin/env bash
# A newcomer's first run: a lab network namespace with bridge br0 (192.168.1.1/24,
# fd00:1::1/64), sixboot serving the example config there, and two real machines booting
# from it in QEMU: one legacy BIOS (SeaBIOS, its NIC ROM is iPXE) and one UEFI (OVMF, its
# own PXE) booting memtest, and a third (SeaBIOS, 2 CPUs, 1 GiB, an NVMe, a SATA and a
# virtio disk) that the operator gives a pipeline (inventory, burn-in, power off) and the
# spec it is sold with through the API before it boots. The dashboard is forwarded to
# 127.0.0.1:$DEMO_PORT on this host while the demo runs. The timeline of each machine streams
# as it boots; the demo ends with the memtest banners, the third machine's inventory and
# per-part verdicts from the API, and tears everything down. KEEP=1 leaves sixboot (and the
# forward) running to look at in the dashboard, and prints where to look.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$PWD/target/release/sixboot
[ -x "$bin" ] || { echo "demo: build first (cargo build --release)" >&2; exit 1; }
[ -f assets/burnin/initrd.img ] || { echo "demo: build the burn-in image first (make assets)" >&2; exit 1; }
limit=${DEMO_LIMIT:-900}
port=${DEMO_PORT:-18080}
api='http://[fd00:1::1]:8080'
burn_mac=52:54:00:de:00:03

ns=sixboot-demo
work=$(mktemp -d /tmp/sixboot-demo.XXXXXX)
pids=()
server=
forward=
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  if [ "${KEEP:-0}" != 1 ]; then
    for p in $forward $server; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
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
for t in tap-bios tap-uefi tap-burn; do
  ip -n "$ns" tuntap add "$t" mode tap
  ip -n "$ns" link set "$t" master br0 up
done

mkdir -p "$work/tftp" "$work/http"
# The example config with the API's admin token (a fresh one per demo) switched on.
admin=$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')
{ cat examples/sixboot.toml; printf '\n[api]\nadmin_token = "%s"\n' "$admin"; } >"$work/sixboot.toml"
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
for _ in $(seq 100); do ip netns exec "$ns" curl -sgf -o /dev/null -m 1 "$api/healthz" && break; sleep 0.1; done

# The dashboard listens inside the namespace; a forward on this host's loopback only (each
# connection runs socat inside the namespace) lets a browser here watch it.
printf '#!/bin/sh\nexec ip netns exec %s socat STDIO "TCP6:[fd00:1::1]:8080"\n' "$ns" >"$work/to-dashboard"
chmod +x "$work/to-dashboard"
socat "TCP4-LISTEN:$port,bind=127.0.0.1,reuseaddr,fork" "EXEC:$work/to-dashboard" 2>"$work/forward.log" &
forward=$!
sleep 0.3
echo "== dashboard: $api/ inside namespace $ns"
if kill -0 "$forward" 2>/dev/null; then
  echo "   in a browser on this host: http://127.0.0.1:$port/ (a loopback-only forward)"
else
  forward=
  echo "   (no forward: 127.0.0.1:$port is taken; set DEMO_PORT)"
fi
echo "   from a shell:             ip netns exec $ns curl -sg '$api/api/v1/machines'"

echo "== operator: $burn_mac runs inventory, burn-in, then powers off; sold as 2 threads, 1 GiB, 3 disks"
ip netns exec "$ns" curl -sg -m 10 -X POST -H "Authorization: Bearer $admin" -H 'Content-Type: application/json' \
  -d "{\"macs\":[\"$burn_mac\"],\"pipeline\":[\"inventory\",\"burnin\",\"poweroff\"],\"batch\":\"demo-lot\",\"spec\":{\"memory_bytes\":1073741824,\"disks\":3}}" \
  -w '   POST /api/v1/machines/bulk: HTTP %{http_code}\n' -o /dev/null "$api/api/v1/machines/bulk"
disks=()
for d in nvme:NVME-DEMO-0001:64 sata:SATA-DEMO-0002:96 virtio:VIRTIO-DEMO-0003:128; do
  IFS=: read -r bus serial mib <<<"$d"
  truncate -s "${mib}M" "$work/$bus.img"
  disks+=(-drive "file=$work/$bus.img,if=none,id=$bus,format=raw")
  case $bus in
    nvme) disks+=(-device "nvme,drive=$bus,serial=$serial") ;;
    sata) disks+=(-device "ide-hd,drive=$bus,bus=ahci0.0,serial=$serial") ;;
    virtio) disks+=(-device "virtio-blk-pci,drive=$bus,serial=$serial") ;;
  esac
done

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
# The pipeline machine: SeaBIOS too, rebooting between steps, off at the end.
ip netns exec "$ns" qemu-system-x86_64 -accel tcg -m 1024 -smp 2 -nographic -boot n \
  -smbios type=1,serial=DEMO-0003 -device ahci,id=ahci0 "${disks[@]}" \
  -netdev tap,id=n0,ifname=tap-burn,script=no,downscript=no -device e1000,netdev=n0,mac=$burn_mac \
  -serial "file:$work/burn.serial" -monitor none -display none >/dev/null 2>&1 &
burn_pid=$!
pids+=($burn_pid)
echo "== booting: BIOS machine 52:54:00:de:00:01, UEFI machine 52:54:00:de:00:02, burn-in machine $burn_mac"
echo "   (QEMU without KVM: allow a few minutes)"
echo "   time  machine            protocol  stage      detail"

declare -A done_at
shown=0
burn_shown=0
while :; do
  now=$(date +%s.%N)
  # New timeline lines from sixboot's own log.
  mapfile -t lines < <(grep "sixboot::timeline" "$work/sixboot.log" | tail -n +$((shown + 1)))
  for l in "${lines[@]}"; do
    shown=$((shown + 1))
    mac=$(sed -n 's/.* mac=\([^ ]*\).*/\1/p' <<<"$l"); proto=$(sed -n 's/.* protocol=\([^ ]*\).*/\1/p' <<<"$l")
    stage=$(sed -n 's/.* stage=\([^ ]*\).*/\1/p' <<<"$l"); detail=$(sed -n 's/.* detail=//p' <<<"$l")
    case "$mac" in 52:54:00:de:00:01) who="BIOS $mac" ;; 52:54:00:de:00:02) who="UEFI $mac" ;; $burn_mac) who="BURN $mac" ;; *) who="$mac" ;; esac
    printf '%6.1fs  %-23s %-9s %-10s %s\n' "$(echo "$now - $start" | bc)" "$who" "$proto" "$stage" "$detail"
  done
  for m in bios uefi; do
    if [ -z "${done_at[$m]:-}" ] && sed 's/\x1b\[[0-9;?]*[a-zA-Z]//g' "$work/$m.serial" 2>/dev/null | grep -q "Memtest86+ v"; then
      done_at[$m]=$(printf '%.1f' "$(echo "$now - $start" | bc)")
      printf '%6.1fs  %-23s memtest86+ banner on the serial console\n' "${done_at[$m]}" "$(tr a-z A-Z <<<"$m") machine"
    fi
  done
  # The burn-in image's own console lines.
  mapfile -t said < <(grep -a "sixboot-burnin: \(starting\|report accepted\|report failed\|RESULT\|rebooting\|powering\)" "$work/burn.serial" 2>/dev/null | tail -n +$((burn_shown + 1)))
  for l in "${said[@]}"; do
    burn_shown=$((burn_shown + 1))
    printf '%6.1fs  %-23s console   %s\n' "$(echo "$now - $start" | bc)" "BURN machine" "$(tr -d '\r' <<<"${l#*sixboot-burnin: }")"
  done
  # The pipeline ends with the machine off: QEMU exits.
  if [ -z "${done_at[burn]:-}" ] && ! kill -0 "$burn_pid" 2>/dev/null; then
    done_at[burn]=$(printf '%.1f' "$(echo "$now - $start" | bc)")
  fi
  [ -n "${done_at[bios]:-}" ] && [ -n "${done_at[uefi]:-}" ] && [ -n "${done_at[burn]:-}" ] && break
  if (( $(echo "$now - $start > $limit" | bc) )); then echo "demo: a machine did not finish within $limit s (log: $work/sixboot.log)"; break; fi
  sleep 0.5
done

echo "== time to utility (VM start to memtest banner)"
printf '   BIOS (SeaBIOS + iPXE ROM, IPv6 only after the ROM): %s s\n' "${done_at[bios]:-not reached}"
printf '   UEFI (OVMF PXE over IPv4, then iPXE over IPv6):     %s s\n' "${done_at[uefi]:-not reached}"
printf '   pipeline (inventory, 20 s burn-in, power-off):       %s s\n' "${done_at[burn]:-not reached}"

# What the operator's API (and the dashboard) now says about each machine.
echo "== results: GET /api/v1/machines"
get() { ip netns exec "$ns" curl -sgf -m 10 "$api$1"; }
printf '   %-23s %-26s %-8s %s\n' machine "reached" result "next"
for mac in $(get /api/v1/machines | jq -r '.[].mac'); do
  case "$mac" in
    52:54:00:de:00:01) who="BIOS"; reached="memtest banner ${done_at[bios]:--} s" ;;
    52:54:00:de:00:02) who="UEFI"; reached="memtest banner ${done_at[uefi]:--} s" ;;
    "$burn_mac") who="BURN"; reached="powered off ${done_at[burn]:--} s" ;;
    *) who="    "; reached="" ;;
  esac
  get "/api/v1/machines/$mac" | jq -r --arg who "$who $mac" --arg reached "$reached" \
    '[$who, $reached, (.result // "-"), .next] | @tsv' |
    while IFS=$'\t' read -r a b c d; do printf '   %-23s %-26s %-8s %s\n' "$a" "$b" "$c" "$d"; done
done
echo "== $burn_mac: inventory and per-part verdicts (GET /api/v1/machines/$burn_mac)"
get "/api/v1/machines/$burn_mac" | jq -r '
  .report.inventory as $i |
  "   system  \($i.system.manufacturer // "-") \($i.system.product // "-"), serial \($i.system.serial // "-")",
  "   cpus    \([$i.cpus[] | "\(.model) (\(.threads) threads)"] | join(", "))",
  "   memory  \($i.memory.bytes / 1048576 | floor) MiB in \($i.memory.dimms | length) DIMM(s)",
  ($i.disks[] | "   disk    \(.serial // .name): \(.bytes / 1048576 | floor) MiB \(.kind) over \(.transport)"),
  "   steps   \([.reports[] | "\(.step) \(.result)"] | join(", "))",
  (.report.checks[] | "   \(if .ok then "PASS" else "FAIL" end)    \(.component) \(.name): \(.detail)\(if .limit then " (limit: \(.limit))" else "" end)")' 2>/dev/null ||
  echo "   (no report stored)"
if [ "${KEEP:-0}" = 1 ]; then
  echo "== KEEP=1: sixboot is still running in namespace $ns (pid $server); the VMs were stopped."
  [ -n "$forward" ] && echo "   dashboard: http://127.0.0.1:$port/ (forward pid $forward)"
  echo "   log:      $work/sixboot.log"
  echo "   metrics:  ip netns exec $ns curl -sg 'http://[fd00:1::1]:8080/metrics'"
  echo "   explain:  $bin explain --config $work/sixboot.toml --client uefi-x64"
  echo "   stop:     kill $forward $server; ip netns del $ns; rm -rf $work"
fi
[ -n "${done_at[bios]:-}" ] && [ -n "${done_at[uefi]:-}" ] && [ "$(get "/api/v1/machines/$burn_mac" | jq -r .result)" = PASS ]
