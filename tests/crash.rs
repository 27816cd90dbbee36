//! Crash consistency: `sixboot serve` runs DHCPv4 and DHCPv6 under perfdhcp load plus a
//! stream of our own exchanges, and is killed with SIGKILL several times, restarting on the
//! same state_dir each time. Every lease granted on the wire (captured with tcpdump, and
//! recorded by our own clients) must then be in the store under its client, no address
//! may have been granted to two clients, those clients must get their addresses back, and
//! newcomers must get other ones.

mod common;

use common::capture::{Capture, Grant, Holder};
use common::dhcp4_client::{self as d4, client_socket, tlv, try_dora};
use common::dhcp6_client::{self as d6, follow_up, ipxe_extras, try_exchange, try_lease};
use common::{Lab, cmd_in, wait_until};
use dhcproto::v6;
use rusqlite::{Connection, OpenFlags};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// SIGKILLs while the load runs; one more follows once it is over.
const CYCLES: usize = 6;
/// Seconds perfdhcp sends for; the kills happen inside this window.
const LOAD_SECS: u64 = 20;
/// perfdhcp exchanges started per second, and distinct clients, per family.
const PERF_RATE: &str = "40";
const PERF_CLIENTS: &str = "60";
/// New clients our own streams start at most, per family (each stream also renews).
const OWN_CLIENTS: usize = 60;
/// Newcomers after the last restart, per family.
const NEWCOMERS: usize = 20;
const LEASE_TIME: u64 = 600;

fn config(lab: &Lab) -> PathBuf {
    lab.write("tftp/undionly.kpxe", b"bios nbp");
    let text = format!(
        r#"interface = "br0"
state_dir = "state"

[dhcp4]
subnet = "192.168.1.0/24"
pool = ["192.168.1.10", "192.168.1.254"]
lease_time = {LEASE_TIME}
max_lease_time = {LEASE_TIME}

[boot]
bios = "undionly.kpxe"

[tftp]
root = "tftp"

[ipv6]
prefix = "fd00:1::/64"
pool = ["fd00:1::1:0", "fd00:1::1:ffff"]
lease_time = {LEASE_TIME}
router_advertisements = false
"#
    );
    lab.write("sixboot.toml", text)
}

/// Starts sixboot and waits (bounded) until both DHCP servers listen, reading only the
/// part of the log this start wrote: under load the log grows fast.
fn started(lab: &mut Lab, cfg: &Path) -> u32 {
    let from = std::fs::metadata(lab.log_path()).map_or(0, |m| m.len());
    let pid = lab.start_sixboot(cfg);
    let fresh = || {
        let mut f = std::fs::File::open(lab.log_path()).unwrap();
        std::io::Seek::seek(&mut f, std::io::SeekFrom::Start(from)).unwrap();
        let mut s = String::new();
        let _ = f.read_to_string(&mut s);
        s
    };
    let up = wait_until(Duration::from_secs(60), || {
        let log = fresh();
        log.contains("DHCPv4 listening") && log.contains("DHCPv6 server listening")
    });
    assert!(up, "sixboot did not come up:\n{}", fresh());
    pid
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// perfdhcp under `timeout`; stopped with SIGTERM (which `timeout` passes on) if the test
/// ends before it does.
struct Perf(Child);

impl Drop for Perf {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &self.0.id().to_string()])
                .status();
        }
        let _ = self.0.wait();
    }
}

