//! Prometheus counters for every protocol, in one registry that `/metrics` serves. Each
//! protocol owns a small struct of its counters and registers it here at start-up.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// A counter keyed by one label, such as `reason` or `type`.
pub type Labeled = Family<[(&'static str, &'static str); 1], Counter>;

/// Counts one event under `label=value`.
pub fn inc(f: &Labeled, label: &'static str, value: &'static str) {
    f.get_or_create(&[(label, value)]).inc();
}

#[derive(Default, Clone)]
pub struct Dhcp4Metrics {
    /// Requests received, by message type.
    pub received: Labeled,
    /// Replies sent, by message type.
    pub replies: Labeled,
    /// Packets not answered, by reason.
    pub ignored: Labeled,
    pub leases_active: Gauge,
    pub pool_size: Gauge,
    /// Decisions refused because their lease could not be made durable (replies withheld);
    /// each is also in `ignored` as `store_failed`.
    pub store_failures: Counter,
}

impl Dhcp4Metrics {
    pub fn register(&self, r: &mut Registry) {
        let r = r.sub_registry_with_prefix("dhcp4");
        r.register(
            "received",
            "DHCPv4 requests received, by message type",
            self.received.clone(),
        );
        r.register(
            "replies",
            "DHCPv4 replies sent, by message type",
            self.replies.clone(),
        );
        r.register(
            "ignored",
            "DHCPv4 packets not answered, by reason",
            self.ignored.clone(),
        );
        r.register(
            "leases_active",
            "DHCPv4 leases offered or bound and not expired",
            self.leases_active.clone(),
        );
        r.register(
            "pool_size",
            "Addresses in the DHCPv4 pool",
            self.pool_size.clone(),
        );
        r.register(
            "store_failures",
            "DHCPv4 requests refused: lease not durable, reply withheld",
            self.store_failures.clone(),
        );
    }
}

/// A counter keyed by two labels.
pub type Labeled2 = Family<[(&'static str, &'static str); 2], Counter>;

#[derive(Default, Clone)]
pub struct Dhcp6Metrics {
    /// Datagrams received, by message type.
    pub received: Labeled,
    /// Replies sent, by message type answered and client class.
    pub replies: Labeled2,
    /// Datagrams not answered, by reason.
    pub ignored: Labeled,
    /// Decisions refused because their lease could not be made durable (replies withheld);
    /// each is also in `ignored` as `store_failed`.
    pub store_failures: Counter,
}

impl Dhcp6Metrics {
    pub fn register(&self, r: &mut Registry) {
        let r = r.sub_registry_with_prefix("dhcp6");
        r.register(
            "received",
            "DHCPv6 datagrams received, by message type",
            self.received.clone(),
        );
        r.register(
            "replies",
            "DHCPv6 replies sent, by message type answered and client class",
            self.replies.clone(),
        );
        r.register(
            "ignored",
            "DHCPv6 datagrams not answered, by reason",
            self.ignored.clone(),
        );
        r.register(
            "store_failures",
            "DHCPv6 requests refused: lease not durable, reply withheld",
            self.store_failures.clone(),
        );
    }
}

#[derive(Default, Clone)]
pub struct RaMetrics {
    /// Router advertisements sent, by kind (`unsolicited`, `solicited`).
    pub sent: Labeled,
    /// Router solicitations answered (those coalesced into a pending RA too).
    pub solicitations: Counter,
    /// Other routers' advertisements whose M/O flags differ from ours.
    pub conflicts: Counter,
    /// Router discovery packets not acted on, by reason.
    pub ignored: Labeled,
}

impl RaMetrics {
    pub fn register(&self, r: &mut Registry) {
        let r = r.sub_registry_with_prefix("ra");
        r.register(
            "sent",
            "Router advertisements sent, by kind",
            self.sent.clone(),
        );
        r.register(
            "solicitations",
            "Router solicitations answered",
            self.solicitations.clone(),
        );
        r.register(
            "conflicts",
            "Other routers' advertisements with M/O flags that differ from ours",
            self.conflicts.clone(),
        );
        r.register(
            "ignored",
            "Router discovery packets not acted on, by reason",
            self.ignored.clone(),
        );
    }
}

/// HTTP's counters: every request by route and status, the body bytes actually sent, and
/// every refused path by reason; and the connections, so a slow-client flood shows.
#[derive(Default, Clone)]
pub struct HttpMetrics {
    pub requests: Family<[(&'static str, String); 2], Counter>,
    pub sent_bytes: Labeled,
    pub refused: Labeled,
    /// Connections being served now.
    pub connections_open: Gauge,
    /// Connections the server closed before the client was done, by reason
    /// (`header_timeout`: no complete request head within `[http] request_timeout`;
    /// `send_timeout`: a response write waited `[http] send_timeout`).
    pub connections_dropped: Labeled,
    /// Times a connection had to wait in the backlog because `[http] max_connections`
    /// were open.
    pub connections_capped: Counter,
}

impl HttpMetrics {
    pub fn register(&self, r: &mut Registry) {
        let r = r.sub_registry_with_prefix("http");
        r.register(
            "requests",
            "HTTP requests answered, by route and status",
            self.requests.clone(),
        );
        r.register(
            "sent_bytes",
            "HTTP response body bytes sent, by route",
            self.sent_bytes.clone(),
        );
        r.register(
            "refused",
            "HTTP paths refused, by reason",
            self.refused.clone(),
        );
        r.register(
            "connections_open",
            "HTTP connections being served",
            self.connections_open.clone(),
        );
        r.register(
            "connections_dropped",
            "HTTP connections closed by the server before the client was done, by reason",
            self.connections_dropped.clone(),
        );
        r.register(
            "connections_capped",
            "HTTP connections that waited because max_connections were open",
            self.connections_capped.clone(),
        );
    }
}

/// Renders the registry in the Prometheus text format.
pub fn render(r: &Registry) -> String {
    let mut s = String::new();
    prometheus_client::encoding::text::encode(&mut s, r).expect("writing to a String cannot fail");
    s
}
