//! Helpers shared by the policies' tests.

use core::net::SocketAddr;
use std::vec::Vec;

use crate::wire::native::WeightedHost;

/// Host number `id`: a mix of IPv4 and IPv6 addresses, so that ordering by address mixes the
/// families too.
pub(crate) fn addr(id: u16) -> SocketAddr {
    if id.is_multiple_of(3) {
        SocketAddr::from(([0xfd00, 0, 0, 0, 0, 0, 0, id], 9000))
    } else {
        SocketAddr::from(([10, 0, (id >> 8) as u8, id as u8], 8000 + id % 7))
    }
}

/// Hosts `ids`, each of weight 1.
pub(crate) fn hosts(ids: &[u16]) -> Vec<WeightedHost> {
    ids.iter().map(|&id| WeightedHost { addr: addr(id), weight: 1 }).collect()
}
