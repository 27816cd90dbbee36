#!/usr/bin/env bash
# Installs what sixboot's tests, demo and benches need on a fresh Debian 12 machine (as root).
# Usage: scripts/deps.sh [test|demo|bench|assets|fuzz]...   Idempotent: installs only what is missing.
set -euo pipefail

test_pkgs=(iproute2 isc-dhcp-client tftp-hpa atftp curl ndisc6 sqlite3 procps kmod bc python3-prometheus-client
  kea-admin tcpdump util-linux systemd chromium)
e2e_pkgs=(qemu-system-x86 ovmf ipxe memtest86+)
# scripts/assets.sh: the burn-in image is unpacked from Debian packages, never installed.
assets_pkgs=(cpio zstd binutils kmod)
# The demo forwards its dashboard to the host's loopback (socat) and prints results (jq).
demo_pkgs=(socat jq)
# tftpd-hpa conflicts with atftpd as a package; bench/ unpacks its in.tftpd with apt-get download.
bench_pkgs=(kea-dhcp4-server kea-dhcp6-server kea-admin dnsmasq atftpd nginx wrk util-linux)
# libfuzzer-sys compiles libFuzzer (C++); scripts/fuzz.sh installs cargo-fuzz itself.
fuzz_pkgs=(g++)

want=()
for what in "${@:-test}"; do
  case "$what" in
    test) want+=("${test_pkgs[@]}" "${e2e_pkgs[@]}" "${assets_pkgs[@]}") ;;
    demo) want+=("${test_pkgs[@]}" "${e2e_pkgs[@]}" "${assets_pkgs[@]}" "${demo_pkgs[@]}") ;;
    assets) want+=("${assets_pkgs[@]}") ;;
    bench) want+=("${test_pkgs[@]}" "${e2e_pkgs[@]}" "${bench_pkgs[@]}") ;;
    fuzz) want+=("${fuzz_pkgs[@]}") ;;
    *) echo "deps.sh: unknown set '$what' (test, demo, bench, assets, fuzz)" >&2; exit 2 ;;
  esac
done

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || { echo "deps.sh: missing packages ${missing[*]}; run as root" >&2; exit 1; }
  # Peer servers (dnsmasq, kea, tftpd-hpa, nginx) must not start as system services:
  # benches start them inside their own namespaces.
  policy=/usr/sbin/policy-rc.d
  made_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod +x "$policy"; made_policy=1
  fi
  trap '[ "$made_policy" = 1 ] && rm -f "$policy"' EXIT
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

if command -v rustup >/dev/null 2>&1; then
  rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy
  rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
fi
command -v cargo >/dev/null || { echo "deps.sh: cargo not found; install a Rust toolchain" >&2; exit 1; }
