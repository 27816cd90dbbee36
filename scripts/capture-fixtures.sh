#!/usr/bin/env bash
# Captures real boot-client packets as byte fixtures for sixboot's unit tests.
#
# As root on Debian 12: builds a throw-away lab (network namespace fx-PID with bridge br0,
# 192.168.1.1/24 + fd00:1::1/64, a tap for QEMU, and a client namespace fxc-PID on a veth),
# runs the reference dnsmasq from shared/lab and tcpdump in it, boots real firmware in QEMU
# (TCG) and real dhclient, and saves each interesting client packet's UDP payload (ICMPv6
# message for the RS) under tests/fixtures/, plus a README.md that decodes every file.
#
# Usage: scripts/capture-fixtures.sh [OUTDIR]      (default: tests/fixtures of this repo)
# Environment: PHASES="bios ovmf4 ovmf6 dhclient" (a subset only for debugging: the output
#   tree is rewritten from the phases that ran), BIOS_TIMEOUT=120, OVMF_TIMEOUT=180 (s per VM),
#   LAB_DIR (default: ../shared/lab beside the repo, else /work/shared/lab).
# Everything it starts is stopped by PID and both namespaces are removed, even on failure.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$repo/tests/fixtures}
phases=${PHASES:-bios ovmf4 ovmf6 dhclient}
bios_timeout=${BIOS_TIMEOUT:-120}
ovmf_timeout=${OVMF_TIMEOUT:-180}
lab_dir=${LAB_DIR:-$repo/../shared/lab}
[ -d "$lab_dir" ] || lab_dir=/work/shared/lab

