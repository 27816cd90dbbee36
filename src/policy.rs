//! The one place that decides who gets what at which stage. DHCPv4, DHCPv6, HTTP and
//! `explain` ask it; no protocol re-decides.
//!
//! The seed's rule: the firmware's own PXE gets IPv4 just long enough to load iPXE;
//! iPXE (which would otherwise chainload itself forever), installers, live images and
//! every other OS client never get IPv4. Each refusal is a [`Refusal`] that logs,
//! metrics and `explain` can show.

use crate::config::{Boot, Config, Host, Menu, MenuItem, Steps};
use crate::pipeline::{Action, BURNIN_ITEM, MEMTEST_ITEM, Pipeline};
use sixboot_report::Step;
use std::borrow::Cow;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Client system architecture (DHCPv4 option 93, DHCPv6 option 61; RFC 4578, IANA).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    Bios,
    UefiIa32,
    /// Code 7 or 9: both occur in the wild for x64 UEFI.
    UefiX64,
    UefiArm32,
    UefiArm64,
    /// Code 15.
    UefiIa32Http,
    /// Code 16.
    UefiX64Http,
    /// Code 19.
    UefiArm64Http,
    Other(u16),
}

impl Arch {
    pub fn from_code(c: u16) -> Arch {
        match c {
            0 => Arch::Bios,
            6 => Arch::UefiIa32,
            7 | 9 => Arch::UefiX64,
            10 => Arch::UefiArm32,
            11 => Arch::UefiArm64,
            15 => Arch::UefiIa32Http,
            16 => Arch::UefiX64Http,
            19 => Arch::UefiArm64Http,
            c => Arch::Other(c),
        }
    }

    pub fn name(self) -> String {
        match self {
            Arch::Bios => "bios".into(),
            Arch::UefiIa32 => "uefi-ia32".into(),
            Arch::UefiX64 => "uefi-x64".into(),
            Arch::UefiArm32 => "uefi-arm32".into(),
            Arch::UefiArm64 => "uefi-arm64".into(),
            Arch::UefiIa32Http => "uefi-ia32-http".into(),
            Arch::UefiX64Http => "uefi-x64-http".into(),
            Arch::UefiArm64Http => "uefi-arm64-http".into(),
            Arch::Other(c) => format!("arch-{c}"),
        }
    }

    /// The arch a boot file is chosen for: HTTP codes boot the same EFI file as PXE.
    fn file_arch(self) -> Arch {
        match self {
            Arch::UefiIa32Http => Arch::UefiIa32,
            Arch::UefiX64Http => Arch::UefiX64,
            Arch::UefiArm64Http => Arch::UefiArm64,
            a => a,
        }
    }

    fn is_http(self) -> bool {
        matches!(
            self,
            Arch::UefiIa32Http | Arch::UefiX64Http | Arch::UefiArm64Http
        )
    }
}

/// How firmware wants its first stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `PXEClient`: a file name, fetched over TFTP.
    Pxe,
    /// `HTTPClient`: a URL, and the vendor class echoed back.
    Http,
}

/// Who is asking, as far as the boot chain is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Client {
    Firmware { method: Method, arch: Arch },
    Ipxe,
    Os,
}

impl Client {
    /// Stable label for metrics and logs.
    pub fn label(&self) -> &'static str {
        match self {
            Client::Firmware {
                method: Method::Pxe,
                ..
            } => "pxe",
            Client::Firmware {
                method: Method::Http,
                ..
            } => "http",
            Client::Ipxe => "ipxe",
            Client::Os => "os",
        }
    }
}

/// What a client said about itself, as raw option bytes (DHCPv4 60/77/93/175, or the
/// DHCPv6 equivalents). Raw, because a parsed-map decoder may have dropped options.
#[derive(Debug, Clone, Copy, Default)]
pub struct Hints<'a> {
    /// Vendor class: v4 option 60, or the data of v6 option 16 after the enterprise number.
    pub vendor_class: Option<&'a [u8]>,
    /// User class: v4 option 77 (raw or RFC 3004 length-prefixed), v6 option 15 payload.
    pub user_class: Option<&'a [u8]>,
    /// First architecture code of v4 option 93 or v6 option 61.
    pub arch: Option<u16>,
    /// v4 option 175: only iPXE sends it, even when a script changed its user class.
    pub ipxe_options: bool,
}

pub const PXE_CLIENT: &[u8] = b"PXEClient";
pub const HTTP_CLIENT: &[u8] = b"HTTPClient";
const IPXE: &[u8] = b"iPXE";

/// Whether a user-class value says iPXE: iPXE sends the bare bytes `iPXE` on v4; RFC 3004
/// clients send instances with a one-byte length, and DHCPv6 (RFC 8415 §21.15) instances
/// with a two-byte length; any instance may be `iPXE`.
pub fn user_class_is_ipxe(uc: &[u8]) -> bool {
    uc == IPXE || instances(uc, 1).any(|i| i == IPXE) || instances(uc, 2).any(|i| i == IPXE)
}

/// The length-prefixed instances of a class option, with `width`-byte big-endian lengths;
/// stops at the first instance that runs past the end.
fn instances(mut rest: &[u8], width: usize) -> impl Iterator<Item = &[u8]> {
    std::iter::from_fn(move || {
        let len = rest
            .get(..width)?
            .iter()
            .fold(0usize, |n, &b| n << 8 | b as usize);
        let (instance, tail) = rest.get(width..)?.split_at_checked(len)?;
        rest = tail;
        Some(instance)
    })
}

