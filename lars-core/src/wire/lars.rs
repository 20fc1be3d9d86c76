//! Lars-compatible bodies (msgids 1..=8): protobuf messages byte-compatible with the original.
//!
//! Field numbers and types follow `lars.proto` of the original (see `testdata/lars.proto`, which
//! the byte vectors in the tests were made from with `protoc --encode`). Hosts are IPv4 only, as
//! in the original: `ip` travels as the `int32` reinterpretation of the host-order address, so
//! addresses from 128.0.0.0 up are negative and take 10 bytes. A port outside `0..=65535` is
//! refused with [`Error::BadValue`].
//!
//! proto3 rules apply: an absent scalar field is zero, unknown fields are skipped, and a singular
//! sub-message that appears twice is merged field by field.

use core::net::{Ipv4Addr, SocketAddrV4};

use super::proto::{self, Reader, Writer, len_key, varint_key};
use super::{Decode, Encode, Error, List};

/// `HostInfo { 1: int32 ip; 2: int32 port }` as a socket address.
pub type HostInfo = SocketAddrV4;

fn host_len(host: &HostInfo) -> usize {
    proto::int32_len(1, host.ip().to_bits() as i32) + proto::int32_len(2, i32::from(host.port()))
}

fn write_host(w: &mut Writer<'_>, field: u32, host: &HostInfo) -> Result<(), Error> {
    w.message(field, host_len(host), |w| {
        w.int32(1, host.ip().to_bits() as i32)?;
        w.int32(2, i32::from(host.port()))
    })
}

/// Reads an `int32 ip` value: the host-order address.
fn read_ip(r: &mut Reader<'_>) -> Result<Ipv4Addr, Error> {
    Ok(Ipv4Addr::from_bits(r.int32()? as u32))
}

/// Reads an `int32 port` value, which must fit a `u16`.
fn read_port(r: &mut Reader<'_>) -> Result<u16, Error> {
    u16::try_from(r.int32()?).map_err(|_| Error::BadValue)
}

/// Decodes a `HostInfo`, starting from `base` so that a repeated singular field merges.
fn parse_host(bytes: &[u8], base: HostInfo) -> Result<HostInfo, Error> {
    const IP: u64 = varint_key(1);
    const PORT: u64 = varint_key(2);
    let mut host = base;
    let mut r = Reader::new(bytes);
    while let Some(key) = r.next_key()? {
        match key {
            IP => host.set_ip(read_ip(&mut r)?),
            PORT => host.set_port(read_port(&mut r)?),
            other => r.skip(other, 2)?,
        }
    }
    Ok(host)
}

const NO_HOST: HostInfo = SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0);

/// Yields the next sub-message with key `KEY` from already-validated bytes.
fn next_repeated<'a, T, const KEY: u64>(
    bytes: &mut &'a [u8],
    parse: fn(&[u8]) -> Result<T, Error>,
) -> Option<T> {
    let mut r = Reader::new(bytes);
    while let Some(key) = r.next_key().ok()? {
        if key == KEY {
            let item = parse(r.len_delimited().ok()?).ok();
            *bytes = r.bytes_left();
            return item;
        }
        r.skip(key, 0).ok()?;
    }
    *bytes = &[];
    None
}

/// `GetRouteRequest { 1: int32 modid; 2: int32 cmdid }`, msgids 1 and 7.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GetRouteRequest {
    /// Module id.
    pub modid: i32,
    /// Command id.
    pub cmdid: i32,
}

impl Encode for GetRouteRequest {
    fn buffer_len(&self) -> usize {
        proto::body_len(proto::int32_len(1, self.modid) + proto::int32_len(2, self.cmdid))
    }

    fn emit(&self, out: &mut [u8]) -> Result<usize, Error> {
        let mut w = Writer::new(out);
        w.int32(1, self.modid)?;
        w.int32(2, self.cmdid)?;
        w.finish_body()
    }
}

impl Decode<'_> for GetRouteRequest {
    fn parse(body: &[u8]) -> Result<Self, Error> {
        const MODID: u64 = varint_key(1);
        const CMDID: u64 = varint_key(2);
        let mut m = GetRouteRequest::default();
        let mut r = Reader::new(body);
        while let Some(key) = r.next_key()? {
            match key {
                MODID => m.modid = r.int32()?,
                CMDID => m.cmdid = r.int32()?,
                other => r.skip(other, 2)?,
            }
        }
        Ok(m)
    }
}

