//! Inputs shared by the wire modules' property tests: real captures with a few bytes
//! overwritten and sometimes cut short, the shape a damaged or hostile datagram takes.

use proptest::prelude::*;
use proptest::sample::{Index, select};

/// One of `captures` (none empty) with up to three bytes overwritten, and maybe cut short.
pub fn mutated(captures: Vec<Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    (
        select(captures),
        proptest::collection::vec((any::<Index>(), any::<u8>()), 0..4),
        proptest::option::of(any::<Index>()),
    )
        .prop_map(|(mut b, edits, cut)| {
            for (at, v) in edits {
                let at = at.index(b.len());
                b[at] = v;
            }
            if let Some(cut) = cut {
                b.truncate(cut.index(b.len() + 1));
            }
            b
        })
}