/// The arch code in a vendor class like `PXEClient:Arch:00007:UNDI:003000`.
fn arch_from_vendor_class(vc: &[u8]) -> Option<u16> {
    let s = std::str::from_utf8(vc).ok()?;
    let rest = s.split_once(":Arch:")?.1;
    rest.get(..5)?.parse().ok()
}

/// Sorts a client into firmware, iPXE or OS from what it sent.
pub fn classify(h: &Hints) -> Client {
    if h.ipxe_options || h.user_class.is_some_and(user_class_is_ipxe) {
        return Client::Ipxe;
    }
    let vc = h.vendor_class.unwrap_or_default();
    let method = if vc.starts_with(PXE_CLIENT) {
        Method::Pxe
    } else if vc.starts_with(HTTP_CLIENT) {
        Method::Http
    } else {
        return Client::Os;
    };
    // Without option 93, the arch in the vendor string; PXE 2.1 ROMs that send neither
    // are legacy BIOS.
    let arch = Arch::from_code(h.arch.or_else(|| arch_from_vendor_class(vc)).unwrap_or(0));
    Client::Firmware { method, arch }
}

/// Why a client gets no answer at some stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// iPXE asked for IPv4: answering would make it chainload itself forever.
    Ipxe,
    /// Not PXE or HTTP boot firmware (an OS, installer or live image): no IPv4, ever.
    NotFirmware,
    /// Firmware of an architecture with no boot file configured.
    NoBootFile(Arch),
    /// UEFI HTTP boot asked, but there is no `[http]` table.
    HttpBootDisabled,
    /// UEFI HTTP boot over IPv4 asked, but `[http] listen` has no IPv4 address.
    NoHttpV4Listener,
}

impl Refusal {
    /// Stable label for metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Ipxe => "ipxe",
            Refusal::NotFirmware => "not_firmware",
            Refusal::NoBootFile(_) => "no_boot_file_for_arch",
            Refusal::HttpBootDisabled => "http_boot_disabled",
            Refusal::NoHttpV4Listener => "no_http_v4_listener",
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Ipxe => write!(
                f,
                "iPXE gets no IPv4 (it would chainload itself forever); it continues over IPv6"
            ),
            Refusal::NotFirmware => write!(
                f,
                "not PXE/HTTP boot firmware (no PXEClient/HTTPClient vendor class): no IPv4"
            ),
            Refusal::NoBootFile(a) => write!(f, "no boot file configured for arch {}", a.name()),
            Refusal::HttpBootDisabled => write!(f, "UEFI HTTP boot needs an [http] table"),
            Refusal::NoHttpV4Listener => write!(
                f,
                "UEFI HTTP boot over IPv4 needs an IPv4 address in [http] listen"
            ),
        }
    }
}

/// Where a client fetches what it boots next. The policy decides it; DHCP writes it into
/// its packets and `explain` shows it, each from these fields, never by taking a URL apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A file in the TFTP root.
    Tftp { file: String },
    /// Over HTTP from the listener at `at`.
    Http { at: SocketAddr, fetch: Fetch },
}

/// What an HTTP [`Target`] fetches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetch {
    /// A boot file of the TFTP root under [`HTTP_BOOT_PREFIX`]: UEFI HTTP boot, which
    /// needs vendor class `HTTPClient` echoed.
    BootFile(String),
    /// iPXE's entry script at [`IPXE_SCRIPT_PATH`].
    IpxeScript,
}

impl Target {
    /// Whether the reply must echo vendor class `HTTPClient` (UEFI HTTP boot requires it).
    pub fn echoes_http_client(&self) -> bool {
        matches!(
            self,
            Target::Http {
                fetch: Fetch::BootFile(_),
                ..
            }
        )
    }

    /// The URL of this target, `tftp_server` serving TFTP files. An unspecified address
    /// (a listener on `[::]`, or `explain`, which runs off the network) is written as
    /// `unspecified`, when given.
    pub fn url(&self, tftp_server: IpAddr, unspecified: Option<&str>) -> String {
        match self {
            Target::Tftp { file } => format!("tftp://{}/{file}", host(tftp_server, unspecified)),
            Target::Http { at, fetch } => {
                let port = if at.port() == 80 {
                    String::new()
                } else {
                    format!(":{}", at.port())
                };
                let path = match fetch {
                    Fetch::BootFile(f) => format!("{HTTP_BOOT_PREFIX}{f}"),
                    Fetch::IpxeScript => IPXE_SCRIPT_PATH.to_string(),
                };
                format!("http://{}{port}{path}", host(at.ip(), unspecified))
            }
        }
    }

    /// DHCPv4's `file` field: a name in the TFTP root (siaddr says where), else the URL.
    pub fn file_field(&self, unspecified: Option<&str>) -> Cow<'_, str> {
        match self {
            Target::Tftp { file } => Cow::Borrowed(file),
            Target::Http { .. } => Cow::Owned(self.url(Ipv4Addr::UNSPECIFIED.into(), unspecified)),
        }
    }
}

/// `ip` as a URL's host (bracketed for IPv6), or `unspecified` in its place.
fn host(ip: IpAddr, unspecified: Option<&str>) -> String {
    let shown = match unspecified {
        Some(name) if ip.is_unspecified() => name.to_string(),
        _ => ip.to_string(),
    };
    match ip {
        IpAddr::V4(_) => shown,
        IpAddr::V6(_) => format!("[{shown}]"),
    }
}