/// `GetRouteResponse { 1: int32 modid; 2: int32 cmdid; 3: repeated HostInfo host }`, msgids 2
/// and 8. An empty host list means the route no longer exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GetRouteResponse<'a> {
    /// Module id.
    pub modid: i32,
    /// Command id.
    pub cmdid: i32,
    /// Every host of the route.
    pub hosts: List<'a, HostInfo>,
}

impl Encode for GetRouteResponse<'_> {
    fn buffer_len(&self) -> usize {
        let hosts: usize = self.hosts.iter().map(|h| proto::message_len(3, host_len(&h))).sum();
        proto::body_len(proto::int32_len(1, self.modid) + proto::int32_len(2, self.cmdid) + hosts)
    }

    fn emit(&self, out: &mut [u8]) -> Result<usize, Error> {
        let mut w = Writer::new(out);
        w.int32(1, self.modid)?;
        w.int32(2, self.cmdid)?;
        for host in &self.hosts {
            write_host(&mut w, 3, &host)?;
        }
        w.finish_body()
    }
}

impl<'a> Decode<'a> for GetRouteResponse<'a> {
    fn parse(body: &'a [u8]) -> Result<Self, Error> {
        const MODID: u64 = varint_key(1);
        const CMDID: u64 = varint_key(2);
        const HOST: u64 = len_key(3);
        let (mut modid, mut cmdid, mut hosts) = (0, 0, 0);
        let mut r = Reader::new(body);
        while let Some(key) = r.next_key()? {
            match key {
                MODID => modid = r.int32()?,
                CMDID => cmdid = r.int32()?,
                HOST => {
                    parse_host(r.len_delimited()?, NO_HOST)?;
                    hosts += 1;
                }
                other => r.skip(other, 3)?,
            }
        }
        let next = |bytes: &mut &'a [u8]| next_repeated::<_, HOST>(bytes, |b| parse_host(b, NO_HOST));
        Ok(GetRouteResponse { modid, cmdid, hosts: List::encoded(body, hosts, next) })
    }
}

/// The longest encoding of a [`ReportStatusRequest`]'s fields besides its results: modid,
/// cmdid and caller as negative `int32`s (10-byte varints) and the timestamp (5 bytes), each
/// with its key (39 bytes in all). Senders size their frames with it.
pub const REPORT_HEAD_MAX_LEN: usize = 40;

/// `HostCallResult { 1: int32 ip; 2: int32 port; 3: uint32 succ; 4: uint32 err; 5: bool overload }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostCallResult {
    /// The host called.
    pub host: HostInfo,
    /// Successful calls in the period.
    pub succ: u32,
    /// Failed calls in the period.
    pub err: u32,
    /// Whether the agent considers the host overloaded.
    pub overload: bool,
}

impl HostCallResult {
    /// The longest encoding of one result in a [`ReportStatusRequest`], its field key and
    /// length included (an address whose `int32` is negative takes a 10-byte varint; 31 bytes
    /// in all). Senders size their frames with it.
    pub const MAX_ENCODED_LEN: usize = 32;

    fn len(&self) -> usize {
        host_len(&self.host)
            + proto::uint32_len(3, self.succ)
            + proto::uint32_len(4, self.err)
            + proto::bool_len(5, self.overload)
    }

    fn parse(bytes: &[u8]) -> Result<Self, Error> {
        const IP: u64 = varint_key(1);
        const PORT: u64 = varint_key(2);
        const SUCC: u64 = varint_key(3);
        const ERR: u64 = varint_key(4);
        const OVERLOAD: u64 = varint_key(5);
        let mut m = HostCallResult { host: NO_HOST, succ: 0, err: 0, overload: false };
        let mut r = Reader::new(bytes);
        while let Some(key) = r.next_key()? {
            match key {
                IP => m.host.set_ip(read_ip(&mut r)?),
                PORT => m.host.set_port(read_port(&mut r)?),
                SUCC => m.succ = r.uint32()?,
                ERR => m.err = r.uint32()?,
                OVERLOAD => m.overload = r.bool()?,
                other => r.skip(other, 5)?,
            }
        }
        Ok(m)
    }
}

