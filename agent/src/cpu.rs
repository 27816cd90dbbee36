//! Processors per socket, from `/proc/cpuinfo`: the kernel groups threads by `physical id`,
//! and each group says its model, cores (`cpu cores`), threads (`siblings`) and microcode.
//! The top speed comes from cpufreq where a driver is loaded, else from the firmware
//! (SMBIOS type 4), as QEMU and many servers without a cpufreq driver only say it there.

use sixboot_report::Cpu;

/// One socket per distinct `physical id`, in order of first appearance. A kernel without
/// `physical id` (some virtual machines, non-x86) counts as one socket of all its threads.
pub fn parse(cpuinfo: &str) -> Vec<Cpu> {
    let mut sockets: Vec<(String, Cpu, u32)> = Vec::new();
    for block in cpuinfo.split("\n\n").filter(|b| b.contains("processor")) {
        let field = |name: &str| {
            block.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                (k.trim() == name).then(|| v.trim().to_string())
            })
        };
        let id = field("physical id").unwrap_or_default();
        let i = match sockets.iter().position(|(s, ..)| *s == id) {
            Some(i) => i,
            None => {
                let number = |name: &str| field(name).and_then(|v| v.parse::<u32>().ok());
                let cpu = Cpu {
                    model: field("model name").unwrap_or_default(),
                    cores: number("cpu cores").unwrap_or(0),
                    threads: number("siblings").unwrap_or(0),
                    max_mhz: None,
                    microcode: field("microcode"),
                };
                sockets.push((id, cpu, 0));
                sockets.len() - 1
            }
        };
        sockets[i].2 += 1;
    }
    sockets
        .into_iter()
        .map(|(_, mut cpu, seen)| {
            // Without `siblings`/`cpu cores`, the threads seen are all there is to go by.
            if cpu.threads == 0 {
                cpu.threads = seen;
            }
            if cpu.cores == 0 {
                cpu.cores = cpu.threads;
            }
            cpu
        })
        .collect()
}

/// `cpuinfo_max_freq` (kHz) in MHz.
pub fn cpufreq_mhz(khz: &str) -> Option<u32> {
    let khz: u64 = khz.trim().parse().ok()?;
    u32::try_from(khz / 1000).ok().filter(|&m| m > 0)
}

/// Reads the machine's processors, with each socket's top speed from cpufreq or else the
/// firmware's per-socket figure.
pub fn collect(smbios_mhz: &[Option<u32>]) -> Vec<Cpu> {
    let text = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let freq = std::fs::read_to_string("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq")
        .ok()
        .and_then(|s| cpufreq_mhz(&s));
    let mut cpus = parse(&text);
    for (i, cpu) in cpus.iter_mut().enumerate() {
        cpu.max_mhz = freq.or_else(|| smbios_mhz.get(i).copied().flatten());
    }
    cpus
}

#[cfg(test)]
mod tests {
    use super::*;

    const QEMU: &str = include_str!("../fixtures/qemu-cpuinfo.txt");

    #[test]
    fn qemu_two_threads_in_one_socket() {
        assert_eq!(
            parse(QEMU),
            [Cpu {
                model: "QEMU Virtual CPU version 2.5+".into(),
                cores: 2,
                threads: 2,
                max_mhz: None,
                microcode: Some("0x1000065".into()),
            }]
        );
    }

    #[test]
    fn two_sockets_and_bare_kernels() {
        let two = QEMU.replacen("physical id\t: 0", "physical id\t: 1", 2);
        let two = two.replacen("physical id\t: 1", "physical id\t: 0", 1);
        assert_eq!(parse(&two).len(), 2);
        let bare = "processor\t: 0\nmodel name\t: X\n\nprocessor\t: 1\nmodel name\t: X\n";
        let cpus = parse(bare);
        assert_eq!((cpus.len(), cpus[0].cores, cpus[0].threads), (1, 2, 2));
        assert!(parse("").is_empty());
    }

    #[test]
    fn cpufreq_is_khz() {
        assert_eq!(cpufreq_mhz("3500000\n"), Some(3500));
        assert_eq!(cpufreq_mhz("0"), None);
        assert_eq!(cpufreq_mhz("fast"), None);
    }
}