/// What firmware gets from DHCPv4.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Boot4 {
    pub arch: Arch,
    pub target: Target,
}

/// HTTP path under which the TFTP root's boot files are also served, for UEFI HTTP boot.
pub const HTTP_BOOT_PREFIX: &str = "/boot/";

/// HTTP path of the iPXE script every iPXE client boots over IPv6.
pub const IPXE_SCRIPT_PATH: &str = "/boot.ipxe";

/// DHCPv6 vendor class (option 16) enterprise number of PXE and UEFI HTTP boot (Intel).
pub const PXE_ENTERPRISE: u32 = 343;

/// What a client gets from DHCPv6 besides its address and DNS. On v6 nobody is refused:
/// a client without a boot URL still gets an address (installers and OSes need one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Boot6 {
    pub client: Client,
    /// What option 59 points at, or why there is none.
    pub target: Result<Target, NoBootUrl>,
    /// This server's address on the client's link: where TFTP targets are fetched from.
    pub server: Ipv6Addr,
}

impl Boot6 {
    /// Option 59, or why there is none.
    pub fn url(&self) -> Result<String, NoBootUrl> {
        self.url_showing(None)
    }

    /// Option 59 with an unspecified server address written as `unspecified` (`explain`).
    pub fn url_showing(&self, unspecified: Option<&str>) -> Result<String, NoBootUrl> {
        let t = self.target.as_ref().map_err(|e| *e)?;
        Ok(t.url(self.server.into(), unspecified))
    }

    /// Whether option 16 must echo `HTTPClient` (UEFI HTTP boot requires it).
    pub fn echoes_http_client(&self) -> bool {
        self.target.as_ref().is_ok_and(Target::echoes_http_client)
    }
}

/// Why a DHCPv6 client gets an address but no boot URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoBootUrl {
    /// Not iPXE and not boot firmware: an OS, installer or live image.
    Os,
    /// Firmware of an architecture with no boot file configured.
    NoBootFile(Arch),
    /// iPXE or UEFI HTTP boot asked, but there is no `[http]` table.
    NoHttp,
    /// iPXE or UEFI HTTP boot asked, but `[http] listen` has no IPv6 address.
    NoHttpV6Listener,
}

impl NoBootUrl {
    /// Stable label for metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            NoBootUrl::Os => "os",
            NoBootUrl::NoBootFile(_) => "no_boot_file_for_arch",
            NoBootUrl::NoHttp => "no_http",
            NoBootUrl::NoHttpV6Listener => "no_http_v6_listener",
        }
    }
}

/// The platform an iPXE script runs on: iPXE's own `${platform}` setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Platform {
    /// Legacy BIOS iPXE (`undionly.kpxe`, NIC ROMs).
    Pcbios,
    /// UEFI iPXE (`snponly.efi`, `ipxe.efi`).
    Efi,
    /// Anything else, or iPXE did not say: only Linux kernels are offered.
    Unknown,
}

impl Platform {
    /// Reads iPXE's `${platform}` value.
    pub fn from_ipxe(s: &str) -> Platform {
        match s {
            "pcbios" => Platform::Pcbios,
            "efi" => Platform::Efi,
            _ => Platform::Unknown,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Platform::Pcbios => "pcbios",
            Platform::Efi => "efi",
            Platform::Unknown => "unknown",
        }
    }
}

impl fmt::Display for NoBootUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NoBootUrl::Os => write!(f, "not iPXE or boot firmware: address and DNS only"),
            NoBootUrl::NoBootFile(a) => write!(f, "no boot file configured for arch {}", a.name()),
            NoBootUrl::NoHttp => write!(f, "booting over HTTP needs an [http] table"),
            NoBootUrl::NoHttpV6Listener => {
                write!(
                    f,
                    "booting over HTTP on IPv6 needs an IPv6 address in [http] listen"
                )
            }
        }
    }
}

/// How one menu item boots on one platform. Paths are relative to `[http] root`.
/// Serialized as it is into the per-machine script template.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Launch<'a> {
    pub id: &'a str,
    pub title: &'a str,
    /// What iPXE loads with `kernel`: the platform's variant, else the Linux kernel.
    pub kernel: &'a str,
    /// Only with a Linux kernel.
    pub initrd: Option<&'a str>,
    pub args: Option<&'a str>,
}

/// What iPXE gets at the HTTP stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IpxeBoot<'a> {
    /// The menu: the items this platform can run, in config order.
    Menu {
        items: Vec<Launch<'a>>,
        /// An item id, `local` or `shell`: what the menu boots when it times out.
        default: &'a str,
        /// Seconds; 0 waits for a choice forever (iPXE's meaning of 0).
        timeout: u32,
    },
    /// Straight to one item, no menu (a `[[host]]` pin).
    Item(Launch<'a>),
    /// Straight to the local disk, no menu (a `[[host]]` pin to `local`).
    Local,
    /// Off: a machine whose pipeline ended at `poweroff` and was powered on again.
    Poweroff,
}

/// The HTTP-stage decision with why it was taken, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpxeDecision<'a> {
    pub boot: IpxeBoot<'a>,
    pub why: &'static str,
    /// The run the burn-in item gets when this script boots it: the pipeline's step, or
    /// a `burnin` when chosen from the menu or pinned.
    pub step: Option<StepRun>,
}

