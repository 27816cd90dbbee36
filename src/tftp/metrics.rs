//! Prometheus counters for TFTP: what an operator needs to see a boot storm go right or
//! wrong (transfers by outcome, bytes, errors by reason, retransmissions).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

/// `family` is "ipv4" or "ipv6".
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct FamilyLabel {
    pub family: &'static str,
}

/// A transfer's end, as [`super::session::Outcome::reason`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub family: &'static str,
    pub outcome: &'static str,
}

/// Why a request or transfer failed, as a stable snake_case reason.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: &'static str,
}

/// The TFTP counters. Clones share the same counters.
#[derive(Debug, Clone, Default)]
pub struct TftpMetrics {
    /// Transfers started and ended, by outcome.
    pub transfers: Family<OutcomeLabels, Counter>,
    /// File bytes sent in DATA packets, retransmissions included.
    pub bytes: Family<FamilyLabel, Counter>,
    /// Refused requests and failed transfers, by reason.
    pub errors: Family<ReasonLabel, Counter>,
    /// DATA and OACK packets sent again.
    pub retransmits: Family<FamilyLabel, Counter>,
}

impl TftpMetrics {
    /// Adds the counters to `registry` under `tftp_*`.
    pub fn register(&self, registry: &mut Registry) {
        let sub = registry.sub_registry_with_prefix("tftp");
        sub.register(
            "transfers",
            "TFTP transfers by outcome",
            self.transfers.clone(),
        );
        sub.register("bytes", "TFTP file bytes sent", self.bytes.clone());
        sub.register(
            "errors",
            "TFTP refusals and failed transfers by reason",
            self.errors.clone(),
        );
        sub.register(
            "retransmits",
            "TFTP packets sent again",
            self.retransmits.clone(),
        );
    }

    /// Counts one refusal or failure.
    pub fn error(&self, reason: &'static str) {
        self.errors.get_or_create(&ReasonLabel { reason }).inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registers_and_encodes() {
        let m = TftpMetrics::default();
        let mut r = Registry::default();
        m.register(&mut r);
        m.error("path_escape");
        m.bytes
            .get_or_create(&FamilyLabel { family: "ipv6" })
            .inc_by(512);
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &r).unwrap();
        assert!(
            out.contains("tftp_errors_total{reason=\"path_escape\"} 1"),
            "{out}"
        );
        assert!(
            out.contains("tftp_bytes_total{family=\"ipv6\"} 512"),
            "{out}"
        );
    }
}