/// `ReportStatusRequest { 1: int32 modid; 2: int32 cmdid; 3: int32 caller; 4: repeated
/// HostCallResult results; 5: uint32 ts }`, msgid 3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReportStatusRequest<'a> {
    /// Module id.
    pub modid: i32,
    /// Command id.
    pub cmdid: i32,
    /// The reporting agent's id (the original sends its IP as an integer).
    pub caller: i32,
    /// Per-host results.
    pub results: List<'a, HostCallResult>,
    /// Unix time in seconds.
    pub ts: u32,
}

impl Encode for ReportStatusRequest<'_> {
    fn buffer_len(&self) -> usize {
        let results: usize = self.results.iter().map(|r| proto::message_len(4, r.len())).sum();
        proto::body_len(
            proto::int32_len(1, self.modid)
                + proto::int32_len(2, self.cmdid)
                + proto::int32_len(3, self.caller)
                + results
                + proto::uint32_len(5, self.ts),
        )
    }

    fn emit(&self, out: &mut [u8]) -> Result<usize, Error> {
        let mut w = Writer::new(out);
        w.int32(1, self.modid)?;
        w.int32(2, self.cmdid)?;
        w.int32(3, self.caller)?;
        for result in &self.results {
            w.message(4, result.len(), |w| {
                w.int32(1, result.host.ip().to_bits() as i32)?;
                w.int32(2, i32::from(result.host.port()))?;
                w.uint32(3, result.succ)?;
                w.uint32(4, result.err)?;
                w.bool(5, result.overload)
            })?;
        }
        w.uint32(5, self.ts)?;
        w.finish_body()
    }
}

impl<'a> Decode<'a> for ReportStatusRequest<'a> {
    fn parse(body: &'a [u8]) -> Result<Self, Error> {
        const MODID: u64 = varint_key(1);
        const CMDID: u64 = varint_key(2);
        const CALLER: u64 = varint_key(3);
        const RESULT: u64 = len_key(4);
        const TS: u64 = varint_key(5);
        let (mut modid, mut cmdid, mut caller, mut ts, mut results) = (0, 0, 0, 0, 0);
        let mut r = Reader::new(body);
        while let Some(key) = r.next_key()? {
            match key {
                MODID => modid = r.int32()?,
                CMDID => cmdid = r.int32()?,
                CALLER => caller = r.int32()?,
                RESULT => {
                    HostCallResult::parse(r.len_delimited()?)?;
                    results += 1;
                }
                TS => ts = r.uint32()?,
                other => r.skip(other, 5)?,
            }
        }
        let next = |bytes: &mut &'a [u8]| next_repeated::<_, RESULT>(bytes, HostCallResult::parse);
        Ok(ReportStatusRequest { modid, cmdid, caller, results: List::encoded(body, results, next), ts })
    }
}

/// `GetHostRequest { 1: uint32 seq; 2: int32 modid; 3: int32 cmdid }`, msgid 4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GetHostRequest {
    /// Caller's sequence number, echoed in the response.
    pub seq: u32,
    /// Module id.
    pub modid: i32,
    /// Command id.
    pub cmdid: i32,
}

impl Encode for GetHostRequest {
    fn buffer_len(&self) -> usize {
        proto::body_len(
            proto::uint32_len(1, self.seq)
                + proto::int32_len(2, self.modid)
                + proto::int32_len(3, self.cmdid),
        )
    }

    fn emit(&self, out: &mut [u8]) -> Result<usize, Error> {
        let mut w = Writer::new(out);
        w.uint32(1, self.seq)?;
        w.int32(2, self.modid)?;
        w.int32(3, self.cmdid)?;
        w.finish_body()
    }
}

impl Decode<'_> for GetHostRequest {
    fn parse(body: &[u8]) -> Result<Self, Error> {
        const SEQ: u64 = varint_key(1);
        const MODID: u64 = varint_key(2);
        const CMDID: u64 = varint_key(3);
        let mut m = GetHostRequest::default();
        let mut r = Reader::new(body);
        while let Some(key) = r.next_key()? {
            match key {
                SEQ => m.seq = r.uint32()?,
                MODID => m.modid = r.int32()?,
                CMDID => m.cmdid = r.int32()?,
                other => r.skip(other, 3)?,
            }
        }
        Ok(m)
    }
}

