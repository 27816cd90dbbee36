//! DHCPv4 for PXE firmware only. `wire` parses and emits packets.
pub mod wire;
