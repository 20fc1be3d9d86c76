//! Any lars message: the body codec picked by msgid, so callers decode a frame in one call.

use super::{Decode, Encode, Error, Frame, MsgId, lars, native};

/// A decoded body of any msgid, borrowing the frame it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)] // each variant is named after its msgid, documented on `MsgId`
pub enum Message<'a> {
    GetRouteRequest(lars::GetRouteRequest),
    GetRouteResponse(lars::GetRouteResponse<'a>),
    ReportStatusRequest(lars::ReportStatusRequest<'a>),
    GetHostRequest(lars::GetHostRequest),
    GetHostResponse(lars::GetHostResponse),
    ReportRequest(lars::ReportRequest),
    ApiGetRouteRequest(lars::GetRouteRequest),
    ApiGetRouteResponse(lars::GetRouteResponse<'a>),
    Hello(native::Hello),
    Heartbeat(native::Heartbeat),
    #[cfg(feature = "auth")]
    AuthHello(native::AuthHello),
    #[cfg(feature = "auth")]
    AuthChallenge(native::AuthChallenge),
    #[cfg(feature = "auth")]
    AuthProof(native::AuthProof),
    NativeGetHostRequest(native::GetHostRequest),
    NativeGetHostResponse(native::GetHostResponse),
    NativeReport(native::Report),
    NativeReportBatch(native::ReportBatch<'a>),
    NativeGetRouteRequest(native::GetRouteRequest),
    NativeRouteResponse(native::RouteResponse<'a>),
    NativeCallStats(native::CallStats<'a>),
    StatusReport(native::StatusReport<'a>),
    DecisionReport(native::DecisionReport<'a>),
    StatsRequest(native::StatsRequest),
    StatsResponse(native::StatsResponse<'a>),
    DecisionsRequest(native::DecisionsRequest),
    DecisionsResponse(native::DecisionsResponse<'a>),
}

macro_rules! dispatch {
    ($($name:ident),*; @only_if($cfg:meta) $($cname:ident),*) => {
        impl<'a> Message<'a> {
            /// Decodes `body` with the codec of `msgid`.
            pub fn parse(msgid: MsgId, body: &'a [u8]) -> Result<Message<'a>, Error> {
                Ok(match msgid {
                    $( MsgId::$name => Message::$name(Decode::parse(body)?), )*
                    $( #[cfg($cfg)] MsgId::$cname => Message::$cname(Decode::parse(body)?), )*
                })
            }

            /// The msgid this message travels under.
            pub fn msgid(&self) -> MsgId {
                match self {
                    $( Message::$name(_) => MsgId::$name, )*
                    $( #[cfg($cfg)] Message::$cname(_) => MsgId::$cname, )*
                }
            }

            fn body(&self) -> &dyn Encode {
                match self {
                    $( Message::$name(m) => m, )*
                    $( #[cfg($cfg)] Message::$cname(m) => m, )*
                }
            }
        }
    };
}

dispatch!(
    GetRouteRequest,
    GetRouteResponse,
    ReportStatusRequest,
    GetHostRequest,
    GetHostResponse,
    ReportRequest,
    ApiGetRouteRequest,
    ApiGetRouteResponse,
    Hello,
    Heartbeat,
    NativeGetHostRequest,
    NativeGetHostResponse,
    NativeReport,
    NativeReportBatch,
    NativeGetRouteRequest,
    NativeRouteResponse,
    NativeCallStats,
    StatusReport,
    DecisionReport,
    StatsRequest,
    StatsResponse,
    DecisionsRequest,
    DecisionsResponse;
    @only_if(feature = "auth") AuthHello,
    AuthChallenge,
    AuthProof
);

impl<'a> Message<'a> {
    /// Decodes a whole frame's body.
    pub fn from_frame(frame: Frame<'a>) -> Result<Message<'a>, Error> {
        Message::parse(frame.msgid, frame.body)
    }

    /// Writes the message as a whole frame (header and body) into `out`.
    pub fn emit_frame(&self, out: &mut [u8]) -> Result<usize, Error> {
        super::frame::encode(self.msgid(), self, out)
    }
}

impl Encode for Message<'_> {
    fn buffer_len(&self) -> usize {
        self.body().buffer_len()
    }

    fn emit(&self, out: &mut [u8]) -> Result<usize, Error> {
        self.body().emit(out)
    }
}
