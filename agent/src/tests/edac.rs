//! Memory errors the memory controllers corrected or could not correct, from the kernel's
//! EDAC counters (`/sys/devices/system/edac/mc/mc*/{ce,ue}_count`), read before and after
//! the stress so the report says both what the machine came with and what the run added.

/// The counters summed over every memory controller.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub corrected: u64,
    pub uncorrected: u64,
    pub controllers: u64,
}

/// Sums `(ce_count, ue_count)` file contents, one pair per controller; unreadable counts
/// are left out, the controller still counted.
pub fn sum<'a>(controllers: impl IntoIterator<Item = (&'a str, &'a str)>) -> Counts {
    let n = |s: &str| s.trim().parse::<u64>().unwrap_or(0);
    controllers
        .into_iter()
        .fold(Counts::default(), |c, (ce, ue)| Counts {
            corrected: c.corrected + n(ce),
            uncorrected: c.uncorrected + n(ue),
            controllers: c.controllers + 1,
        })
}

pub fn read() -> Counts {
    let Ok(entries) = std::fs::read_dir("/sys/devices/system/edac/mc") else {
        return Counts::default();
    };
    let pairs: Vec<(String, String)> = entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("mc"))
        .map(|e| {
            let read = |f: &str| std::fs::read_to_string(e.path().join(f)).unwrap_or_default();
            (read("ce_count"), read("ue_count"))
        })
        .collect();
    sum(pairs.iter().map(|(c, u)| (c.as_str(), u.as_str())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_add_up_over_controllers() {
        assert_eq!(
            sum([("3\n", "0\n"), ("1\n", "2\n")]),
            Counts {
                corrected: 4,
                uncorrected: 2,
                controllers: 2
            }
        );
        // QEMU has no EDAC driver: no controllers at all.
        assert_eq!(sum([]), Counts::default());
    }
}
