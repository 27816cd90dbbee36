//! Prometheus counters for TFTP: what an operator needs to see a boot storm go right or
//! wrong (transfers by outcome, bytes, errors by reason, retransmissions).

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use crate::metrics::{Labeled, inc};

/// The TFTP counters. Clones share the same counters. `family` is "ipv4" or "ipv6".
#[derive(Debug, Clone, Default)]
pub struct TftpMetrics {
    /// Transfers ended, by family and outcome ([`super::session::Outcome::reason`], or
    /// "replaced" and "io_error").
    pub transfers: Family<[(&'static str, &'static str); 2], Counter>,
    /// File bytes sent in DATA packets, retransmissions included, by family.
    pub bytes: Labeled,
    /// Refused requests and failed transfers, by reason.
    pub errors: Labeled,
    /// DATA and OACK packets sent again, by family.
    pub retransmits: Labeled,
    /// Known options left out of the OACK because their value was unusable, by option
    /// ([`super::wire::Ignored`]); the transfer goes on without them.
    pub options_ignored: Labeled,
}

impl TftpMetrics {
    /// Adds the counters to `registry` under `tftp_*`.
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("tftp");
        r.register(
            "transfers",
            "TFTP transfers by outcome",
            self.transfers.clone(),
        );
        r.register("bytes", "TFTP file bytes sent", self.bytes.clone());
        r.register(
            "errors",
            "TFTP refusals and failed transfers by reason",
            self.errors.clone(),
        );
        r.register(
            "retransmits",
            "TFTP packets sent again",
            self.retransmits.clone(),
        );
        r.register(
            "options_ignored",
            "TFTP request options ignored for an unusable value, by option",
            self.options_ignored.clone(),
        );
    }

    /// Counts one refusal or failure.
    pub fn error(&self, reason: &'static str) {
        inc(&self.errors, "reason", reason);
    }

    /// Counts one ended transfer.
    pub fn transfer(&self, family: &'static str, outcome: &'static str) {
        self.transfers
            .get_or_create(&[("family", family), ("outcome", outcome)])
            .inc();
    }

    /// Adds what one transfer sent.
    pub fn sent(&self, family: &'static str, bytes: u64, retransmits: u64) {
        self.bytes
            .get_or_create(&[("family", family)])
            .inc_by(bytes);
        self.retransmits
            .get_or_create(&[("family", family)])
            .inc_by(retransmits);
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
        m.sent("ipv6", 512, 1);
        m.transfer("ipv6", "complete");
        let out = crate::metrics::render(&r);
        assert!(
            out.contains("tftp_errors_total{reason=\"path_escape\"} 1"),
            "{out}"
        );
        assert!(
            out.contains("tftp_bytes_total{family=\"ipv6\"} 512"),
            "{out}"
        );
        assert!(
            out.contains("tftp_retransmits_total{family=\"ipv6\"} 1"),
            "{out}"
        );
        assert!(
            out.contains("tftp_transfers_total{family=\"ipv6\",outcome=\"complete\"} 1"),
            "{out}"
        );
    }
}