/// One run of a reporting step: what the image gets on its kernel command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepRun {
    pub step: Step,
    pub duration_s: u32,
    pub read_bytes: u64,
    pub self_test: bool,
}

/// What the quick `inventory` step reads from each disk at most.
const INVENTORY_READ_BYTES: u64 = 64 << 20;

/// The kernel arguments a step run sets; an item's own are dropped in their favour.
const RUN_KEYS: [&str; 4] = [
    "sixboot.step=",
    "sixboot.duration=",
    "sixboot.read_bytes=",
    "sixboot.self_test=",
];

impl StepRun {
    /// The burn-in item's arguments for this run: its own, less any a run sets, then
    /// the run's.
    pub fn with_item_args(&self, item: Option<&str>) -> String {
        let own = item
            .unwrap_or("")
            .split_whitespace()
            .filter(|w| !RUN_KEYS.iter().any(|k| w.starts_with(k)));
        let mut words: Vec<String> = own.map(str::to_string).collect();
        words.push(self.kernel_args());
        words.join(" ")
    }

    /// The image's kernel arguments for this run (the contract with the agent).
    pub fn kernel_args(&self) -> String {
        format!(
            "sixboot.step={} sixboot.duration={} sixboot.read_bytes={} sixboot.self_test={}",
            self.step.as_str(),
            self.duration_s,
            self.read_bytes,
            u8::from(self.self_test)
        )
    }
}

impl IpxeDecision<'_> {
    /// Whether the script can boot item `id`, straight away or from its menu.
    pub fn can_boot(&self, id: &str) -> bool {
        match &self.boot {
            IpxeBoot::Menu { items, .. } => items.iter().any(|l| l.id == id),
            IpxeBoot::Item(l) => l.id == id,
            IpxeBoot::Local | IpxeBoot::Poweroff => false,
        }
    }
}

/// The decisions, built once from the config.
#[derive(Debug, Clone)]
pub struct Policy {
    boot: Boot,
    http_listen: Option<Vec<SocketAddr>>,
    menu: Menu,
    hosts: Vec<Host>,
    steps: Steps,
}

impl Policy {
    pub fn new(cfg: &Config) -> Policy {
        Policy {
            boot: cfg.boot.clone(),
            http_listen: cfg.http.as_ref().map(|h| h.listen.clone()),
            menu: cfg.menu.clone(),
            hosts: cfg.hosts.clone(),
            steps: cfg.steps.clone(),
        }
    }

    /// How a reporting step runs, from `[steps]`.
    pub fn step_run(&self, step: Step) -> StepRun {
        let s = &self.steps;
        match step {
            Step::Inventory => StepRun {
                step,
                duration_s: s.inventory_seconds,
                read_bytes: s.read_bytes.min(INVENTORY_READ_BYTES),
                self_test: false,
            },
            Step::Burnin => StepRun {
                step,
                duration_s: s.burnin_seconds,
                read_bytes: s.read_bytes,
                self_test: s.self_test,
            },
        }
    }

    /// The pipeline a machine never seen before starts with.
    pub fn default_pipeline(&self) -> Option<Pipeline> {
        self.steps.pipeline.clone()
    }

    fn item_ids(&self) -> Vec<&str> {
        self.menu.items.iter().map(|i| i.id.as_str()).collect()
    }

    /// A pipeline from action names, checked against this menu (see [`Pipeline::parse`]).
    pub fn pipeline<S: AsRef<str>>(&self, names: &[S]) -> Result<Pipeline, String> {
        Pipeline::parse(names, &self.item_ids())
    }

    /// The menu item ids other than the steps' own, for the dashboard's picker.
    pub fn other_items(&self) -> Vec<&str> {
        self.item_ids()
            .into_iter()
            .filter(|i| !crate::pipeline::STEPS.contains(i))
            .collect()
    }

