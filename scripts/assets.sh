#!/usr/bin/env bash
# Builds the burn-in image (a Debian kernel and a small initramfs) from Debian packages only:
# `apt-get download` from the configured mirror, `dpkg-deb -x` into a build folder, nothing
# installed on this machine; plus the agent (agent/), built here with cargo: this build host
# is Debian 12 like the packages, so the agent links against the same libc the image holds.
# Output: assets/burnin/{vmlinuz,initrd.img}.
# Downloaded packages stay in assets/cache and are fetched again only when missing or when
# the mirror has a newer version. Needs apt, dpkg-deb, readelf and strip (binutils), depmod
# (kmod), cpio and zstd (scripts/deps.sh assets), and cargo.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD
cache=$top/assets/cache
build=$top/assets/build
out=$top/assets/burnin
arch=x86_64-linux-gnu

# Drivers by module name; their dependencies come along through modules.dep.
nics=(virtio_pci virtio_net virtio_rng e1000 e1000e igb igc ixgbe i40e ice tg3 bnx2 bnx2x
  bnxt_en r8169 mlx4_en mlx5_core vmxnet3 qede be2net)
# So the report lists disks on common servers and in QEMU.
disks=(virtio_blk virtio_scsi ahci ata_piix nvme sd_mod megaraid_sas mpt3sas hpsa smartpqi)
# The BMC's character device (/dev/ipmi0) and its firmware revision in sysfs.
bmc=(ipmi_si ipmi_devintf)

log() { echo "assets: $*"; }

# Package lists: without them apt cannot resolve anything (a fresh machine).
apt-cache show linux-image-amd64 >/dev/null 2>&1 || apt-get update -q

# linux-image-amd64 is a metapackage: the image is its one linux-image-* dependency.
kpkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-/ {print $2; exit}')
[ -n "$kpkg" ] || { echo "assets: cannot resolve the kernel package behind linux-image-amd64" >&2; exit 1; }
# The tools the agent runs; their shared libraries come from their whole Depends closure
# (virtual names, in <>, skipped). Only the libraries the binaries need are copied in.
tools=(stress-ng smartmontools nvme-cli)
libpkgs=$(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks \
  --no-replaces --no-enhances --no-pre-depends "${tools[@]}" | grep -v '^ ' | grep -v '^<' | sort -u)
pkgs=("$kpkg" busybox-static isc-dhcp-client $libpkgs)

mkdir -p "$cache"
# apt-get download skips a file already in the folder with the right hash: that is the cache.
files=$(cd "$cache" && apt-get download --print-uris "${pkgs[@]}" | awk '{print $2}')
if [ -n "$files" ]; then
  log "downloading $(wc -w <<<"$files") package(s) into $cache"
  (cd "$cache" && apt-get -q -o APT::Sandbox::User=root download "${pkgs[@]}")