log() { printf '%s capture-fixtures: %s\n' "$(date +%T)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (network namespaces, taps)"
for f in dnsmasq-v4v6.conf dnsmasq-v6only.conf; do
  [ -f "$lab_dir/$f" ] || die "reference dnsmasq config $f not found in $lab_dir (set LAB_DIR)"
done

# --- packages: install only what is missing --------------------------------------------------
pkgs=(iproute2 tcpdump dnsmasq-base qemu-system-x86 ovmf ipxe isc-dhcp-client python3)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

ovmf_code=/usr/share/OVMF/OVMF_CODE_4M.fd
ovmf_vars=/usr/share/OVMF/OVMF_VARS_4M.fd
for f in /usr/lib/ipxe/undionly.kpxe /usr/lib/ipxe/snponly.efi "$ovmf_code" "$ovmf_vars"; do
  [ -f "$f" ] || die "missing $f"
done

# --- lab state and cleanup -------------------------------------------------------------------
ns=fx-$$       # server side: br0, tap0, dnsmasq, tcpdump, QEMU
cns=fxc-$$     # client side for dhclient: eth0, a veth joined to br0
tmp=$(mktemp -d /tmp/capture-fixtures.XXXXXX)
chmod 755 "$tmp"
pids=()        # every process this script started, by PID

forget() {
  local keep=() p
  for p in "${pids[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
  pids=("${keep[@]}")
}

# Stops one process we started: TERM, up to 5 s, then KILL; reaps it if it is our child.
stop_pid() {
  local pid=$1 i
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
  fi
  wait "$pid" 2>/dev/null || true
  forget "$pid"
}

# QEMU runs under `timeout`; its own PID comes from -pidfile, so it is stopped even if
# `timeout` is killed first.
stop_vm() {
  local qpid=""
  [ -s "$tmp/qemu.pid" ] && qpid=$(cat "$tmp/qemu.pid")
  stop_pid "$1"
  if [ -n "$qpid" ] && kill -0 "$qpid" 2>/dev/null &&
    grep -q qemu-system "/proc/$qpid/cmdline" 2>/dev/null; then
    kill -KILL "$qpid" 2>/dev/null || true
  fi
  rm -f "$tmp/qemu.pid"
}

cleanup() {
  local rc=$? p
  set +e
  trap - EXIT INT TERM
  [ -n "${vm_pid:-}" ] && stop_vm "$vm_pid"
  for ((p = ${#pids[@]} - 1; p >= 0; p--)); do stop_pid "${pids[p]}"; done
  ip netns del "$cns" 2>/dev/null
  ip netns del "$ns" 2>/dev/null
  rm -rf "$tmp"
  [ "$rc" = 0 ] || log "failed (exit $rc); lab removed"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Starts "$@" in the background with output to $1's log file; sets $last_pid.
start_bg() {
  local logf=$1
  shift
  "$@" >"$logf" 2>&1 </dev/null &
  last_pid=$!
  pids+=("$last_pid")
}

nsx() { ip netns exec "$ns" "$@"; }
cx() { ip netns exec "$cns" "$@"; }

# --- the lab (as shared/lab/netns-setup.sh, plus a veth client namespace) ---------------------
log "lab namespace $ns (client $cns), work dir $tmp"
ip netns add "$ns"
nsx sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
nsx ip link set lo up
nsx ip link add br0 type bridge mcast_snooping 0
nsx ip link set br0 up
nsx ip tuntap add tap0 mode tap
nsx ip link set tap0 master br0
nsx ip link set tap0 up
nsx ip addr add 192.168.1.1/24 dev br0
nsx ip -6 addr add fd00:1::1/64 dev br0 nodad
ip netns add "$cns"
cx sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
cx ip link set lo up
nsx ip link add vc0 type veth peer name eth0 netns "$cns"
nsx ip link set vc0 master br0
nsx ip link set vc0 up
client_mac=02:00:00:fc:00:01
cx ip link set eth0 address "$client_mac"
cx ip link set eth0 up

mkdir "$tmp/tftp"
cp /usr/lib/ipxe/undionly.kpxe /usr/lib/ipxe/snponly.efi "$tmp/tftp/"
chmod 755 "$tmp/tftp"
chmod 644 "$tmp/tftp/"*

# --- the pcap reader / selector / decoder (stdlib only) ---------------------------------------
py=$tmp/fixtures.py
cat >"$py" <<'PYEOF'
"""Reads a pcap (Ethernet), picks the fixture packets of one phase, writes them, decodes them."""
import json, os, socket, struct, sys

def read_pcap(path):
    with open(path, 'rb') as f:
        data = f.read()
    if len(data) < 24:
        return []
    magic = data[:4]
    if magic in (b'\xd4\xc3\xb2\xa1', b'\x4d\x3c\xb2\xa1'):
        e = '<'
    elif magic in (b'\xa1\xb2\xc3\xd4', b'\xa1\xb2\x3c\x4d'):
        e = '>'
    else:
        sys.exit(f'{path}: not a pcap file')
    nano = magic in (b'\x4d\x3c\xb2\xa1', b'\xa1\xb2\x3c\x4d')
    if struct.unpack(e + 'I', data[20:24])[0] != 1:
        sys.exit(f'{path}: link type is not Ethernet')
    off, n, pkts, t0 = 24, 0, [], None
    while off + 16 <= len(data):
        sec, frac, incl, _orig = struct.unpack(e + 'IIII', data[off:off + 16])
        off += 16
        if off + incl > len(data):
            break  # last record still being written
        frame = data[off:off + incl]
        off += incl
        n += 1
        ts = sec + frac / (1e9 if nano else 1e6)
        t0 = ts if t0 is None else t0
        p = parse_eth(frame)
        if p:
            p.update(frame=n, ts=ts, rel=ts - t0)
            pkts.append(p)
    return pkts

def mac(b):
    return ':'.join(f'{x:02x}' for x in b)

def parse_eth(fr):
    if len(fr) < 14:
        return None
    et, l3 = struct.unpack('!H', fr[12:14])[0], fr[14:]
    while et == 0x8100 and len(l3) >= 4:
        et, l3 = struct.unpack('!H', l3[2:4])[0], l3[4:]
    p = {'smac': mac(fr[6:12]), 'dmac': mac(fr[0:6])}
    if et == 0x0800:
        if len(l3) < 20 or l3[0] >> 4 != 4:
            return None
        ihl, tot = (l3[0] & 15) * 4, struct.unpack('!H', l3[2:4])[0]
        if struct.unpack('!H', l3[6:8])[0] & 0x3fff:
            return None  # fragment
        proto, body = l3[9], l3[ihl:tot]
        p.update(af=4, src=socket.inet_ntop(socket.AF_INET, l3[12:16]),
                 dst=socket.inet_ntop(socket.AF_INET, l3[16:20]))
    elif et == 0x86dd:
        if len(l3) < 40:
            return None
        plen, proto = struct.unpack('!H', l3[4:6])[0], l3[6]
        body = l3[40:40 + plen]
        p.update(af=6, src=socket.inet_ntop(socket.AF_INET6, l3[8:24]),
                 dst=socket.inet_ntop(socket.AF_INET6, l3[24:40]))
    else:
        return None
    if proto == 17 and len(body) >= 8:
        sp, dp, ulen = struct.unpack('!HHH', body[:6])
        p.update(proto='udp', sport=sp, dport=dp, payload=bytes(body[8:ulen]))
    elif proto == 58 and p['af'] == 6 and len(body) >= 4:
        p.update(proto='icmp6', sport=None, dport=None, payload=bytes(body))
    else:
        return None  # incl. IPv6 with extension headers (MLD): not wanted here
    return p

# ---- protocol helpers
def d4_opts(pl):
    if len(pl) < 240 or pl[236:240] != b'\x63\x82\x53\x63':
        return None
    opts, i = [], 240
    while i < len(pl):
        c = pl[i]
        if c == 0:
            i += 1
            continue
        if c == 255 or i + 1 >= len(pl):
            break
        ln = pl[i + 1]
        opts.append((c, bytes(pl[i + 2:i + 2 + ln])))
        i += 2 + ln
    return opts

def d6_opts(pl, start=4):
    opts, i = [], start
    while i + 4 <= len(pl):
        c, ln = struct.unpack('!HH', pl[i:i + 4])
        opts.append((c, bytes(pl[i + 4:i + 4 + ln])))
        i += 4 + ln
    return opts

def addr(ip, port):
    if port is None:
        return ip
    return f'[{ip}]:{port}' if ':' in ip else f'{ip}:{port}'

def first(opts, code):
    return next((v for c, v in opts if c == code), None)

def is_d4(p):   # client -> server DHCPv4
    return p['proto'] == 'udp' and p['af'] == 4 and p['sport'] == 68 and p['dport'] == 67

def d4_type(p):
    o = d4_opts(p['payload']) or []
    t = first(o, 53)
    return t[0] if t else None

def is_d6(p):   # client -> server DHCPv6
    return p['proto'] == 'udp' and p['af'] == 6 and p['dport'] == 547

def tftp_op(p):
    pl = p['payload']
    return struct.unpack('!H', pl[:2])[0] if p['proto'] == 'udp' and len(pl) >= 2 else None

def tftp_picks(pk, af, prefix):
    """RRQs from the client (retransmits folded): the first is EDK2's tsize probe that it
    aborts with an ERROR from the same port, the next one the real fetch."""
    rrqs, seen = [], set()
    for p in pk:
        if p['proto'] == 'udp' and p['af'] == af and p['dport'] == 69 and tftp_op(p) == 1:
            key = (p['sport'], p['payload'])
            if key not in seen:
                seen.add(key)
                rrqs.append(p)
    picks = {}
    if len(rrqs) >= 2:
        probe = rrqs[0]
        picks[f'tftp/{prefix}-rrq-tsize-probe.bin'] = probe
        picks[f'tftp/{prefix}-error-abort.bin'] = next(
            (p for p in pk if p['af'] == af and p['proto'] == 'udp' and p['sport'] == probe['sport']
             and p['dport'] != 69 and tftp_op(p) == 5), None)
        picks[f'tftp/{prefix}-rrq.bin'] = rrqs[1]
    elif rrqs:
        picks[f'tftp/{prefix}-rrq.bin'] = rrqs[0]
    return picks

# ---- what each phase keeps: name -> packet (None if not seen); WAIT lists what ends a VM run
def select(phase, pkts, vm_mac):
    pk = [p for p in pkts if p['smac'] == vm_mac]
    d4 = [p for p in pk if is_d4(p)]
    d6 = [p for p in pk if is_d6(p)]
    def f(seq, pred):
        return next((p for p in seq if pred(p)), None)
    def o4(p):
        return d4_opts(p['payload']) or []
    def o6(p):
        return d6_opts(p['payload'])
    def ipxe6(p):   # user class iPXE
        return first(o6(p), 15) is not None
    if phase == 'bios':
        picks = {
            'dhcp4/ipxe-rom-bios-discover.bin': f(d4, lambda p: d4_type(p) == 1),
            'dhcp6/ipxe-solicit.bin': f(d6, lambda p: p['payload'][0] == 1),
            'dhcp6/ipxe-request.bin': f(d6, lambda p: p['payload'][0] == 3),
            'icmp6/ipxe-router-solicit.bin': f(pk, lambda p: p['proto'] == 'icmp6' and p['payload'][0] == 133),
        }
        tf = tftp_picks(pk, 4, 'ipxe-rom')
        if 'tftp/ipxe-rom-rrq.bin' in tf:
            picks['tftp/ipxe-rom-rrq.bin'] = tf['tftp/ipxe-rom-rrq.bin']
        wait = list(picks)
    elif phase == 'ovmf4':
        picks = {
            'dhcp4/ovmf-pxe-x64-discover.bin': f(d4, lambda p: d4_type(p) == 1 and first(o4(p), 77) is None),
            'dhcp4/ovmf-pxe-x64-request.bin': f(d4, lambda p: d4_type(p) == 3 and first(o4(p), 77) is None),
            'dhcp4/ipxe-snponly-efi-discover.bin': f(d4, lambda p: d4_type(p) == 1 and first(o4(p), 77) is not None),
        }
        picks.update(tftp_picks(pk, 4, 'ovmf'))
        wait = list(picks) + ['tftp/ovmf-rrq-tsize-probe.bin', 'tftp/ovmf-error-abort.bin', 'tftp/ovmf-rrq.bin']
    elif phase == 'ovmf6':
        def duid_type(p):
            d = first(o6(p), 1)
            return struct.unpack('!H', d[:2])[0] if d and len(d) >= 2 else None
        picks = {
            'dhcp6/ovmf-pxe6-solicit-llt.bin': f(d6, lambda p: p['payload'][0] == 1 and not ipxe6(p)
                                                 and first(o6(p), 16) is None and duid_type(p) == 1),
            'dhcp6/ovmf-pxe6-solicit-vendor.bin': f(d6, lambda p: p['payload'][0] == 1 and not ipxe6(p)
                                                    and first(o6(p), 16) is not None),
            'dhcp6/ovmf-pxe6-request.bin': f(d6, lambda p: p['payload'][0] == 3 and not ipxe6(p)
                                             and first(o6(p), 16) is not None),
            # the exchange before the PXE one: REQUEST with no vendor class, then RELEASEs
            'dhcp6/ovmf-pxe6-request-llt.bin': f(d6, lambda p: p['payload'][0] == 3 and not ipxe6(p)
                                                 and first(o6(p), 16) is None),
            'dhcp6/ovmf-pxe6-release.bin': f(d6, lambda p: p['payload'][0] == 8 and not ipxe6(p)),
            # EDK2 solicits routers from the unspecified address
            'icmp6/ovmf-router-solicit.bin': f(pk, lambda p: p['proto'] == 'icmp6' and p['payload'][0] == 133),
        }
        tf = tftp_picks(pk, 6, 'ovmf-pxe6')
        for k in ('tftp/ovmf-pxe6-rrq-tsize-probe.bin', 'tftp/ovmf-pxe6-rrq.bin'):
            if k in tf:
                picks[k] = tf[k]
        wait = list(picks) + ['tftp/ovmf-pxe6-rrq-tsize-probe.bin', 'tftp/ovmf-pxe6-rrq.bin']
    elif phase == 'dhclient':
        picks = {
            'dhcp4/dhclient-discover.bin': f(d4, lambda p: d4_type(p) == 1),
            'dhcp6/dhclient6-solicit.bin': f(d6, lambda p: p['payload'][0] == 1),
            'dhcp6/dhclient6-request.bin': f(d6, lambda p: p['payload'][0] == 3),
        }
        wait = list(picks)
    else:
        sys.exit(f'unknown phase {phase}')
    return picks, wait

# ---- decoding for the README
D4_TYPES = {1: 'DHCPDISCOVER', 2: 'DHCPOFFER', 3: 'DHCPREQUEST', 4: 'DHCPDECLINE', 5: 'DHCPACK',
            6: 'DHCPNAK', 7: 'DHCPRELEASE', 8: 'DHCPINFORM'}
D4_NAMES = {1: 'subnet mask', 3: 'router', 6: 'DNS', 12: 'host name', 13: 'boot file size',
            15: 'domain name', 17: 'root path', 28: 'broadcast', 40: 'NIS domain', 42: 'NTP', 43: 'vendor specific',
            50: 'requested IP', 51: 'lease time', 53: 'message type', 54: 'server identifier',
            55: 'parameter request list', 57: 'max message size', 60: 'vendor class identifier',
            61: 'client identifier', 66: 'TFTP server', 67: 'boot file', 77: 'user class',
            93: 'client system architecture', 94: 'client network interface id', 97: 'client machine id (UUID)',
            119: 'domain search', 121: 'classless static routes', 128: 'PXE 128', 129: 'PXE 129',
            130: 'PXE 130', 131: 'PXE 131', 132: 'PXE 132', 133: 'PXE 133', 134: 'PXE 134', 135: 'PXE 135',
            175: 'iPXE encapsulated', 203: 'iPXE 203'}
D6_TYPES = {1: 'SOLICIT', 2: 'ADVERTISE', 3: 'REQUEST', 4: 'CONFIRM', 5: 'RENEW', 6: 'REBIND',
            7: 'REPLY', 8: 'RELEASE', 9: 'DECLINE', 10: 'RECONFIGURE', 11: 'INFORMATION-REQUEST'}
D6_NAMES = {1: 'client id', 2: 'server id', 3: 'IA_NA', 5: 'IA address', 6: 'option request',
            8: 'elapsed time', 14: 'rapid commit', 15: 'user class', 16: 'vendor class',
            17: 'vendor opts', 23: 'DNS servers', 24: 'domain list', 25: 'IA_PD', 39: 'client FQDN',
            59: 'boot file URL', 60: 'boot file params', 61: 'client arch type', 62: 'client network interface id'}
ARCH = {0: 'x86 BIOS', 6: 'x86 UEFI', 7: 'x64 UEFI', 9: 'EBC / x64 UEFI', 10: 'ARM32 UEFI',
        11: 'ARM64 UEFI', 16: 'x64 UEFI HTTP', 19: 'ARM64 UEFI HTTP'}

def hx(b):
    return b.hex(' ') if b else '(empty)'

def txt(b):
    return b and all(32 <= c < 127 for c in b)

def d4_value(c, v):
    if c == 53 and len(v) == 1:
        return D4_TYPES.get(v[0], '?')
    if c == 55:
        return 'codes ' + ','.join(str(x) for x in v)
    if c == 57 and len(v) == 2:
        return str(struct.unpack('!H', v)[0])
    if c in (50, 54) and len(v) == 4:
        return socket.inet_ntop(socket.AF_INET, v)
    if c == 93 and len(v) % 2 == 0:
        return ', '.join(f'{a} ({ARCH.get(a, "?")})' for a in struct.unpack('!%dH' % (len(v) // 2), v))
    if c == 94 and len(v) == 3:
        return f'type {v[0]} (UNDI), version {v[1]}.{v[2]}'
    if c == 97 and len(v) == 17:
        return f'type {v[0]}, GUID {v[1:].hex()}'
    if c == 61 and len(v) >= 1:
        return f'type {v[0]}, ' + (mac(v[1:]) if v[0] == 1 and len(v) == 7 else v[1:].hex())
    if c == 77:
        if txt(v):
            return f'"{v.decode()}" (raw text, no RFC 3004 length prefix)'
        return 'RFC 3004 items ' + repr(items(v, 1))
    if c in (43, 175):
        subs, i = [], 0
        while i + 1 < len(v):
            subs.append(f'{v[i]}:{v[i + 2:i + 2 + v[i + 1]].hex()}')
            i += 2 + v[i + 1]
        return 'sub-options ' + ' '.join(subs)
    if txt(v):
        return f'"{v.decode()}"'
    return ''

def items(v, lenw):
    out, i = [], 0
    while i + lenw <= len(v):
        n = int.from_bytes(v[i:i + lenw], 'big')
        out.append(v[i + lenw:i + lenw + n].decode('ascii', 'replace'))
        i += lenw + n
    return out

def duid(v):
    if len(v) < 2:
        return '?'
    t = struct.unpack('!H', v[:2])[0]
    if t == 1 and len(v) >= 8:
        hw, tm = struct.unpack('!HI', v[2:8])
        return f'DUID-LLT, hw type {hw}, time {tm}, link-layer {mac(v[8:])}'
    if t == 2 and len(v) >= 6:
        return f'DUID-EN, enterprise {struct.unpack("!I", v[2:6])[0]}, id {v[6:].hex()}'
    if t == 3 and len(v) >= 4:
        return f'DUID-LL, hw type {struct.unpack("!H", v[2:4])[0]}, link-layer {mac(v[4:])}'
    if t == 4:
        return f'DUID-UUID, UUID {v[2:].hex()}'
    return f'DUID type {t}'

def d6_value(c, v):
    if c in (1, 2):
        return duid(v)
    if c in (3, 25) and len(v) >= 12:
        iaid, t1, t2 = struct.unpack('!III', v[:12])
        subs = d6_opts(v, 12)
        s = f'IAID 0x{iaid:08x}, T1 {t1}, T2 {t2}'
        if subs:
            s += ', sub-options ' + ' '.join(f'{sc}({len(sv)} bytes: {sv.hex()})' for sc, sv in subs)
        return s
    if c == 6 and len(v) % 2 == 0:
        return 'codes ' + ','.join(str(x) for x in struct.unpack('!%dH' % (len(v) // 2), v))
    if c == 8 and len(v) == 2:
        return f'{struct.unpack("!H", v)[0]} (1/100 s)'
    if c == 15:
        return 'items ' + repr(items(v, 2))
    if c == 16 and len(v) >= 4:
        return f'enterprise {struct.unpack("!I", v[:4])[0]}, items ' + repr(items(v[4:], 2))
    if c == 61 and len(v) % 2 == 0:
        return ', '.join(f'{a} ({ARCH.get(a, "?")})' for a in struct.unpack('!%dH' % (len(v) // 2), v))
    if c == 62 and len(v) == 3:
        return f'type {v[0]} (UNDI), version {v[1]}.{v[2]}'
    if c == 39 and len(v) >= 1:
        return f'flags {v[0]}, name {items(v[1:], 1)}'
    if txt(v):
        return f'"{v.decode()}"'
    return ''

def decode(name, p):
    pl, lines = p['payload'], []
    if name.startswith('dhcp4/'):
        op, htype, hlen, hops, xid, secs, flags = struct.unpack('!BBBBIHH', pl[:12])
        ciaddr = socket.inet_ntop(socket.AF_INET, pl[12:16])
        opts = d4_opts(pl)
        lines.append(f'{D4_TYPES.get(d4_type(p), "?")}: op {op}, htype {htype}, hlen {hlen}, hops {hops}, '
                     f'xid 0x{xid:08x}, secs {secs}, flags 0x{flags:04x}, ciaddr {ciaddr}, chaddr {mac(pl[28:28 + hlen])}, '
                     f'sname {"empty" if not pl[44:108].strip(bytes(1)) else repr(pl[44:108].rstrip(bytes(1)))}, '
                     f'file {"empty" if not pl[108:236].strip(bytes(1)) else repr(pl[108:236].rstrip(bytes(1)))}; '
                     f'options in order: {" ".join(str(c) for c, _ in opts)}')
        for c, v in opts:
            d = d4_value(c, v)
            lines.append(f'opt {c} ({D4_NAMES.get(c, "?")}), len {len(v)}: `{hx(v)}`' + (f' = {d}' if d else ''))
    elif name.startswith('dhcp6/'):
        xid = int.from_bytes(pl[1:4], 'big')
        opts = d6_opts(pl)
        lines.append(f'{D6_TYPES.get(pl[0], "?")} (type {pl[0]}), transaction id 0x{xid:06x}; '
                     f'options in order: {" ".join(str(c) for c, _ in opts)}')
        for c, v in opts:
            d = d6_value(c, v)
            lines.append(f'opt {c} ({D6_NAMES.get(c, "?")}), len {len(v)}: `{hx(v)}`' + (f' = {d}' if d else ''))
    elif name.startswith('tftp/'):
        op = tftp_op(p)
        if op in (1, 2):
            parts = pl[2:].split(b'\0')
            if parts and parts[-1] == b'':
                parts = parts[:-1]
            s = ['RRQ' if op == 1 else 'WRQ', f'file "{parts[0].decode()}"', f'mode "{parts[1].decode()}"']
            kv = parts[2:]
            s += [f'option {kv[i].decode()}={kv[i + 1].decode() if i + 1 < len(kv) else "?"}'
                  for i in range(0, len(kv), 2)]
            lines.append(', '.join(s) + f' (client port {p["sport"]})')
        elif op == 5:
            code = struct.unpack('!H', pl[2:4])[0]
            msg = pl[4:].split(b'\0')[0].decode('ascii', 'replace')
            lines.append(f'ERROR code {code}, message "{msg}" (from client port {p["sport"]} to server port {p["dport"]})')
        lines.append(f'bytes: `{hx(pl)}`')
    elif name.startswith('icmp6/'):
        t, code = pl[0], pl[1]
        lines.append(f'ICMPv6 type {t} ({"Router Solicitation" if t == 133 else "?"}), code {code}, '
                     f'checksum 0x{pl[2:4].hex()}, reserved {pl[4:8].hex()}')
        i = 8
        while i + 2 <= len(pl) and pl[i + 1]:
            ot, ol = pl[i], pl[i + 1] * 8
            v = pl[i + 2:i + ol]
            lines.append(f'NDP option {ot}' + (' (source link-layer address)' if ot == 1 else '') +
                         f', len {ol}: `{hx(v)}`' + (f' = {mac(v)}' if ot == 1 else ''))
            i += ol
        lines.append(f'bytes: `{hx(pl)}` (ICMPv6 checksum covers the IPv6 pseudo-header {p["src"]} -> {p["dst"]})')
    return lines

def main():
    cmd = sys.argv[1]
    if cmd == 'check':          # check PHASE PCAP MAC: exit 0 once everything awaited is seen
        picks, wait = select(sys.argv[2], read_pcap(sys.argv[3]), sys.argv[4])
        sys.exit(0 if all(picks.get(k) for k in wait) else 1)
    if cmd == 'extract':        # extract PHASE PCAP MAC STAGE MANIFEST: write files, log them
        phase, pcap, vm_mac, stage, manifest = sys.argv[2:7]
        pkts = read_pcap(pcap)
        picks, _ = select(phase, pkts, vm_mac)
        with open(manifest, 'a') as m:
            for name, p in picks.items():
                if p is None:
                    print(f'  MISSING {name}', file=sys.stderr)
                    m.write(json.dumps({'phase': phase, 'file': name, 'missing': True}) + '\n')
                    continue
                path = os.path.join(stage, name)
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with open(path, 'wb') as f:
                    f.write(p['payload'])
                print(f'  {name}: {len(p["payload"])} bytes (frame {p["frame"]}, +{p["rel"]:.1f} s)', file=sys.stderr)
                m.write(json.dumps({'phase': phase, 'file': name, 'frame': p['frame'], 'rel': round(p['rel'], 1),
                                    'from': f'{p["smac"]} {addr(p["src"], p["sport"])}',
                                    'to': addr(p['dst'], p['dport']),
                                    'size': len(p['payload']), 'decode': decode(name, p)}) + '\n')
        return
    if cmd == 'summary':        # summary PCAP MAC: one line per client DHCP/TFTP/ICMPv6 packet
        for p in read_pcap(sys.argv[2]):
            if p['smac'] != sys.argv[3]:
                continue
            pl, what = p['payload'], ''
            if is_d4(p):
                o = d4_opts(pl) or []
                what = f'DHCPv4 {D4_TYPES.get(d4_type(p))} 60={first(o, 60)} 77={first(o, 77)}'
            elif is_d6(p):
                o = d6_opts(pl)
                what = f'DHCPv6 {D6_TYPES.get(pl[0])} opts={[c for c, _ in o]} duid={duid(first(o, 1) or b"")}'
            elif p['proto'] == 'icmp6':
                what = f'ICMPv6 type {pl[0]}'
            elif p['proto'] == 'udp' and tftp_op(p) in (1, 5) and (p['dport'] == 69 or tftp_op(p) == 5):
                what = f'TFTP op {tftp_op(p)} {pl[2:60]!r}'
            if what:
                print(f'    #{p["frame"]} +{p["rel"]:.1f}s {p["src"]}:{p["sport"]} -> {p["dst"]}:{p["dport"]} {what}')
        return
    if cmd == 'readme':         # readme MANIFEST META.json OUT.md
        entries = [json.loads(l) for l in open(sys.argv[2])]
        meta = json.load(open(sys.argv[3]))
        w = []
        w.append('# Boot-client byte fixtures\n')
        w.append('Real packets from real boot firmware and clients, captured by `scripts/capture-fixtures.sh` '
                 f'on {meta["date"]} (QEMU TCG, no KVM, on Debian {meta["debian"]}). Each `.bin` file is the '
                 'UDP payload of one packet (for `icmp6/`: the ICMPv6 message from its type byte on), exactly as '
                 'the client sent it. Regenerate with `sudo scripts/capture-fixtures.sh` (it rewrites this '
                 'directory, this README included).\n')
        w.append('Packages: ' + ', '.join(f'{k} {v}' for k, v in meta['versions'].items()) + '.\n')
        w.append('Server side (the lab): namespace with bridge `br0` = 192.168.1.1/24 and fd00:1::1/64, '
                 'dnsmasq 2.90 with the reference configs from `shared/lab/` (`port=0`, interface br0, TFTP root '
                 'holding `undionly.kpxe` and `snponly.efi`), tcpdump on the VM\'s tap (or on the dhclient veth). '
                 'No HTTP server was running, so iPXE\'s `http://[fd00:1::1]:8080/boot.ipxe` fetch fails; '
                 'that happens after every packet kept here.\n')
        w.append('## Runs\n')
        w.append('Each VM runs until every packet awaited from it is in the capture, then it is stopped '
                 '(`timeout` is only the upper bound). A file holds the first packet of its kind from that '
                 'client; retransmissions are not kept.\n')
        for ph in meta['phases']:
            w.append(f'### `{ph["name"]}`: {ph["title"]}\n')
            w.append(f'dnsmasq config: `{ph["conf"]}`. Capture: `{ph["pcap"]}`. Client MAC `{ph["mac"]}`.\n')
            w.append('```\n' + ph['cmd'] + '\n```\n')
        w.append('## Files\n')
        for e in entries:
            if e.get('missing'):
                continue
            w.append(f'### `{e["file"]}`\n')
            w.append(f'- From run `{e["phase"]}`, frame {e["frame"]} of its capture, +{e["rel"]} s; '
                     f'{e["from"]} -> {e["to"]}; {e["size"]} bytes.')
            for l in e['decode']:
                w.append(f'- {l}')
            w.append('')
        missing = [e['file'] for e in entries if e.get('missing')]
        if missing:
            w.append('## Not captured in this run\n')
            w += [f'- `{m}`' for m in missing]
            w.append('')
        w.append('Hand-written observations about these clients (kept across regenerations): `NOTES.md`.\n')
        open(sys.argv[4], 'w').write('\n'.join(w))
        return
    sys.exit(f'unknown command {cmd}')

main()
PYEOF

# --- one phase: dnsmasq + tcpdump + a client, then extraction -------------------------------
stage=$tmp/stage
manifest=$tmp/manifest.jsonl
mkdir -p "$stage"
: >"$manifest"
phase_meta=()

start_server() { # PHASE CONF IFACE
  local phase=$1 conf=$2 iface=$3 i
  sed "s|TFTP_ROOT|$tmp/tftp|" "$lab_dir/$conf" >"$tmp/$phase.conf"
  rm -f "$tmp/$phase.leases"
  start_bg "$tmp/$phase.dnsmasq.log" ip netns exec "$ns" dnsmasq --keep-in-foreground --log-facility=- \
    --conf-file="$tmp/$phase.conf" --pid-file="$tmp/$phase.dnsmasq.pid" \
    --dhcp-leasefile="$tmp/$phase.leases" --user=root --group=root
  dnsmasq_pid=$last_pid
  start_bg "$tmp/$phase.tcpdump.log" ip netns exec "$ns" tcpdump -i "$iface" -U -n -s 0 -Z root \
    -w "$tmp/$phase.pcap"
  tcpdump_pid=$last_pid
  for ((i = 0; i < 100; i++)); do
    grep -q 'listening on' "$tmp/$phase.tcpdump.log" 2>/dev/null && break
    kill -0 "$tcpdump_pid" 2>/dev/null || die "tcpdump failed: $(cat "$tmp/$phase.tcpdump.log")"
    sleep 0.1
  done
  sleep 1
  kill -0 "$dnsmasq_pid" 2>/dev/null || die "dnsmasq failed: $(cat "$tmp/$phase.dnsmasq.log")"
}

stop_server() {
  stop_pid "$tcpdump_pid"
  stop_pid "$dnsmasq_pid"
}

# PHASE TIMEOUT MAC QEMU-ARGS...: boots a VM until every awaited packet is in the pcap.
run_vm() {
  local phase=$1 t=$2 vm_mac=$3 cmd
  shift 3
  cmd=(qemu-system-x86_64 "$@" -serial "file:$tmp/$phase.serial.log" -monitor none -display none
    -pidfile "$tmp/qemu.pid")
  printf '%s\n' "timeout $t ${cmd[*]}" | sed "s|$tmp/||g" >"$tmp/$phase.cmd"
  log "$phase: booting ($t s at most)"
  start_bg "$tmp/$phase.qemu.log" ip netns exec "$ns" timeout --kill-after=5 "$t" "${cmd[@]}"
  vm_pid=$last_pid
  local start=$SECONDS
  while kill -0 "$vm_pid" 2>/dev/null; do
    sleep 3
    if python3 "$py" check "$phase" "$tmp/$phase.pcap" "$vm_mac"; then
      log "$phase: every awaited packet seen after $((SECONDS - start)) s"
      sleep 1
      break
    fi
  done
  kill -0 "$vm_pid" 2>/dev/null || log "$phase: VM ended (timeout or exit) after $((SECONDS - start)) s"
  stop_vm "$vm_pid"
  vm_pid=
}

finish_phase() { # PHASE MAC CONF TITLE
  local phase=$1 vm_mac=$2 conf=$3 title=$4
  stop_server
  log "$phase: packets from $vm_mac:"
  python3 "$py" summary "$tmp/$phase.pcap" "$vm_mac" >&2 || true
  python3 "$py" extract "$phase" "$tmp/$phase.pcap" "$vm_mac" "$stage" "$manifest"
  local size
  size=$(stat -c %s "$tmp/$phase.pcap")
  local pcap_name="(not kept: $size bytes)"
  if [ "$size" -lt 2000000 ]; then
    cp "$tmp/$phase.pcap" "$stage/capture-$phase.pcap"
    pcap_name=capture-$phase.pcap
  fi
  phase_meta+=("$(python3 -c 'import json,sys; print(json.dumps(dict(zip(["name","mac","conf","title","pcap","cmd"], sys.argv[1:]))))' \
    "$phase" "$vm_mac" "$conf" "$title" "$pcap_name" "$(cat "$tmp/$phase.cmd")")")
}

ovmf_args() { # MAC VARS
  echo -accel tcg -m 512 -machine q35 -nographic -no-reboot \
    -drive "if=pflash,format=raw,readonly=on,file=$ovmf_code" -drive "if=pflash,format=raw,file=$2" \
    -netdev tap,id=n0,ifname=tap0,script=no,downscript=no -device "virtio-net-pci,netdev=n0,mac=$1,romfile="
}

for phase in $phases; do
  case $phase in
    bios)
      mac=52:54:00:12:34:56
      start_server bios dnsmasq-v4v6.conf tap0
      run_vm bios "$bios_timeout" "$mac" -accel tcg -m 256 -nographic -no-reboot -boot n \
        -netdev tap,id=n0,ifname=tap0,script=no,downscript=no -device "e1000,netdev=n0,mac=$mac"
      finish_phase bios "$mac" dnsmasq-v4v6.conf "SeaBIOS + e1000 with QEMU's default NIC ROM (iPXE)"
      ;;
    ovmf4)
      mac=52:54:00:12:34:57
      cp "$ovmf_vars" "$tmp/ovmf4.vars.fd"
      start_server ovmf4 dnsmasq-v4v6.conf tap0
      # shellcheck disable=SC2046 # word splitting of ovmf_args is intended (no spaces in paths)
      run_vm ovmf4 "$ovmf_timeout" "$mac" $(ovmf_args "$mac" "$tmp/ovmf4.vars.fd")
      finish_phase ovmf4 "$mac" dnsmasq-v4v6.conf "OVMF (EDK2) PXEv4 on virtio-net, chainloading iPXE snponly.efi"
      ;;
    ovmf6)
      mac=52:54:00:12:34:58
      cp "$ovmf_vars" "$tmp/ovmf6.vars.fd"
      start_server ovmf6 dnsmasq-v6only.conf tap0
      # shellcheck disable=SC2046
      run_vm ovmf6 "$ovmf_timeout" "$mac" $(ovmf_args "$mac" "$tmp/ovmf6.vars.fd") \
        -fw_cfg name=opt/org.tianocore/IPv4PXESupport,string=no
      finish_phase ovmf6 "$mac" dnsmasq-v6only.conf "OVMF (EDK2) PXEv6 only (IPv4PXESupport=no) on virtio-net"
      ;;
    dhclient)
      start_server dhclient dnsmasq-v4v6.conf vc0
      log "dhclient: -4 and -6 in $cns (15 s each, at once)"
      # A UTS namespace with a fixed host name: Debian's dhclient.conf sends gethostname().
      dh=(unshare --uts sh -c 'hostname fixture-client && exec "$@"' sh)
      start_bg "$tmp/dhclient4.log" ip netns exec "$cns" timeout 15 "${dh[@]}" dhclient -4 -d -1 -v \
        -sf /bin/true -lf "$tmp/dhclient4.leases" -pf "$tmp/dhclient4.pid" eth0
      d4=$last_pid
      start_bg "$tmp/dhclient6.log" ip netns exec "$cns" timeout 15 "${dh[@]}" dhclient -6 -d -1 -v \
        -sf /bin/true -lf "$tmp/dhclient6.leases" -pf "$tmp/dhclient6.pid" eth0
      d6=$last_pid
      wait "$d4" || true
      forget "$d4"
      wait "$d6" || true
      forget "$d6"
      printf '%s\n' "ip netns exec CLIENT_NS timeout 15 unshare --uts sh -c 'hostname fixture-client && exec dhclient -4 -d -1 -v -sf /bin/true -lf dhclient4.leases -pf dhclient4.pid eth0'" \
        "ip netns exec CLIENT_NS timeout 15 unshare --uts sh -c 'hostname fixture-client && exec dhclient -6 -d -1 -v -sf /bin/true -lf dhclient6.leases -pf dhclient6.pid eth0'" \
        "# Debian's default /etc/dhcp/dhclient.conf; eth0 = veth joined to br0" >"$tmp/dhclient.cmd"
      finish_phase dhclient "$client_mac" dnsmasq-v4v6.conf "ISC dhclient 4.4.3 (Debian 12), -4 and -6, in a client namespace"
      ;;
    *) die "unknown phase $phase" ;;
  esac
done

# --- README and the output tree -------------------------------------------------------------
python3 - "$tmp/meta.json" "${phase_meta[@]}" <<'PYEOF'
import json, subprocess, sys, datetime
out = sys.argv[1]
pk = ['qemu-system-x86', 'seabios', 'ovmf', 'ipxe', 'ipxe-qemu', 'dnsmasq-base', 'isc-dhcp-client']
ver = {p: subprocess.run(['dpkg-query', '-W', '-f=${Version}', p], capture_output=True, text=True).stdout or '?' for p in pk}
json.dump({'date': datetime.date.today().isoformat(), 'debian': open('/etc/debian_version').read().strip(),
           'versions': ver, 'phases': [json.loads(a) for a in sys.argv[2:]]}, open(out, 'w'))
PYEOF
python3 "$py" readme "$manifest" "$tmp/meta.json" "$stage/README.md"

mkdir -p "$out"
rm -rf "$out/dhcp4" "$out/dhcp6" "$out/tftp" "$out/icmp6" "$out/README.md"
rm -f "$out"/capture-*.pcap
cp -r "$stage/." "$out/"
log "fixtures written to $out:"
(cd "$out" && find . -type f ! -name '*.md' | sort) >&2
if grep -q '"missing": true' "$manifest"; then
  log "not captured: $(grep '"missing": true' "$manifest" | python3 -c 'import json,sys; print(" ".join(json.loads(l)["file"] for l in sys.stdin))')"
fi