    /// How `item` boots on `platform`, or `None` when it has no variant there (hidden).
    /// A platform's own variant wins over a Linux kernel.
    pub fn launch<'a>(&self, item: &'a MenuItem, platform: Platform) -> Option<Launch<'a>> {
        let variant = match platform {
            Platform::Pcbios => item.bios.as_deref(),
            Platform::Efi => item.efi.as_deref(),
            Platform::Unknown => None,
        };
        let (kernel, initrd) = match variant {
            Some(v) => (v, None),
            None => (item.kernel.as_deref()?, item.initrd.as_deref()),
        };
        Some(Launch {
            id: &item.id,
            title: &item.title,
            kernel,
            initrd,
            args: item.args.as_deref(),
        })
    }

    /// The HTTP stage: what iPXE on `platform` gets, for the machine `mac` if known.
    /// `next` is the current action of the machine's pipeline (set through the API or by
    /// `[steps] pipeline`); without one, a `[[host]] boot` pin stands in. A pin skips the
    /// menu; a pin to an item this platform cannot run falls back to the menu (and says
    /// so) rather than leaving the machine stuck.
    pub fn ipxe<'a>(
        &'a self,
        mac: Option<[u8; 6]>,
        platform: Platform,
        next: Option<&Action>,
    ) -> IpxeDecision<'a> {
        let by_api = next.is_some();
        // A host pin names a menu item (or `local`, `menu`), never a step.
        let pin = next.cloned().or_else(|| {
            mac.and_then(|m| self.host_boot(m)).map(|b| match b {
                "local" => Action::Local,
                "menu" => Action::Menu,
                id => Action::Item(id.to_string()),
            })
        });
        let pinned = |why, boot, step| IpxeDecision { boot, why, step };
        let item = |id: &str| {
            self.menu
                .items
                .iter()
                .find(|i| i.id == id)
                .and_then(|i| self.launch(i, platform))
        };
        match &pin {
            Some(Action::Local) if by_api => {
                return pinned("next action: local disk", IpxeBoot::Local, None);
            }
            Some(Action::Local) => {
                return pinned("host pinned to local disk", IpxeBoot::Local, None);
            }
            Some(Action::Poweroff) => {
                return pinned("next action: power off", IpxeBoot::Poweroff, None);
            }
            Some(Action::Menu) | None => {}
            Some(Action::Run(step)) => {
                if let Some(l) = item(BURNIN_ITEM) {
                    let run = Some(self.step_run(*step));
                    return pinned("next action: a step", IpxeBoot::Item(l), run);
                }
            }
            Some(Action::Memtest) => {
                if let Some(l) = item(MEMTEST_ITEM) {
                    return pinned("next action: a step", IpxeBoot::Item(l), None);
                }
            }
            Some(Action::Item(id)) => {
                let run = (id == BURNIN_ITEM).then(|| self.step_run(Step::Burnin));
                match item(id) {
                    Some(l) if by_api => {
                        return pinned("next action: an item", IpxeBoot::Item(l), run);
                    }
                    Some(l) => return pinned("host pinned to an item", IpxeBoot::Item(l), run),
                    None => {}
                }
            }
        }
        let items: Vec<Launch> = self
            .menu
            .items
            .iter()
            .filter_map(|i| self.launch(i, platform))
            .collect();
        // A default this platform cannot run, or none at all, times out to the local disk:
        // a machine nobody chose for is left as its own disk would boot it.
        let default = match self.menu.default.as_deref() {
            Some(d @ ("local" | "shell")) => d,
            Some(d) if items.iter().any(|l| l.id == d) => d,
            _ => "local",
        };
        let why = match pin {
            Some(Action::Menu) | None => "menu",
            Some(_) if by_api => "next action: an item with no variant for this platform: menu",
            Some(_) => "host pinned to an item with no variant for this platform: menu",
        };
        IpxeDecision {
            boot: IpxeBoot::Menu {
                items,
                default,
                timeout: self.menu.timeout,
            },
            why,
            step: Some(self.step_run(Step::Burnin)),
        }
    }

    /// The `[[host]] boot` pin of `mac`: its next action until the API sets one.
    pub fn host_boot(&self, mac: [u8; 6]) -> Option<&str> {
        self.hosts
            .iter()
            .find(|h| h.mac == mac)
            .and_then(|h| h.boot.as_deref())
    }

    /// The files (relative to `[http] root`) whose fetch means menu item `id` is booting:
    /// every variant of it.
    pub fn files_of(&self, id: &str) -> Vec<String> {
        self.menu
            .items
            .iter()
            .filter(|i| i.id == id)
            .flat_map(|i| [&i.bios, &i.efi, &i.kernel])
            .flatten()
            .cloned()
            .collect()
    }

    /// The boot file for an arch, if one is configured.
    pub fn boot_file(&self, arch: Arch) -> Option<&str> {
        match arch.file_arch() {
            Arch::Bios => self.boot.bios.as_deref(),
            Arch::UefiIa32 => self.boot.uefi_ia32.as_deref(),
            Arch::UefiX64 => self.boot.uefi_x64.as_deref(),
            Arch::UefiArm64 => self.boot.uefi_arm64.as_deref(),
            _ => None,
        }
    }

    /// The `[http]` listener for URLs handed to a client that reached us on `server`:
    /// the first of its address family, with `server` standing in for an unspecified
    /// listen address. The one place a boot URL's host and port are chosen.
    fn http_at(&self, server: IpAddr) -> Result<SocketAddr, NoListener> {
        let listen = self.http_listen.as_ref().ok_or(NoListener::NoHttp)?;
        let l = listen
            .iter()
            .find(|a| a.is_ipv4() == server.is_ipv4())
            .ok_or(NoListener::NotInFamily)?;
        let host = if l.ip().is_unspecified() {
            server
        } else {
            l.ip()
        };
        Ok(SocketAddr::new(host, l.port()))
    }

    /// DHCPv4: firmware only, a file by arch. `server` is the address the client reached
    /// us on, used when an HTTP listener is the unspecified address.
    pub fn dhcp4(&self, h: &Hints, server: Ipv4Addr) -> Result<Boot4, Refusal> {
        let (method, arch) = match classify(h) {
            Client::Ipxe => return Err(Refusal::Ipxe),
            Client::Os => return Err(Refusal::NotFirmware),
            Client::Firmware { method, arch } => (method, arch),
        };
        let file = self.boot_file(arch).ok_or(Refusal::NoBootFile(arch))?;
        let target = if method == Method::Pxe && !arch.is_http() {
            Target::Tftp { file: file.into() }
        } else {
            let at = self.http_at(server.into()).map_err(|e| match e {
                NoListener::NoHttp => Refusal::HttpBootDisabled,
                NoListener::NotInFamily => Refusal::NoHttpV4Listener,
            })?;
            Target::Http {
                at,
                fetch: Fetch::BootFile(file.into()),
            }
        };
        Ok(Boot4 { arch, target })
    }

    /// DHCPv6: option 59 by client class. iPXE is served here (unlike on v4): its script
    /// over HTTP. `server` is this server's address on the client's link, used for TFTP
    /// URLs and when the HTTP listener is the unspecified address.
    pub fn dhcp6(&self, h: &Hints, server: Ipv6Addr) -> Boot6 {
        let client = classify(h);
        let http = |fetch: Fetch| -> Result<Target, NoBootUrl> {
            let at = self.http_at(server.into()).map_err(|e| match e {
                NoListener::NoHttp => NoBootUrl::NoHttp,
                NoListener::NotInFamily => NoBootUrl::NoHttpV6Listener,
            })?;
            Ok(Target::Http { at, fetch })
        };
        let target = match client {
            Client::Ipxe => http(Fetch::IpxeScript),
            Client::Os => Err(NoBootUrl::Os),
            Client::Firmware { method, arch } => match self.boot_file(arch) {
                None => Err(NoBootUrl::NoBootFile(arch)),
                Some(f) if method == Method::Http || arch.is_http() => {
                    http(Fetch::BootFile(f.into()))
                }
                Some(f) => Ok(Target::Tftp { file: f.into() }),
            },
        };
        Boot6 {
            client,
            target,
            server,
        }
    }
}