/// perfdhcp in `ns`, bounded by its own test period and by `timeout`.
fn perfdhcp(ns: &str, args: &[&str], out: &Path) -> Perf {
    let child = cmd_in(ns, "timeout")
        .arg((LOAD_SECS + 30).to_string())
        .arg("perfdhcp")
        .args(["-r", PERF_RATE, "-R", PERF_CLIENTS, "-p"])
        .arg(LOAD_SECS.to_string())
        .args(["-W", "500000"])
        .args(args)
        .stdout(std::fs::File::create(out).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .expect("start perfdhcp (scripts/deps.sh test installs kea-admin)");
    Perf(child)
}

/// What one of our own streams saw: leases granted to it, and failures that can only mean
/// a lost or doubled lease (a NAK or another address on renewal).
#[derive(Default)]
struct Seen {
    grants: Vec<Grant>,
    wrong: Vec<String>,
}

/// Shared between the test and its client streams.
struct Load {
    stop: AtomicBool,
    acks4: AtomicUsize,
    acks6: AtomicUsize,
}

fn own_mac(i: usize) -> [u8; 6] {
    [0x52, 0x54, 0xc4, 0, (i >> 8) as u8, i as u8]
}

fn own_duid(i: usize) -> Vec<u8> {
    // DUID-LL, Ethernet.
    vec![0, 3, 0, 1, 0x52, 0x54, 0xc6, 0, (i >> 8) as u8, i as u8]
}

/// An INIT-REBOOT REQUEST for `addr` from `mac`: what a client with a lease sends after a
/// reboot. The server must ACK it with that address, or the lease was lost.
fn rerequest(s: &std::net::UdpSocket, mac: [u8; 6], addr: Ipv4Addr) -> Result<(), String> {
    let pkt = d4::packet(
        mac,
        true,
        Ipv4Addr::UNSPECIFIED,
        &d4::firmware_opts(3, 0, &[tlv(50, &addr.octets())]),
    );
    match d4::ask(s, d4::BCAST, &pkt, 3).map(|r| d4::decode(&r)) {
        Some((5, a, _)) if a == addr => Ok(()),
        Some((mt, a, _)) => Err(format!(
            "{mac:02x?} asked again for {addr}: message type {mt}, {a}"
        )),
        None => Err(format!("{mac:02x?} asked again for {addr}: no answer")),
    }
}

fn renew6(ns: &str, duid: &[u8], iaid: u32, addr: Ipv6Addr, server: &[u8]) -> Result<(), String> {
    let m = follow_up(
        v6::MessageType::Renew,
        duid,
        iaid,
        addr,
        Some(server.to_vec()),
        ipxe_extras(),
    );
    match try_exchange(ns, &m, 3) {
        Some(r) => match d6::try_address(&r) {
            Some((a, valid)) if a == addr && valid > 0 => Ok(()),
            other => Err(format!("renew of {addr}: got {other:?} in {r}")),
        },
        None => Err(format!("renew of {addr}: no answer")),
    }
}

/// Steps a client stream takes at most; paced, they span the load.
const STREAM_STEPS: usize = 400;
const STREAM_PACE: Duration = Duration::from_millis(150);

/// One of our own client streams: each step is a new client's first exchange (`first`,
/// given the client's number) or, every other step and once `OWN_CLIENTS` exist, an
/// earlier client asking for its lease again (`again`). A wrong answer to `again` means a
/// lost or doubled lease; no answer means the server is down.
fn stream(
    load: &Load,
    acks: &AtomicUsize,
    mut first: impl FnMut(usize) -> Option<(Holder, IpAddr)>,
    mut again: impl FnMut(&Holder, IpAddr) -> Result<(), String>,
) -> Seen {
    let mut seen = Seen::default();
    let mut mine: Vec<(Holder, IpAddr)> = Vec::new();
    let mut made = 0;
    for step in 0..STREAM_STEPS {
        if load.stop.load(Ordering::SeqCst) {
            break;
        }
        let renew = !mine.is_empty() && (step % 2 == 1 || made >= OWN_CLIENTS);
        let got = if renew {
            let (holder, addr) = mine[fastrand::usize(..mine.len())].clone();
            match again(&holder, addr) {
                Ok(()) => Some((holder, addr)),
                Err(e) if e.ends_with("no answer") => None,
                Err(e) => {
                    seen.wrong.push(e);
                    None
                }
            }
        } else if made < OWN_CLIENTS {
            made += 1;
            first(made - 1).inspect(|g| mine.push(g.clone()))
        } else {
            None
        };
        if let Some((holder, addr)) = got {
            seen.grants.push(Grant {
                holder,
                addr,
                at: unix_now(),
                lifetime: LEASE_TIME as u32,
            });
            acks.fetch_add(1, Ordering::SeqCst);
        }
        std::thread::sleep(STREAM_PACE);
    }
    seen
}

/// DHCPv4: DORAs from new clients, INIT-REBOOT REQUESTs from earlier ones.
fn stream4(ns: String, load: Arc<Load>) -> Seen {
    let s = client_socket(&ns, Ipv4Addr::UNSPECIFIED, 68);
    stream(
        &load,
        &load.acks4,
        |i| {
            let mac = own_mac(i);
            let (addr, _) = try_dora(&s, mac, 0, 2).ok()?;
            Some((Holder::Mac(mac.to_vec()), addr.into()))
        },
        |holder, addr| match (holder, addr) {
            (Holder::Mac(mac), IpAddr::V4(a)) => rerequest(&s, mac[..].try_into().unwrap(), a),
            other => unreachable!("not a DHCPv4 lease: {other:?}"),
        },
    )
}

/// DHCPv6: Solicit/Request from new clients, Renews from earlier ones.
fn stream6(ns: String, load: Arc<Load>, server_duid: Arc<Mutex<Vec<u8>>>) -> Seen {
    stream(
        &load,
        &load.acks6,
        |i| {
            let duid = own_duid(i);
            let reply = try_lease(&ns, &duid, 1, ipxe_extras(), 2).ok()?;
            *server_duid.lock().unwrap() = d6::server_id(&reply);
            Some((Holder::Duid(duid, 1), d6::address(&reply).into()))
        },
        |holder, addr| match (holder, addr) {
            (Holder::Duid(duid, iaid), IpAddr::V6(a)) => {
                renew6(&ns, duid, *iaid, a, &server_duid.lock().unwrap())
            }
            other => unreachable!("not a DHCPv6 lease: {other:?}"),
        },
    )
}

/// One row of the store: who holds the address, in which state, until when.
#[derive(Debug)]
struct Row {
    holder: Holder,
    state: i64,
    expires: u64,
}

const BOUND: i64 = 1;

/// Every lease in the store, read through a read-only connection beside the running server.
fn store(state_dir: &Path) -> HashMap<IpAddr, Row> {
    let db = Connection::open_with_flags(
        state_dir.join("leases.sqlite"),
        OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("open the lease store read-only");
    let mut rows = HashMap::new();
    let mut q = db
        .prepare("SELECT addr, mac, state, expires FROM leases4")
        .unwrap();
    let v4 = q
        .query_map([], |r| {
            Ok((
                r.get::<_, u32>(0)?,
                r.get::<_, Vec<u8>>(1)?,
                r.get(2)?,
                r.get::<_, i64>(3)?,
            ))
        })
        .unwrap();
    for row in v4 {
        let (addr, mac, state, expires) = row.unwrap();
        let row = Row {
            holder: Holder::Mac(mac),
            state,
            expires: expires as u64,
        };
        rows.insert(IpAddr::V4(addr.into()), row);
    }
    let mut q = db
        .prepare("SELECT addr, duid, iaid, state, expires FROM leases6")
        .unwrap();
    let v6 = q
        .query_map([], |r| {
            Ok((
                r.get::<_, Vec<u8>>(0)?,
                r.get::<_, Vec<u8>>(1)?,
                r.get::<_, u32>(2)?,
                r.get(3)?,
                r.get::<_, i64>(4)?,
            ))
        })
        .unwrap();
    for row in v6 {
        let (addr, duid, iaid, state, expires) = row.unwrap();
        let addr: [u8; 16] = addr.try_into().expect("16-byte v6 address");
        let row = Row {
            holder: Holder::Duid(duid, iaid),
            state,
            expires: expires as u64,
        };
        rows.insert(IpAddr::V6(addr.into()), row);
    }
    rows
}

/// What the grants and the store say together.
struct Verdict {
    /// The latest expiry granted to each (client, address).
    latest: BTreeMap<(Holder, IpAddr), u64>,
    /// Addresses granted to two clients.
    doubled_on_wire: Vec<(IpAddr, BTreeSet<Holder>)>,
    /// Clients granted two addresses.
    moved: Vec<(Holder, BTreeSet<IpAddr>)>,
    /// Grants the store does not hold: no row, not Bound, or expiring earlier.
    lost: Vec<String>,
    /// Granted addresses the store gives (Offered or Bound, unexpired) to someone else.
    taken: Vec<String>,
}

fn judge(grants: &[Grant], rows: &HashMap<IpAddr, Row>, now: u64) -> Verdict {
    let mut latest: BTreeMap<(Holder, IpAddr), u64> = BTreeMap::new();
    let mut holders: HashMap<IpAddr, BTreeSet<Holder>> = HashMap::new();
    let mut addrs_of: HashMap<Holder, BTreeSet<IpAddr>> = HashMap::new();
    for g in grants {
        let e = latest.entry((g.holder.clone(), g.addr)).or_default();
        *e = (*e).max(g.expires());
        holders.entry(g.addr).or_default().insert(g.holder.clone());
        addrs_of.entry(g.holder.clone()).or_default().insert(g.addr);
    }
    let mut v = Verdict {
        doubled_on_wire: holders.into_iter().filter(|(_, h)| h.len() > 1).collect(),
        moved: addrs_of.into_iter().filter(|(_, a)| a.len() > 1).collect(),
        lost: Vec::new(),
        taken: Vec::new(),
        latest: BTreeMap::new(),
    };
    // 2 s of slack on expiry: the wire timestamp is taken after the decision.
    for ((holder, addr), expires) in &latest {
        match rows.get(addr) {
            Some(r) if r.holder != *holder && r.expires > now && r.state <= BOUND => v
                .taken
                .push(format!("{addr} granted to {holder:?}, stored {r:?}")),
            Some(r) if r.holder == *holder && r.state == BOUND && r.expires + 2 >= *expires => {}
            other => v.lost.push(format!(
                "{addr} granted to {holder:?} until {expires}, stored {other:?}"
            )),
        }
    }
    v.latest = latest;
    v
}

/// After the last restart, every granted client asks for its address again and must get
/// it: an INIT-REBOOT REQUEST (v4), or a Renew from the namespace it was granted from (a
/// DHCPv6 client is also its link-layer address: ours are in `me`, perfdhcp's in `p6`).
fn ask_again(latest: &BTreeMap<(Holder, IpAddr), u64>, me: &str, p6: &str, server: &[u8]) {
    let s4 = client_socket(me, Ipv4Addr::UNSPECIFIED, 68);
    let own: BTreeSet<Holder> = (0..OWN_CLIENTS)
        .map(|i| Holder::Duid(own_duid(i), 1))
        .collect();
    for (holder, addr) in latest.keys() {
        let r = match (holder, addr) {
            (Holder::Mac(mac), IpAddr::V4(a)) => rerequest(&s4, mac[..].try_into().unwrap(), *a),
            (Holder::Duid(duid, iaid), IpAddr::V6(a)) => {
                let ns = if own.contains(holder) { me } else { p6 };
                renew6(ns, duid, *iaid, *a, server)
            }
            other => panic!("mixed-family grant {other:?}"),
        };
        r.unwrap_or_else(|e| panic!("after the last restart: {e}"));
    }
}

fn perf_summary(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let grab = |key: &str| {
        text.lines()
            .filter_map(|l| l.trim().strip_prefix(key))
            .map(|v| v.trim().to_string())
            .collect::<Vec<_>>()
            .join("/")
    };
    // Two statistics blocks: DISCOVER-OFFER then REQUEST-ACK (or SOLICIT-ADVERTISE then
    // REQUEST-REPLY).
    format!(
        "sent {} received {} (first/second exchange)",
        grab("sent packets:"),
        grab("received packets:")
    )
}

#[test]
fn kill_9_under_v4_and_v6_load_loses_no_granted_lease_and_doubles_no_address() {
    let mut lab = Lab::new("crash");
    let p4 = lab.client("p4", Some("192.168.1.2/24"), None);
    let p6 = lab.client("p6", None, None);
    let me = lab.client("me", None, None);
    let cfg = config(&lab);
    let mut capture = Capture::start(&lab.ns, lab.dir.path());
    let mut pid = started(&mut lab, &cfg);

    // perfdhcp as a relay for v4 (giaddr = its own address), with firmware options; from
    // its link-local address for v6, as iPXE does.
    let vc = hex::encode(b"PXEClient:Arch:00000:UNDI:002001");
    let (out4, out6) = (
        lab.dir.path().join("perf4.out"),
        lab.dir.path().join("perf6.out"),
    );
    let vendor = format!("60,{vc}");
    let perf4 = perfdhcp(
        &p4,
        &[
            "-4",
            "-l",
            "192.168.1.2",
            "-o",
            &vendor,
            "-o",
            "93,0000",
            "192.168.1.1",
        ],
        &out4,
    );
    let perf6 = perfdhcp(&p6, &["-6", "-l", "eth0"], &out6);
    let load = Arc::new(Load {
        stop: AtomicBool::new(false),
        acks4: AtomicUsize::new(0),
        acks6: AtomicUsize::new(0),
    });
    let server_duid = Arc::new(Mutex::new(Vec::new()));
    let streams: Vec<JoinHandle<Seen>> = vec![
        std::thread::spawn({
            let (ns, load) = (me.clone(), load.clone());
            move || stream4(ns, load)
        }),
        std::thread::spawn({
            let (ns, load, sd) = (me.clone(), load.clone(), server_duid.clone());
            move || stream6(ns, load, sd)
        }),
    ];

    let t0 = std::time::Instant::now();
    for cycle in 1..=CYCLES {
        // Spread the kills over the load, each at a random moment in its slot...
        let slot = Duration::from_secs(LOAD_SECS) / (CYCLES as u32 + 1);
        let jitter = Duration::from_millis(fastrand::u64(0..slot.as_millis() as u64 / 2));
        std::thread::sleep((slot * cycle as u32 + jitter).saturating_sub(t0.elapsed()));
        // ...and only once both streams got answers from this incarnation.
        let (a4, a6) = (
            load.acks4.load(Ordering::SeqCst),
            load.acks6.load(Ordering::SeqCst),
        );
        let answered = wait_until(Duration::from_secs(60), || {
            load.acks4.load(Ordering::SeqCst) > a4 && load.acks6.load(Ordering::SeqCst) > a6
        });
        assert!(answered, "no DHCPv4 and DHCPv6 grants since the last start");
        lab.kill9(pid);
        pid = started(&mut lab, &cfg);
    }
    load.stop.store(true, Ordering::SeqCst);
    let seen: Vec<Seen> = streams.into_iter().map(|t| t.join().unwrap()).collect();
    for mut p in [perf4, perf6] {
        let _ = p.0.wait();
    }

    // One more crash with the load over: what was granted after the last start must
    // survive it too.
    lab.kill9(pid);
    started(&mut lab, &cfg);
    let dropped = capture.stop();

    let mut grants = common::capture::grants(&capture.file);
    let wire = grants.len();
    let wrong: Vec<&String> = seen.iter().flat_map(|s| &s.wrong).collect();
    grants.extend(seen.iter().flat_map(|s| s.grants.iter().cloned()));

    let rows = store(&lab.dir.path().join("state"));
    let Verdict {
        latest,
        doubled_on_wire,
        moved,
        lost,
        taken,
    } = judge(&grants, &rows, unix_now());
    let v4 = latest.keys().filter(|(_, a)| a.is_ipv4()).count();
    let v6 = latest.len() - v4;
    eprintln!(
        "crash: {} SIGKILL cycles ({CYCLES} under load); leases granted: {v4} v4, {v6} v6 \
         ({wire} grants on the wire, capture dropped {dropped}); doubled on the wire {}, \
         taken in the store {}, lost {}, moved {}, wrong answers {}; \
         perfdhcp v4 {}; perfdhcp v6 {}",
        CYCLES + 1,
        doubled_on_wire.len(),
        taken.len(),
        lost.len(),
        moved.len(),
        wrong.len(),
        perf_summary(&out4),
        perf_summary(&out6),
    );
    assert!(v4 >= 10 && v6 >= 10, "too little load: {v4} v4, {v6} v6");
    assert!(
        doubled_on_wire.is_empty(),
        "addresses granted to two clients: {doubled_on_wire:?}"
    );
    assert!(
        taken.is_empty(),
        "granted addresses held by another client in the store: {taken:?}"
    );
    assert!(
        lost.is_empty(),
        "granted leases missing from the store: {lost:?}"
    );
    assert!(moved.is_empty(), "clients granted two addresses: {moved:?}");
    assert!(wrong.is_empty(), "wrong answers during the load: {wrong:?}");

    // From fresh requests: every client gets its address back...
    ask_again(&latest, &me, &p6, &server_duid.lock().unwrap());
    // ...and newcomers get none of them.
    let granted: BTreeSet<IpAddr> = latest.keys().map(|(_, a)| *a).collect();
    let s4 = client_socket(&me, Ipv4Addr::UNSPECIFIED, 68);
    let mut fresh = BTreeSet::new();
    for i in 0..NEWCOMERS {
        let a4 = d4::dora(&s4, [0x52, 0x54, 0xee, 0, 0, i as u8], 0).0;
        let duid = vec![0, 3, 0, 1, 0x52, 0x54, 0xee, 0, 0, i as u8];
        let a6 = d6::address(&d6::lease(&me, &duid, 1, ipxe_extras()));
        for a in [IpAddr::V4(a4), IpAddr::V6(a6)] {
            assert!(
                !granted.contains(&a),
                "newcomer {i} was given {a}, already granted"
            );
            assert!(fresh.insert(a), "two newcomers were given {a}");
        }
    }
}
