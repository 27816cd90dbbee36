//! A drive's health as the drive itself reports it, read from the JSON of the two Debian
//! tools that speak to drives: `smartctl --json -a` (smartmontools, ATA and NVMe) and
//! `nvme smart-log -o json` / `nvme id-ctrl -o json` (nvme-cli). JSON, never their text
//! output: the text changes between versions, the JSON keys are their interface.
//!
//! These parsers are public: sixboot's verdict tests feed them the same fixtures.

use serde_json::Value;
use sixboot_report::Smart;

/// The largest counts the report takes (its schema's limits): past them a value is a
/// vendor's packed raw field, not a count.
const MAX_COUNT: u64 = u32::MAX as u64;
const MAX_HOURS: u64 = 10_000_000;

/// A JSON number, or a number in a string (nvme-cli writes its 128-bit counters as strings).
fn number(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn text(v: &Value) -> Option<String> {
    let s: String = v.as_str()?.chars().filter(|c| !c.is_control()).collect();
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_string())
}

/// Model, serial and size as a tool reports them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Identity {
    pub model: Option<String>,
    pub serial: Option<String>,
    pub bytes: Option<u64>,
}

/// Reads `smartctl --json -a` output. `None` when smartctl found no SMART on the device
/// (virtio, an unknown bridge): no field at all is known then.
pub fn from_smartctl(json: &[u8]) -> Option<Smart> {
    let v: Value = serde_json::from_slice(json).ok()?;
    let attribute = |id: u64| {
        v["ata_smart_attributes"]["table"]
            .as_array()?
            .iter()
            .find(|a| a["id"].as_u64() == Some(id))
            // Some vendors pack more counters into the upper raw bytes.
            .and_then(|a| number(&a["raw"]["value"]))
            .map(|raw| raw & MAX_COUNT)
    };
    let nvme = &v["nvme_smart_health_information_log"];
    let smart = Smart {
        healthy: v["smart_status"]["passed"].as_bool(),
        power_on_hours: number(&v["power_on_time"]["hours"]).filter(|&h| h <= MAX_HOURS),
        reallocated_sectors: attribute(5),
        pending_sectors: attribute(197),
        media_errors: number(&nvme["media_errors"]).filter(|&n| n <= MAX_COUNT),
        percentage_used: number(&nvme["percentage_used"]).and_then(|p| u16::try_from(p).ok()),
        temperature_c: v["temperature"]["current"].as_i64().and_then(celsius),
    };
    (smart != Smart::default()).then_some(smart)
}

/// What `smartctl --json -a` says the drive is.
pub fn identity_from_smartctl(json: &[u8]) -> Identity {
    let Ok(v) = serde_json::from_slice::<Value>(json) else {
        return Identity::default();
    };
    Identity {
        model: text(&v["model_name"]),
        serial: text(&v["serial_number"]),
        bytes: number(&v["user_capacity"]["bytes"]).filter(|&b| b > 0),
    }
}

/// Reads `nvme smart-log -o json` output (temperature in kelvin, counters as strings).
pub fn from_nvme_smart_log(json: &[u8]) -> Option<Smart> {
    let v: Value = serde_json::from_slice(json).ok()?;
    let warning = number(&v["critical_warning"]);
    let smart = Smart {
        // Any critical warning bit (spare, temperature, reliability, read-only, backup).
        healthy: warning.map(|w| w == 0),
        power_on_hours: number(&v["power_on_hours"]).filter(|&h| h <= MAX_HOURS),
        reallocated_sectors: None,
        pending_sectors: None,
        media_errors: number(&v["media_errors"]).filter(|&n| n <= MAX_COUNT),
        percentage_used: number(&v["percent_used"]).and_then(|p| u16::try_from(p).ok()),
        temperature_c: number(&v["temperature"])
            .filter(|&k| k > 0)
            .and_then(|k| i64::try_from(k).ok())
            .and_then(|k| celsius(k - 273)),
    };
    (smart != Smart::default()).then_some(smart)
}

/// What `nvme id-ctrl -o json` says the controller is (its size is per namespace, so not here).
pub fn identity_from_nvme_id_ctrl(json: &[u8]) -> Identity {
    let Ok(v) = serde_json::from_slice::<Value>(json) else {
        return Identity::default();
    };
    Identity {
        model: text(&v["mn"]),
        serial: text(&v["sn"]),
        bytes: None,
    }
}