fi
debs=()
for p in "${pkgs[@]}"; do
  v=$(apt-cache policy "$p" | awk '/Candidate:/ {print $2}')
  f=$cache/${p}_${v//:/%3a}_*.deb
  # shellcheck disable=SC2086
  set -- $f
  [ -e "$1" ] || { echo "assets: $p $v missing from $cache after download" >&2; exit 1; }
  debs+=("$1")
done

rm -rf "$build"
mkdir -p "$build/kernel" "$build/pkgs" "$build/root"
log "unpacking ${#debs[@]} packages"
dpkg-deb -x "${debs[0]}" "$build/kernel"
for d in "${debs[@]:1}"; do dpkg-deb -x "$d" "$build/pkgs"; done

kver=$(basename "$(ls -d "$build"/kernel/lib/modules/*)")
root=$build/root
mkdir -p "$root"/{bin,dev,proc,sys,tmp,run,etc,usr/bin,usr/sbin,var/lib/dhcp,lib/$arch,lib64}
ln -s bin "$root/sbin"
ln -s ../run "$root/var/run"

# busybox, one link per applet.
cp "$build/pkgs/bin/busybox" "$root/bin/busybox"
for a in $("$root/bin/busybox" --list); do
  [ -e "$root/bin/$a" ] || ln -s busybox "$root/bin/$a"
done

# Dynamic programs and the closure of their NEEDED libraries, found in the unpacked packages.
lib_of() {
  local so=$1 d
  for d in "$build/pkgs/lib/$arch" "$build/pkgs/usr/lib/$arch"; do
    [ -e "$d/$so" ] && { echo "$d/$so"; return; }
  done
  echo "assets: shared library $so not found in the unpacked packages" >&2
  return 1
}
copy_elf() {
  local f=$1 so path
  for so in $(readelf -d "$f" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
    [ -e "$root/lib/$arch/$so" ] && continue
    path=$(lib_of "$so")
    cp -L "$path" "$root/lib/$arch/$so"
    copy_elf "$root/lib/$arch/$so"
  done
}
cp "$build/pkgs/usr/bin/stress-ng" "$root/usr/bin/"
cp "$build/pkgs/sbin/dhclient" "$build/pkgs/usr/sbin/smartctl" "$build/pkgs/usr/sbin/nvme" "$root/usr/sbin/"
for b in "$root/usr/bin/stress-ng" "$root"/usr/sbin/{dhclient,smartctl,nvme}; do copy_elf "$b"; done
# The agent, stripped: the image's PID 1 once the init has brought up the network.
log "building the agent"
"${CARGO:-cargo}" build --release --quiet -p sixboot-agent
strip -o "$root/usr/bin/sixboot-agent" "${CARGO_TARGET_DIR:-$top/target}/release/sixboot-agent"
copy_elf "$root/usr/bin/sixboot-agent"
interp=$(readelf -l "$root/usr/bin/stress-ng" | sed -n 's/.*interpreter: \(.*\)\]/\1/p')
cp -L "$build/pkgs/lib/$arch/$(basename "$interp")" "$root/lib/$arch/"
ln -s "../lib/$arch/$(basename "$interp")" "$root$interp"

# Kernel modules: depmod the package's tree to learn dependencies, copy the wanted modules with
# theirs, then depmod the small tree so busybox modprobe finds modules by name and alias.
kroot=$build/kernel
depmod -b "$kroot" "$kver"
mods=$kroot/lib/modules/$kver
want=("${nics[@]}" "${disks[@]}" "${bmc[@]}")
for f in "$mods"/kernel/drivers/edac/*.ko; do want+=("$(basename "$f" .ko)"); done
declare -A picked=()
pick() {
  local name=${1//-/_} line dep
  line=$(awk -v n="$name" -F: '{ m=$1; sub(".*/", "", m); sub("\\.ko$", "", m); gsub("-", "_", m) } m == n { print; exit }' "$mods/modules.dep")
  [ -n "$line" ] || { echo "assets: module $1 not in $kver" >&2; return 1; }
  for dep in ${line%%:*} ${line#*:}; do
    [ -n "${picked[$dep]:-}" ] && continue
    picked[$dep]=1
    mkdir -p "$root/lib/modules/$kver/$(dirname "$dep")"
    cp "$mods/$dep" "$root/lib/modules/$kver/$dep"
  done
}
for m in "${want[@]}"; do pick "$m"; done
cp "$mods"/modules.order "$mods"/modules.builtin "$mods"/modules.builtin.modinfo "$root/lib/modules/$kver/"
depmod -b "$root" "$kver"
log "kernel $kver, ${#picked[@]} modules"

install -m 0755 scripts/burnin/init "$root/init"
install -m 0755 scripts/burnin/dhclient-hook "$root/usr/sbin/dhclient-hook"

mkdir -p "$out"
cp "$kroot/boot/vmlinuz-$kver" "$out/vmlinuz.new"
(cd "$root" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc -R 0:0 --quiet) \
  | zstd -q -6 -T0 >"$out/initrd.img.new"
mv "$out/vmlinuz.new" "$out/vmlinuz"
mv "$out/initrd.img.new" "$out/initrd.img"
size() { echo "$(stat -c %s "$1") bytes ($(( ($(stat -c %s "$1") + 524288) >> 20 )) MiB)"; }
log "$out/vmlinuz $(size "$out/vmlinuz"), $out/initrd.img $(size "$out/initrd.img")"