/// `GetHostResponse { 1: uint32 seq; 2: int32 modid; 3: int32 cmdid; 4: int32 retcode; 5:
/// HostInfo host }`, msgid 5.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GetHostResponse {
    /// The request's sequence number.
    pub seq: u32,
    /// Module id.
    pub modid: i32,
    /// Command id.
    pub cmdid: i32,
    /// A [`super::RetCode`] value.
    pub retcode: i32,
    /// The chosen host, present when `retcode` is success.
    pub host: Option<HostInfo>,
}

impl Encode for GetHostResponse {
    fn buffer_len(&self) -> usize {
        proto::body_len(
            proto::uint32_len(1, self.seq)
                + proto::int32_len(2, self.modid)
                + proto::int32_len(3, self.cmdid)
                + proto::int32_len(4, self.retcode)
                + self.host.map_or(0, |h| proto::message_len(5, host_len(&h))),
        )
    }

    fn emit(&self, out: &mut [u8]) -> Result<usize, Error> {
        let mut w = Writer::new(out);
        w.uint32(1, self.seq)?;
        w.int32(2, self.modid)?;
        w.int32(3, self.cmdid)?;
        w.int32(4, self.retcode)?;
        if let Some(host) = &self.host {
            write_host(&mut w, 5, host)?;
        }
        w.finish_body()
    }
}

impl Decode<'_> for GetHostResponse {
    fn parse(body: &[u8]) -> Result<Self, Error> {
        const SEQ: u64 = varint_key(1);
        const MODID: u64 = varint_key(2);
        const CMDID: u64 = varint_key(3);
        const RETCODE: u64 = varint_key(4);
        const HOST: u64 = len_key(5);
        let mut m = GetHostResponse::default();
        let mut r = Reader::new(body);
        while let Some(key) = r.next_key()? {
            match key {
                SEQ => m.seq = r.uint32()?,
                MODID => m.modid = r.int32()?,
                CMDID => m.cmdid = r.int32()?,
                RETCODE => m.retcode = r.int32()?,
                HOST => m.host = Some(parse_host(r.len_delimited()?, m.host.unwrap_or(NO_HOST))?),
                other => r.skip(other, 5)?,
            }
        }
        Ok(m)
    }
}

/// `ReportRequest { 1: int32 modid; 2: int32 cmdid; 3: HostInfo host; 4: int32 retcode }`, msgid
/// 6. By the original API's convention `retcode` 0 is success and anything else a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReportRequest {
    /// Module id.
    pub modid: i32,
    /// Command id.
    pub cmdid: i32,
    /// The host that was called.
    pub host: Option<HostInfo>,
    /// The call's result.
    pub retcode: i32,
}

impl Encode for ReportRequest {
    fn buffer_len(&self) -> usize {
        proto::body_len(
            proto::int32_len(1, self.modid)
                + proto::int32_len(2, self.cmdid)
                + self.host.map_or(0, |h| proto::message_len(3, host_len(&h)))
                + proto::int32_len(4, self.retcode),
        )
    }

    fn emit(&self, out: &mut [u8]) -> Result<usize, Error> {
        let mut w = Writer::new(out);
        w.int32(1, self.modid)?;
        w.int32(2, self.cmdid)?;
        if let Some(host) = &self.host {
            write_host(&mut w, 3, host)?;
        }
        w.int32(4, self.retcode)?;
        w.finish_body()
    }
}

impl Decode<'_> for ReportRequest {
    fn parse(body: &[u8]) -> Result<Self, Error> {
        const MODID: u64 = varint_key(1);
        const CMDID: u64 = varint_key(2);
        const HOST: u64 = len_key(3);
        const RETCODE: u64 = varint_key(4);
        let mut m = ReportRequest::default();
        let mut r = Reader::new(body);
        while let Some(key) = r.next_key()? {
            match key {
                MODID => m.modid = r.int32()?,
                CMDID => m.cmdid = r.int32()?,
                HOST => m.host = Some(parse_host(r.len_delimited()?, m.host.unwrap_or(NO_HOST))?),
                RETCODE => m.retcode = r.int32()?,
                other => r.skip(other, 4)?,
            }
        }
        Ok(m)
    }
}

#[cfg(test)]
mod tests;