/// Why [`Policy::http_at`] has no listener to offer.
enum NoListener {
    /// There is no `[http]` table.
    NoHttp,
    /// `[http] listen` has no address of the client's family.
    NotInFamily,
}

/// Builds a policy without a whole config, for other modules' unit tests.
#[cfg(test)]
pub(crate) mod tests_support {
    use super::*;
    pub fn policy(boot: Boot, http: Option<&str>) -> Policy {
        Policy {
            boot,
            http_listen: http.map(|h| vec![h.parse().unwrap()]),
            menu: Menu::default(),
            hosts: Vec::new(),
            steps: Steps::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn policy(http: Option<&str>) -> Policy {
        Policy {
            boot: Boot {
                bios: Some("undionly.kpxe".into()),
                uefi_x64: Some("snponly.efi".into()),
                ..Boot::default()
            },
            http_listen: http.map(|h| vec![h.parse().unwrap()]),
            menu: Menu::default(),
            hosts: Vec::new(),
            steps: Steps::default(),
        }
    }

    fn hints<'a>(vc: &'a [u8], uc: Option<&'a [u8]>, arch: Option<u16>) -> Hints<'a> {
        Hints {
            vendor_class: Some(vc),
            user_class: uc,
            arch,
            ipxe_options: false,
        }
    }

    const SERVER: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 1);

    #[test]
    fn firmware_gets_its_file_by_arch() {
        let p = policy(None);
        let b = p
            .dhcp4(
                &hints(b"PXEClient:Arch:00000:UNDI:002001", None, Some(0)),
                SERVER,
            )
            .unwrap();
        assert_eq!(
            (b.target.file_field(None), b.target.echoes_http_client()),
            ("undionly.kpxe".into(), false)
        );
        for code in [7, 9] {
            let b = p
                .dhcp4(
                    &hints(b"PXEClient:Arch:00007:UNDI:003000", None, Some(code)),
                    SERVER,
                )
                .unwrap();
            assert_eq!(b.target.file_field(None), "snponly.efi");
        }
        // Arch from the vendor string when option 93 is missing.
        let b = p
            .dhcp4(
                &hints(b"PXEClient:Arch:00007:UNDI:003000", None, None),
                SERVER,
            )
            .unwrap();
        assert_eq!(b.arch, Arch::UefiX64);
    }

    #[test]
    fn ipxe_and_os_clients_are_refused() {
        let p = policy(None);
        let vc = b"PXEClient:Arch:00000:UNDI:002001";
        assert_eq!(
            p.dhcp4(&hints(vc, Some(b"iPXE"), Some(0)), SERVER),
            Err(Refusal::Ipxe)
        );
        assert_eq!(
            p.dhcp4(&hints(vc, Some(b"\x04iPXE"), Some(0)), SERVER),
            Err(Refusal::Ipxe)
        );
        assert_eq!(
            p.dhcp4(&hints(vc, Some(b"\x03abc\x04iPXE"), Some(0)), SERVER),
            Err(Refusal::Ipxe)
        );
        let opt175 = Hints {
            ipxe_options: true,
            ..hints(vc, None, Some(0))
        };
        assert_eq!(p.dhcp4(&opt175, SERVER), Err(Refusal::Ipxe));
        assert_eq!(
            p.dhcp4(&Hints::default(), SERVER),
            Err(Refusal::NotFirmware)
        );
        assert_eq!(
            p.dhcp4(&hints(b"MSFT 5.0", None, None), SERVER),
            Err(Refusal::NotFirmware)
        );
        // A user class that merely contains the letters is not iPXE.
        assert!(!user_class_is_ipxe(b"\x05iPXEx"));
        assert!(!user_class_is_ipxe(b"\x09iPXE"));
    }

    #[test]
    fn arch_without_file_is_refused_with_the_arch() {
        let p = policy(None);
        let r = p.dhcp4(
            &hints(b"PXEClient:Arch:00011:UNDI:003000", None, Some(11)),
            SERVER,
        );
        assert_eq!(r, Err(Refusal::NoBootFile(Arch::UefiArm64)));
    }

    const SERVER6: Ipv6Addr = Ipv6Addr::new(0xfd00, 1, 0, 0, 0, 0, 0, 1);

    #[test]
    fn dhcp6_urls_by_client_class() {
        let p = policy(Some("[fd00:1::1]:8080"));
        // iPXE's DHCPv6 user class: one instance with a two-byte length.
        let ipxe = hints(
            b"PXEClient:Arch:00007:UNDI:003010",
            Some(b"\0\x04iPXE"),
            None,
        );
        let b = p.dhcp6(&ipxe, SERVER6);
        assert_eq!(b.client, Client::Ipxe);
        assert_eq!(b.url().as_deref(), Ok("http://[fd00:1::1]:8080/boot.ipxe"));
        assert!(!b.echoes_http_client());
        let pxe = hints(b"PXEClient:Arch:00007:UNDI:003016", None, Some(7));
        let b = p.dhcp6(&pxe, SERVER6);
        assert_eq!(b.url().as_deref(), Ok("tftp://[fd00:1::1]/snponly.efi"));
        let http = hints(b"HTTPClient:Arch:00016:UNDI:003000", None, Some(16));
        let b = p.dhcp6(&http, SERVER6);
        assert_eq!(
            b.url().as_deref(),
            Ok("http://[fd00:1::1]:8080/boot/snponly.efi")
        );
        assert!(b.echoes_http_client());
        let b = p.dhcp6(&Hints::default(), SERVER6);
        assert_eq!((b.client, b.url()), (Client::Os, Err(NoBootUrl::Os)));
        let arm = hints(b"PXEClient:Arch:00011:UNDI:003000", None, None);
        assert_eq!(
            p.dhcp6(&arm, SERVER6).url(),
            Err(NoBootUrl::NoBootFile(Arch::UefiArm64))
        );
    }

    #[test]
    fn dhcp6_http_urls_need_a_v6_listener() {
        let ipxe = hints(b"", Some(b"iPXE"), None);
        assert_eq!(
            policy(None).dhcp6(&ipxe, SERVER6).url(),
            Err(NoBootUrl::NoHttp)
        );
        assert_eq!(
            policy(Some("0.0.0.0:8080")).dhcp6(&ipxe, SERVER6).url(),
            Err(NoBootUrl::NoHttpV6Listener)
        );
        assert_eq!(
            policy(Some("[::]:80"))
                .dhcp6(&ipxe, SERVER6)
                .url()
                .as_deref(),
            Ok("http://[fd00:1::1]/boot.ipxe")
        );
    }

    #[test]
    fn http_boot_gets_a_url_and_the_echo_only_with_http() {
        let h = hints(b"HTTPClient:Arch:00016:UNDI:003001", None, Some(16));
        assert_eq!(
            policy(None).dhcp4(&h, SERVER),
            Err(Refusal::HttpBootDisabled)
        );
        assert_eq!(
            policy(Some("[fd00:1::1]:8080")).dhcp4(&h, SERVER),
            Err(Refusal::NoHttpV4Listener)
        );
        let b = policy(Some("0.0.0.0:8080")).dhcp4(&h, SERVER).unwrap();
        assert_eq!(
            b.target.file_field(None),
            "http://192.168.1.1:8080/boot/snponly.efi"
        );
        assert!(b.target.echoes_http_client());
        // explain shows an unspecified listener by the interface's name.
        let b = policy(Some("0.0.0.0:80"))
            .dhcp4(&h, Ipv4Addr::UNSPECIFIED)
            .unwrap();
        assert_eq!(
            b.target.file_field(Some("br0's address")),
            "http://br0's address/boot/snponly.efi"
        );
    }

    fn menu_policy(default: Option<&str>, hosts: Vec<Host>) -> Policy {
        let item =
            |id: &str, bios: Option<&str>, efi: Option<&str>, kernel: Option<&str>| MenuItem {
                id: id.into(),
                title: id.into(),
                bios: bios.map(Into::into),
                efi: efi.map(Into::into),
                kernel: kernel.map(Into::into),
                initrd: kernel.map(|_| "initrd.img".into()),
                args: None,
            };
        Policy {
            boot: Boot::default(),
            http_listen: None,
            menu: Menu {
                default: default.map(Into::into),
                timeout: 5,
                items: vec![
                    item("memtest", Some("mt.bin"), Some("mt.efi"), None),
                    item("biosonly", Some("b.bin"), None, None),
                    item("linux", Some("l.bin"), None, Some("vmlinuz")),
                ],
            },
            hosts,
            steps: Steps::default(),
        }
    }

    fn ids<'a>(d: &IpxeDecision<'a>) -> Vec<&'a str> {
        match &d.boot {
            IpxeBoot::Menu { items, .. } => items.iter().map(|l| l.id).collect(),
            other => panic!("expected a menu, got {other:?}"),
        }
    }

    const MAC: [u8; 6] = [0x52, 0x54, 0, 0x12, 0x34, 0x56];

    #[test]
    fn menu_items_appear_only_where_the_platform_can_run_them() {
        let p = menu_policy(Some("memtest"), vec![]);
        assert_eq!(
            ids(&p.ipxe(None, Platform::Pcbios, None)),
            ["memtest", "biosonly", "linux"]
        );
        assert_eq!(
            ids(&p.ipxe(None, Platform::Efi, None)),
            ["memtest", "linux"]
        );
        assert_eq!(ids(&p.ipxe(None, Platform::Unknown, None)), ["linux"]);
        // The platform's own variant wins over the Linux kernel; the kernel brings its initrd.
        let IpxeBoot::Menu { items, .. } = p.ipxe(None, Platform::Pcbios, None).boot else {
            unreachable!()
        };
        assert_eq!((items[2].kernel, items[2].initrd), ("l.bin", None));
        let IpxeBoot::Menu { items, .. } = p.ipxe(None, Platform::Efi, None).boot else {
            unreachable!()
        };
        assert_eq!(
            (items[1].kernel, items[1].initrd),
            ("vmlinuz", Some("initrd.img"))
        );
    }

    #[test]
    fn a_default_the_platform_cannot_run_times_out_to_the_local_disk() {
        let default = |p: &Policy, pl| match p.ipxe(None, pl, None).boot {
            IpxeBoot::Menu { default, .. } => default.to_string(),
            other => panic!("{other:?}"),
        };
        let p = menu_policy(Some("biosonly"), vec![]);
        assert_eq!(default(&p, Platform::Pcbios), "biosonly");
        assert_eq!(default(&p, Platform::Efi), "local");
        assert_eq!(default(&menu_policy(None, vec![]), Platform::Efi), "local");
        assert_eq!(
            default(&menu_policy(Some("shell"), vec![]), Platform::Efi),
            "shell"
        );
    }

    #[test]
    fn host_pins_skip_the_menu_where_the_platform_allows() {
        let host = |boot: &str| Host {
            mac: MAC,
            boot: Some(boot.into()),
        };
        let p = menu_policy(None, vec![host("memtest")]);
        let d = p.ipxe(Some(MAC), Platform::Efi, None);
        assert!(
            matches!(
                d.boot,
                IpxeBoot::Item(Launch {
                    kernel: "mt.efi",
                    ..
                })
            ),
            "{d:?}"
        );
        // Another machine still gets the menu.
        assert_eq!(ids(&p.ipxe(Some([0; 6]), Platform::Efi, None)).len(), 2);
        let p = menu_policy(None, vec![host("local")]);
        assert_eq!(
            p.ipxe(Some(MAC), Platform::Pcbios, None).boot,
            IpxeBoot::Local
        );
        let p = menu_policy(None, vec![host("menu")]);
        assert_eq!(ids(&p.ipxe(Some(MAC), Platform::Pcbios, None)).len(), 3);
        // Pinned to an item with no EFI variant: the menu, with the reason.
        let p = menu_policy(None, vec![host("biosonly")]);
        let d = p.ipxe(Some(MAC), Platform::Efi, None);
        assert_eq!(ids(&d), ["memtest", "linux"]);
        assert!(d.why.contains("no variant"), "{}", d.why);
    }

    #[test]
    fn the_next_action_overrides_the_host_pin() {
        let host = Host {
            mac: MAC,
            boot: Some("local".into()),
        };
        let p = menu_policy(None, vec![host]);
        let next = |n: &str| Some(Action::from_name(n));
        assert_eq!(p.ipxe(Some(MAC), Platform::Efi, None).boot, IpxeBoot::Local);
        let d = p.ipxe(Some(MAC), Platform::Efi, next("memtest").as_ref());
        assert!(
            matches!(d.boot, IpxeBoot::Item(Launch { id: "memtest", .. })),
            "{d:?}"
        );
        assert_eq!((d.why, d.step), ("next action: a step", None));
        assert!(d.can_boot("memtest") && !d.can_boot("linux"));
        let d = p.ipxe(Some(MAC), Platform::Efi, next("menu").as_ref());
        assert_eq!(ids(&d), ["memtest", "linux"]);
        assert!(d.can_boot("linux"));
        let d = p.ipxe(Some(MAC), Platform::Efi, next("biosonly").as_ref());
        assert_eq!(
            d.why,
            "next action: an item with no variant for this platform: menu"
        );
        let d = p.ipxe(Some(MAC), Platform::Pcbios, next("poweroff").as_ref());
        assert_eq!(d.boot, IpxeBoot::Poweroff);
    }

    #[test]
    fn a_reporting_step_boots_the_burnin_item_with_its_run() {
        let mut p = menu_policy(None, vec![]);
        p.menu.items.push(MenuItem {
            id: "burnin".into(),
            kernel: Some("burnin/vmlinuz".into()),
            ..MenuItem::default()
        });
        let d = p.ipxe(
            Some(MAC),
            Platform::Efi,
            Some(&Action::Run(Step::Inventory)),
        );
        assert!(d.can_boot("burnin"), "{d:?}");
        let run = d.step.expect("a step run");
        assert_eq!(
            run.kernel_args(),
            "sixboot.step=inventory sixboot.duration=10 sixboot.read_bytes=67108864 sixboot.self_test=0"
        );
        let d = p.ipxe(Some(MAC), Platform::Efi, Some(&Action::Run(Step::Burnin)));
        assert_eq!(
            d.step.unwrap().kernel_args(),
            "sixboot.step=burnin sixboot.duration=1800 sixboot.read_bytes=1073741824 sixboot.self_test=1"
        );
        assert_eq!(p.files_of("burnin"), ["burnin/vmlinuz"]);
        assert_eq!(p.other_items(), ["biosonly", "linux"]);
        assert!(p.pipeline(&["inventory", "burnin", "poweroff"]).is_ok());
        assert!(
            p.pipeline(&["shell"])
                .unwrap_err()
                .starts_with("unknown step `shell`")
        );
    }
}
