//! Who may connect (`access` layer): CIDR blocks and the allowlist a daemon checks each
//! accepted connection's source address against.
//!
//! IPv4 and IPv6; an IPv4-mapped IPv6 source (`::ffff:10.0.0.1`, as a dual-stack listener
//! sees IPv4 peers) is matched as the IPv4 address it is. The default list is loopback only
//! (`127.0.0.0/8` and `::1/128`), which matches the daemons' default bind.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// One block of addresses: an address and a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

/// Why a CIDR block did not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CidrError {
    /// The part before `/` is not an IP address.
    BadAddress,
    /// The prefix is not a number, or longer than the address (32 or 128).
    BadPrefix,
    /// The address has bits set past the prefix (`10.0.0.1/8`): almost always a typo.
    HostBits,
}

impl core::fmt::Display for CidrError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            CidrError::BadAddress => "not an IP address",
            CidrError::BadPrefix => "the prefix length is not 0-32 (IPv4) or 0-128 (IPv6)",
            CidrError::HostBits => "the address has bits set past its prefix length",
        })
    }
}

impl core::error::Error for CidrError {}

impl Cidr {
    /// IPv4 loopback, `127.0.0.0/8`.
    pub const LOOPBACK_V4: Cidr = Cidr { addr: IpAddr::V4(Ipv4Addr::new(127, 0, 0, 0)), prefix: 8 };
    /// IPv6 loopback, `::1/128`.
    pub const LOOPBACK_V6: Cidr = Cidr { addr: IpAddr::V6(Ipv6Addr::LOCALHOST), prefix: 128 };
    /// What a daemon admits unless told otherwise.
    pub const LOOPBACK: [Cidr; 2] = [Cidr::LOOPBACK_V4, Cidr::LOOPBACK_V6];

    /// `addr/prefix`; a bare address is a block of one (`/32` or `/128`).
    pub fn parse(text: &str) -> Result<Cidr, CidrError> {
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let addr: IpAddr = addr.trim().parse().map_err(|_| CidrError::BadAddress)?;
        let width = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => width,
            Some(prefix) => prefix.trim().parse::<u8>().map_err(|_| CidrError::BadPrefix)?,
        };
        if prefix > width {
            return Err(CidrError::BadPrefix);
        }
        let cidr = Cidr { addr, prefix };
        if bits(addr) & !cidr.mask() != 0 {
            return Err(CidrError::HostBits);
        }
        Ok(cidr)
    }

    /// Bits of the network part, as a mask over the address's bits.
    fn mask(&self) -> u128 {
        let width = if self.addr.is_ipv4() { 32 } else { 128 };
        let all = if width == 32 { u128::from(u32::MAX) } else { u128::MAX };
        match u32::from(width - self.prefix) {
            128 => 0,
            host => all & !((1u128 << host) - 1),
        }
    }

    /// Whether `ip` is in the block.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        if ip.is_ipv4() != self.addr.is_ipv4() {
            return false;
        }
        (bits(ip) ^ bits(self.addr)) & self.mask() == 0
    }
}

impl core::fmt::Display for Cidr {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

fn bits(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(v4.to_bits()),
        IpAddr::V6(v6) => v6.to_bits(),
    }
}

/// Whether any block of `allow` contains `ip`.
pub fn admits(allow: &[Cidr], ip: IpAddr) -> bool {
    allow.iter().any(|cidr| cidr.contains(ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn blocks_parse_and_contain_what_they_should() {
        let net = Cidr::parse("10.1.0.0/16").unwrap();
        assert!(net.contains(ip("10.1.255.7")));
        assert!(!net.contains(ip("10.2.0.1")));
        assert!(net.contains(ip("::ffff:10.1.2.3")), "an IPv4-mapped peer is its IPv4 address");
        assert!(!net.contains(ip("::1")));
        let one = Cidr::parse("127.0.0.1").unwrap();
        assert_eq!(std::format!("{one}"), "127.0.0.1/32");
        assert!(one.contains(ip("127.0.0.1")) && !one.contains(ip("127.0.0.2")));
        let v6 = Cidr::parse("2001:db8::/32").unwrap();
        assert!(v6.contains(ip("2001:db8:1::9")) && !v6.contains(ip("2001:db9::1")));
        assert!(!v6.contains(ip("10.0.0.1")));
        let all = Cidr::parse("0.0.0.0/0").unwrap();
        assert!(all.contains(ip("203.0.113.9")) && !all.contains(ip("2001:db8::1")));
        assert!(Cidr::parse("::/0").unwrap().contains(ip("2001:db8::1")));
    }

    #[test]
    fn mistakes_are_refused() {
        assert_eq!(Cidr::parse("10.0.0.1/8"), Err(CidrError::HostBits));
        assert_eq!(Cidr::parse("10.0.0.0/33"), Err(CidrError::BadPrefix));
        assert_eq!(Cidr::parse("10.0.0.0/x"), Err(CidrError::BadPrefix));
        assert_eq!(Cidr::parse("::/129"), Err(CidrError::BadPrefix));
        assert_eq!(Cidr::parse("ten/8"), Err(CidrError::BadAddress));
        assert_eq!(Cidr::parse(""), Err(CidrError::BadAddress));
    }

    #[test]
    fn the_default_is_loopback() {
        assert!(admits(&Cidr::LOOPBACK, ip("127.0.0.1")));
        assert!(admits(&Cidr::LOOPBACK, ip("127.9.9.9")));
        assert!(admits(&Cidr::LOOPBACK, ip("::1")));
        assert!(admits(&Cidr::LOOPBACK, ip("::ffff:127.0.0.1")));
        assert!(!admits(&Cidr::LOOPBACK, ip("10.0.0.1")));
        assert!(!admits(&Cidr::LOOPBACK, ip("::2")));
    }
}