/// A temperature the report believes (its schema takes -60 to 200 °C).
fn celsius(c: i64) -> Option<i32> {
    i32::try_from(c).ok().filter(|c| (-60..=200).contains(c))
}

/// Each field from `first` where it has one, else from `second`.
pub fn merge(first: Option<Smart>, second: Option<Smart>) -> Option<Smart> {
    let (a, b) = match (first, second) {
        (Some(a), Some(b)) => (a, b),
        (a, b) => return a.or(b),
    };
    Some(Smart {
        healthy: a.healthy.or(b.healthy),
        power_on_hours: a.power_on_hours.or(b.power_on_hours),
        reallocated_sectors: a.reallocated_sectors.or(b.reallocated_sectors),
        pending_sectors: a.pending_sectors.or(b.pending_sectors),
        media_errors: a.media_errors.or(b.media_errors),
        percentage_used: a.percentage_used.or(b.percentage_used),
        temperature_c: a.temperature_c.or(b.temperature_c),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ATA: &[u8] = include_bytes!("../fixtures/smartctl-ata.json");
    const NVME: &[u8] = include_bytes!("../fixtures/smartctl-nvme.json");
    const VIRTIO: &[u8] = include_bytes!("../fixtures/smartctl-virtio.json");
    const NVME_LOG: &[u8] = include_bytes!("../fixtures/nvme-smart-log.json");
    const NVME_ID: &[u8] = include_bytes!("../fixtures/nvme-id-ctrl.json");

    #[test]
    fn smartctl_on_an_ata_disk() {
        assert_eq!(
            from_smartctl(ATA),
            Some(Smart {
                healthy: Some(true),
                power_on_hours: Some(1),
                reallocated_sectors: Some(0),
                pending_sectors: None,
                media_errors: None,
                percentage_used: None,
                temperature_c: Some(31),
            })
        );
        assert_eq!(
            identity_from_smartctl(ATA),
            Identity {
                model: Some("QEMU HARDDISK".into()),
                serial: Some("SATA-0002".into()),
                bytes: Some(64 << 20),
            }
        );
    }

    #[test]
    fn smartctl_on_an_nvme_disk() {
        assert_eq!(
            from_smartctl(NVME),
            Some(Smart {
                healthy: Some(true),
                power_on_hours: Some(0),
                reallocated_sectors: None,
                pending_sectors: None,
                media_errors: Some(0),
                percentage_used: Some(0),
                temperature_c: Some(50),
            })
        );
        assert_eq!(
            identity_from_smartctl(NVME).serial.as_deref(),
            Some("NVME-0001")
        );
    }

    #[test]
    fn smartctl_without_smart_is_none() {
        assert_eq!(from_smartctl(VIRTIO), None);
        assert_eq!(identity_from_smartctl(VIRTIO), Identity::default());
        assert_eq!(from_smartctl(b"not json"), None);
    }

    #[test]
    fn nvme_cli_logs() {
        // 323 K is QEMU's fixed composite temperature.
        let s = from_nvme_smart_log(NVME_LOG).unwrap();
        assert_eq!(
            s,
            Smart {
                healthy: Some(true),
                power_on_hours: Some(0),
                reallocated_sectors: None,
                pending_sectors: None,
                media_errors: Some(0),
                percentage_used: Some(0),
                temperature_c: Some(50),
            }
        );
        assert_eq!(
            identity_from_nvme_id_ctrl(NVME_ID),
            Identity {
                model: Some("QEMU NVMe Ctrl".into()),
                serial: Some("NVME-0001".into()),
                bytes: None,
            }
        );
        let warned = String::from_utf8_lossy(NVME_LOG)
            .replace("\"critical_warning\":0", "\"critical_warning\":4")
            .replace("\"media_errors\":\"0\"", "\"media_errors\":\"17\"");
        let s = from_nvme_smart_log(warned.as_bytes()).unwrap();
        assert_eq!((s.healthy, s.media_errors), (Some(false), Some(17)));
    }

    #[test]
    fn merge_fills_gaps_from_the_second() {
        let ata = from_smartctl(ATA);
        let nvme = from_nvme_smart_log(NVME_LOG);
        let m = merge(ata.clone(), nvme.clone()).unwrap();
        assert_eq!(m.temperature_c, Some(31));
        assert_eq!(m.percentage_used, Some(0));
        assert_eq!(merge(None, nvme.clone()), nvme);
        assert_eq!(merge(ata.clone(), None), ata);
        assert_eq!(merge(None, None), None);
    }
}
