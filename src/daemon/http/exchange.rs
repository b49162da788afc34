//! One HTTP/1.1 exchange of the AWS JSON endpoint: the request read off a connection's
//! buffer (head parsed by `httparse`, body by `Content-Length` or chunks, `super::chunked`),
//! and the answer written.
//!
//! Why its own file: framing is where hostile input arrives, so it is kept pure (bytes in,
//! a parsed request or a refusal out) and tested on its own, apart from sockets and the
//! service. Only what the AWS JSON protocol needs is accepted: `POST` with a body of at most
//! [`MAX_BODY`] bytes as sent, framed by a `Content-Length` or the chunked transfer coding, and
//! a head of at most [`MAX_HEAD`]; other transfer codings, a request framed both ways (RFC
//! 9112 §6.3: a request smuggled past a proxy reading the other), other methods and oversized
//! requests are refused with AWS's error shape, and the connection is closed after a refusal
//! whose body was not read.
//!
//! A request must also name this machine in its `Host` header ([`Hosts`]). The endpoint is
//! on loopback, but a browser on this machine can still reach it: a web page whose own name
//! its owner re-points at 127.0.0.1 (DNS rebinding) sends same-origin requests here, unsigned,
//! from a process of the user who runs the daemon — the account root. Its `Host` is the
//! page's name, and is refused.

use super::chunked;
use crate::err;
use crate::error::KmsError;
use crate::secret::SecretBytes;

/// Largest request head (request line and headers), in bytes.
pub(super) const MAX_HEAD: usize = 16 << 10;
/// Largest request body, in bytes: the largest KMS request (a 32 KB key policy, a 6 KB
/// ciphertext as base64) with room to spare.
pub(super) const MAX_BODY: usize = 1 << 20;
/// Headers a request may have.
pub(super) const MAX_HEADERS: usize = 64;

/// A request read whole from the buffer.
#[derive(Debug)]
pub(super) struct Exchange<'b> {
    /// The request target (path and query), e.g. `/`.
    pub path: &'b str,
    /// Every header as sent, for a signature to cover.
    pub headers: Vec<(&'b str, &'b [u8])>,
    /// `X-Amz-Target`, if sent.
    pub target: Option<&'b str>,
    /// `Authorization`, if sent.
    pub authorization: Option<&'b str>,
    /// The body.
    pub body: Body<'b>,
    /// The client keeps the connection open after the answer (HTTP/1.1 without
    /// `Connection: close`, or HTTP/1.0 with `keep-alive`).
    pub keep_alive: bool,
    /// Bytes of the buffer this request took (head and body).
    pub len: usize,
}

/// A request's body: as sent (a `Content-Length` body, in the connection's buffer), or the
/// data of its chunks, copied out of it into a buffer of its own.
pub(super) enum Body<'b> {
    Sent(&'b [u8]),
    Dechunked(SecretBytes),
}

impl std::ops::Deref for Body<'_> {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Body::Sent(bytes) => bytes,
            Body::Dechunked(data) => data.expose(),
        }
    }
}

impl std::fmt::Debug for Body<'_> {
    /// Its length only: a body carries plaintexts.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Body({} bytes)", self.len())
    }
}

/// What the start of a connection's buffer holds.
#[derive(Debug)]
pub(super) enum Parsed<'b> {
    /// Not a whole request yet. `expects_continue`: the head is whole and asked for
    /// `100 Continue` before its body is sent. `whole`: once the head is whole, the bytes the
    /// request takes (head and body; for a body in chunks, the most it may take), so that they
    /// can be charged before the body is read.
    Partial {
        expects_continue: bool,
        whole: Option<usize>,
    },
    /// A whole request.
    Whole(Exchange<'b>),
    /// A request that cannot be served: answer with this status and error, then close.
    Refused(u16, KmsError),
}

/// The names a request's `Host` may give for this endpoint: those that always mean this
/// machine (`localhost`, `*.localhost`, loopback addresses), and the configured ones
/// (`http_hosts`).
#[derive(Debug, Default)]
pub(crate) struct Hosts {
    /// The configured names, in lower case, without a trailing dot.
    names: Vec<String>,
}

impl Hosts {
    /// From the option `http_hosts` (comma-separated; empty items dropped).
    pub(crate) fn new(option: &str) -> Hosts {
        Hosts {
            names: option
                .split(',')
                .map(|n| n.trim().trim_end_matches('.').to_ascii_lowercase())
                .filter(|n| !n.is_empty())
                .collect(),
        }
    }

    /// Whether a `Host` value (`name[:port]`, `address[:port]` or `[v6][:port]`) names this
    /// endpoint. The port is not compared: a page re-pointed here is told apart by its name.
    fn allows(&self, value: &str) -> bool {
        let Some(host) = host_of(value) else {
            return false;
        };
        if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            return v6
                .parse::<std::net::Ipv6Addr>()
                .is_ok_and(|a| a.is_loopback());
        }
        if let Ok(v4) = host.parse::<std::net::Ipv4Addr>() {
            return v4.is_loopback();
        }
        // Compared without case and without allocating: this runs for every request.
        let name = host.trim_end_matches('.');
        let local = "localhost";
        // RFC 6761 §6.3: `localhost` and its subdomains are loopback, whatever DNS says.
        let subdomain = name.len() > local.len()
            && name.as_bytes()[name.len() - local.len() - 1] == b'.'
            && name.as_bytes()[name.len() - local.len()..].eq_ignore_ascii_case(local.as_bytes());
        name.eq_ignore_ascii_case(local)
            || subdomain
            || self.names.iter().any(|n| n.eq_ignore_ascii_case(name))
    }
}

/// The host of a `Host` value without its port (digits after the last `:` outside
/// brackets), or None if the value has no host or a port that is not digits.
fn host_of(value: &str) -> Option<&str> {
    let (host, port) = if value.starts_with('[') {
        let end = value.find(']')? + 1;
        let rest = &value[end..];
        (
            &value[..end],
            rest.strip_prefix(':').or(rest.is_empty().then_some("")),
        )
    } else {
        match value.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (value, Some("")),
        }
    };
    let port = port?;
    let port_ok = port.bytes().all(|b| b.is_ascii_digit());
    (!host.is_empty() && port_ok).then_some(host)
}

/// Where `lines` has a line ending in a bare LF (an LF not after a CR), if anywhere.
/// httparse takes one as a line end (RFC 9112 §2.2 lets a recipient); a proxy in front that
/// does not would read the same bytes as other lines, other headers, another request. So it
/// is refused in a request's head and in a chunked body's trailers (and extensions,
/// `chunked`), as a server behind a proxy should.
pub(super) fn bare_lf(lines: &[u8]) -> Option<usize> {
    memchr::memchr_iter(b'\n', lines).find(|&i| i == 0 || lines[i - 1] != b'\r')
}

/// Reads the request at the start of `buf`; `hosts`: the names its `Host` header may give.
pub(super) fn parse<'b>(buf: &'b [u8], hosts: &Hosts) -> Parsed<'b> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => {
            return Parsed::Refused(
                431,
                err!(
                    ValidationException,
                    "The request head is longer than {MAX_HEAD} bytes"
                ),
            )
        }
        Ok(httparse::Status::Partial) => {
            return Parsed::Partial {
                expects_continue: false,
                whole: None,
            }
        }
        // RFC 6585 §5: more header fields than the endpoint reads is 431, as a head too long.
        Err(httparse::Error::TooManyHeaders) => {
            return Parsed::Refused(
                431,
                err!(
                    ValidationException,
                    "The request has more than {MAX_HEADERS} header fields"
                ),
            )
        }
        Err(e) => {
            return Parsed::Refused(
                400,
                err!(SerializationException, "Malformed HTTP request: {e}"),
            )
        }
    };
    if head_len > MAX_HEAD {
        return Parsed::Refused(
            431,
            err!(
                ValidationException,
                "The request head is longer than {MAX_HEAD} bytes"
            ),
        );
    }
    if let Some(at) = bare_lf(&buf[..head_len]) {
        return Parsed::Refused(
            400,
            err!(
                SerializationException,
                "Malformed HTTP request: a line of the head ends in a bare LF at byte {at} (lines \
                 end in CRLF)"
            ),
        );
    }
    let method = req.method.unwrap_or("");
    if method != "POST" {
        return Parsed::Refused(
            405,
            err!(
                UnknownOperationException,
                "{method} is not served: AWS JSON requests are POST /"
            ),
        );
    }
    // HTTP/1.0 (or older) otherwise: httparse reads no other version.
    let http_11 = req.version == Some(1);
    let mut host = None;
    let mut hosts_seen = 0;
    let mut target = None;
    let mut authorization = None;
    let mut length = None;
    // The last coding the Transfer-Encoding headers name (the one that frames the body; their
    // values read as one list, RFC 9110 §5.3), and how many they name, empty items not
    // counted (§5.6.1): None without the header.
    let mut transfer: Option<&str> = None;
    let mut codings = 0;
    let mut expects_continue = false;
    let mut connection_close = false;
    let mut connection_keep_alive = false;
    for h in req.headers.iter() {
        // Only the headers read here are checked as text: a request carries several others
        // (a signature covers them as bytes).
        let Some(read) = Read::of(h.name) else {
            continue;
        };
        let Ok(value) = std::str::from_utf8(h.value) else {
            return Parsed::Refused(
                400,
                err!(
                    SerializationException,
                    "The {} header's value is not UTF-8 text: {:?}",
                    h.name,
                    String::from_utf8_lossy(h.value)
                ),
            );
        };
        match read {
            Read::Host => {
                host = Some(ows(value));
                hosts_seen += 1;
            }
            Read::Target => target = Some(ows(value)),
            Read::Authorization => authorization = Some(ows(value)),
            Read::ContentLength => match content_length(ows(value)) {
                Some(n) if length.is_none_or(|l| l == n) => length = Some(n),
                _ => {
                    return Parsed::Refused(
                        400,
                        err!(SerializationException, "Bad Content-Length: {value:?}"),
                    )
                }
            },
            Read::TransferEncoding => {
                let named = value.split(',').map(ows).filter(|c| !c.is_empty());
                transfer = Some(named.fold(transfer.unwrap_or(""), |_, c| {
                    codings += 1;
                    c
                }));
            }
            // RFC 9110 §10.1.1: an HTTP/1.0 client's expectation is ignored.
            Read::Expect => {
                expects_continue = http_11 && ows(value).eq_ignore_ascii_case("100-continue")
            }
            Read::Connection => {
                for token in value.split(',').map(str::trim) {
                    connection_close |= token.eq_ignore_ascii_case("close");
                    connection_keep_alive |= token.eq_ignore_ascii_case("keep-alive");
                }
            }
        }
    }
    // RFC 9112 §3.2: an HTTP/1.1 request has exactly one Host; no request has two.
    if hosts_seen > 1 || (http_11 && host.is_none()) {
        return Parsed::Refused(
            400,
            err!(
                SerializationException,
                "An HTTP/1.1 request has exactly one Host header; this one has {hosts_seen}"
            ),
        );
    }
    if let Some(host) = host.filter(|h| !hosts.allows(h)) {
        return Parsed::Refused(
            421,
            err!(
                AccessDeniedException,
                "Host {host:?} does not name this endpoint: it answers requests for localhost, \
                 its loopback addresses and the names in http_hosts only, so that a web page \
                 whose name was pointed at this machine cannot act as you (DNS rebinding)"
            ),
        );
    }
    let chunked = match transfer.map(|t| framing(t, codings, http_11, length.is_some())) {
        None => false,
        Some(Ok(())) => true,
        Some(Err(refused)) => return refused,
    };
    let length = length.unwrap_or(0);
    if length > MAX_BODY {
        return Parsed::Refused(
            413,
            err!(
                ValidationException,
                "The request body is {length} bytes, more than the {MAX_BODY} accepted"
            ),
        );
    }
    let keep_alive = if http_11 {
        !connection_close
    } else {
        connection_keep_alive
    };
    let (body, end) = if chunked {
        let sent = &buf[head_len..];
        let (encoded, decoded) = match chunked::scan(sent) {
            chunked::Scan::Whole { encoded, decoded } => (encoded, decoded),
            // Charged the largest body it may be (and read up to it): what it takes is known
            // only at its end, and charging chunk by chunk would let many chunked requests
            // share out a uid's quota with none of them whole (`quota::next_read`).
            chunked::Scan::Partial => {
                return Parsed::Partial {
                    expects_continue,
                    whole: Some(head_len + MAX_BODY),
                }
            }
            chunked::Scan::Refused(status, e) => return Parsed::Refused(status, e),
        };
        match chunked::decode(sent, encoded, decoded) {
            Ok(data) => (Body::Dechunked(data), head_len + encoded),
            Err(chunked::Scan::Refused(status, e)) => return Parsed::Refused(status, e),
            Err(other) => {
                let e = err!(KMSInternalException, "a chunked body read twice: {other:?}");
                return Parsed::Refused(500, e);
            }
        }
    } else {
        let end = head_len + length;
        if buf.len() < end {
            return Parsed::Partial {
                expects_continue,
                whole: Some(end),
            };
        }
        (Body::Sent(&buf[head_len..end]), end)
    };
    let path = req.path.unwrap_or("/");
    let headers = req.headers.iter().map(|h| (h.name, h.value)).collect();
    Parsed::Whole(Exchange {
        path,
        headers,
        target,
        authorization,
        body,
        keep_alive,
        len: end,
    })
}

/// Whether a request whose `Transfer-Encoding` ends in the coding `last` (of `codings` in all)
/// is framed by chunks that can be read (`Ok`), or the refusal RFC 9112 asks for: 400 where
/// its body's length cannot be told (chunked is not the last coding, §6.3; an HTTP/1.0
/// request, whose framing is then faulty, §6.1; a `Content-Length` beside it, which a proxy
/// in front may have read instead, §6.1), 501 for a coding not served before the chunks.
fn framing(last: &str, codings: usize, http_11: bool, length: bool) -> Result<(), Parsed<'static>> {
    let refuse = |status, why: &str| {
        Err(Parsed::Refused(
            status,
            err!(
                SerializationException,
                "A Transfer-Encoding {why}: send a Content-Length or the chunked coding alone"
            ),
        ))
    };
    if !last.eq_ignore_ascii_case("chunked") {
        refuse(
            400,
            &format!(
                "that does not end in chunked (its last coding is {last:?}) leaves the body's \
                 length untold"
            ),
        )
    } else if !http_11 {
        refuse(400, "is not HTTP/1.0's")
    } else if length {
        refuse(
            400,
            "beside a Content-Length leaves one of the two to frame the body",
        )
    } else if codings > 1 {
        refuse(501, "of another coding before chunked is not served")
    } else {
        Ok(())
    }
}

/// The interim answer to `Expect: 100-continue`.
pub(super) const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// Appends an answer: `status`, AWS's headers (`x-amzn-RequestId` always) and `body`.
pub(super) fn write_answer(
    out: &mut Vec<u8>,
    status: u16,
    request_id: &str,
    body: &[u8],
    close: bool,
) {
    use std::io::Write as _;
    /// Room for the head: it is written into `out` without moving the answers already there.
    const HEAD_ROOM: usize = 256;
    // `out` holds earlier answers (data keys): it never moves without wiping what it leaves.
    crate::secret::reserve_wiping(out, HEAD_ROOM + request_id.len() + body.len());
    // Writing into a Vec cannot fail.
    let _ = write!(
        out,
        "HTTP/1.1 {status} {}\r\nx-amzn-RequestId: {request_id}\r\nContent-Type: {}\r\n\
         Content-Length: {}\r\n{}{}\r\n",
        reason(status),
        crate::protocol::aws_json::CONTENT_TYPE,
        body.len(),
        // RFC 9110 §15.5.6: a 405 names the methods the resource takes.
        if status == 405 { "Allow: POST\r\n" } else { "" },
        if close { "Connection: close\r\n" } else { "" },
    );
    crate::secret::extend_wiping(out, body);
}

/// The headers [`parse`] reads, whose values must be text.
#[derive(Clone, Copy)]
enum Read {
    Host,
    Target,
    Authorization,
    ContentLength,
    TransferEncoding,
    Expect,
    Connection,
}

impl Read {
    /// The header `name` is, if it is read (field names are case-insensitive).
    fn of(name: &str) -> Option<Read> {
        const NAMES: [(&str, Read); 7] = [
            ("host", Read::Host),
            ("x-amz-target", Read::Target),
            ("authorization", Read::Authorization),
            ("content-length", Read::ContentLength),
            ("transfer-encoding", Read::TransferEncoding),
            ("expect", Read::Expect),
            ("connection", Read::Connection),
        ];
        NAMES
            .iter()
            .find(|(n, _)| name.eq_ignore_ascii_case(n))
            .map(|&(_, read)| read)
    }
}

/// The reason phrase of every status the endpoint answers with (RFC 9110's).
fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        405 => "Method Not Allowed",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        421 => "Misdirected Request",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

/// `value` without the blanks (SP, HTAB) HTTP allows around a field's value or a list's item.
/// `str::trim` would also drop Unicode blanks (U+00A0, which httparse passes as obs-text), so
/// that `chunked\u{a0}` read as `chunked` here and as an unknown coding to a proxy in front.
fn ows(value: &str) -> &str {
    value.trim_matches([' ', '\t'])
}

/// A `Content-Length` value: digits only (RFC 9110's `1*DIGIT`). `str::parse` would also take
/// a leading `+`, which a proxy in front could read otherwise, framing the body differently.
fn content_length(value: &str) -> Option<usize> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_status_the_endpoint_answers_with_has_its_own_reason_phrase() {
        let refusals = [400, 405, 413, 421, 431, 500, 501];
        let kinds = crate::ErrorKind::ALL.iter().map(|k| k.http_status());
        for status in kinds.chain(refusals).chain([200]) {
            assert_ne!(super::reason(status), "Error", "{status}");
        }
    }

    use super::*;
    use crate::ErrorKind;

    fn post(body: &str, extra: &str) -> String {
        format!(
            "POST / HTTP/1.1\r\nHost: localhost:4599\r\nX-Amz-Target: TrentService.ListKeys\r\n{extra}\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
    }

    #[test]
    fn a_whole_request_gives_its_target_body_and_length_and_the_next_one_follows() {
        let two = format!("{}{}", post("{}", ""), post("{\"Limit\":5}", ""));
        let Parsed::Whole(first) = parse(two.as_bytes(), &Hosts::default()) else {
            panic!("not whole")
        };
        assert_eq!(first.target, Some("TrentService.ListKeys"));
        assert_eq!(&*first.body, b"{}");
        assert!(first.keep_alive);
        let Parsed::Whole(second) = parse(&two.as_bytes()[first.len..], &Hosts::default()) else {
            panic!("not whole")
        };
        assert_eq!(&*second.body, b"{\"Limit\":5}");
    }

    /// A request for ListKeys whose body is sent in chunks, with these framing headers.
    fn chunked(framing: &str, chunks: &str) -> String {
        format!(
            "POST / HTTP/1.1\r\nHost: localhost\r\nX-Amz-Target: TrentService.ListKeys\r\n\
             {framing}\r\n{chunks}"
        )
    }

    #[test]
    fn a_chunked_body_is_read_as_its_chunks_data_and_the_next_request_follows() {
        let first = chunked(
            "Transfer-Encoding: Chunked\r\n",
            "3\r\n{\"L\r\n8;x=1\r\nimit\":5}\r\n0\r\n\r\n",
        );
        let two = format!("{first}{}", post("{}", ""));
        let Parsed::Whole(ex) = parse(two.as_bytes(), &Hosts::default()) else {
            panic!("not whole")
        };
        assert_eq!(&*ex.body, b"{\"Limit\":5}");
        assert!(matches!(ex.body, Body::Dechunked(_)));
        assert_eq!(ex.len, first.len());
        assert!(ex.keep_alive);
        let Parsed::Whole(next) = parse(&two.as_bytes()[ex.len..], &Hosts::default()) else {
            panic!("not whole")
        };
        assert_eq!(&*next.body, b"{}");
        // The body's bytes are not in its Debug.
        assert!(!format!("{ex:?}").contains("imit"), "{ex:?}");
    }

    #[test]
    fn a_chunked_request_in_pieces_is_partial_and_charged_the_largest_body_it_may_be() {
        let whole = chunked(
            "Transfer-Encoding: chunked\r\nExpect: 100-continue\r\n",
            "b\r\n{\"Limit\":5}\r\n0\r\n\r\n",
        );
        let head_end = whole.find("\r\n\r\n").unwrap() + 4;
        for cut in head_end..whole.len() {
            match parse(&whole.as_bytes()[..cut], &Hosts::default()) {
                Parsed::Partial {
                    expects_continue: true,
                    whole: Some(n),
                } => assert_eq!(n, head_end + MAX_BODY, "cut {cut}"),
                other => panic!("cut {cut}: {other:?}"),
            }
        }
        assert!(matches!(
            parse(whole.as_bytes(), &Hosts::default()),
            Parsed::Whole(_)
        ));
    }

    #[test]
    fn empty_items_of_the_transfer_encoding_list_are_skipped_as_rfc_9110_asks() {
        let body = "2\r\n{}\r\n0\r\n\r\n";
        for framing in [
            "Transfer-Encoding: chunked ,\r\n",
            "Transfer-Encoding: , chunked\r\n",
            "Transfer-Encoding: ,\r\nTransfer-Encoding: chunked\r\n",
            "Transfer-Encoding: chunked\r\nTransfer-Encoding: ,\r\n",
        ] {
            let request = chunked(framing, body);
            let parsed = parse(request.as_bytes(), &Hosts::default());
            assert!(
                matches!(&parsed, Parsed::Whole(ex) if &*ex.body == b"{}"),
                "{framing:?}: {parsed:?}"
            );
        }
        let empty = chunked("Transfer-Encoding: ,\r\n", body);
        let parsed = parse(empty.as_bytes(), &Hosts::default());
        assert!(matches!(parsed, Parsed::Refused(400, _)), "{parsed:?}");
    }

    #[test]
    fn a_transfer_coding_that_cannot_be_read_or_beside_a_length_is_refused_as_rfc_9112_asks() {
        let body = "2\r\n{}\r\n0\r\n\r\n";
        for (framing, status, why) in [
            (
                "Transfer-Encoding: gzip\r\n",
                400,
                "does not end in chunked",
            ),
            (
                "Transfer-Encoding: chunked, gzip\r\n",
                400,
                "does not end in chunked",
            ),
            (
                "Transfer-Encoding: gzip, chunked\r\n",
                501,
                "before chunked",
            ),
            (
                "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n",
                501,
                "before chunked",
            ),
            (
                "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
                501,
                "before chunked",
            ),
            (
                "Transfer-Encoding: chunked\r\nContent-Length: 12\r\n",
                400,
                "beside a Content-Length",
            ),
            (
                "Content-Length: 12\r\nTransfer-Encoding: chunked\r\n",
                400,
                "beside a Content-Length",
            ),
            // Only SP and HTAB are blanks around a coding: a proxy reads no other.
            (
                "Transfer-Encoding: chunked\u{a0}\r\n",
                400,
                "does not end in chunked",
            ),
            (
                "Transfer-Encoding: \u{2003}chunked\r\n",
                400,
                "does not end in chunked",
            ),
        ] {
            match parse(chunked(framing, body).as_bytes(), &Hosts::default()) {
                Parsed::Refused(s, e) => {
                    assert_eq!((s, e.kind()), (status, ErrorKind::SerializationException));
                    assert!(e.message().contains(why), "{framing:?}: {}", e.message());
                }
                other => panic!("{framing:?}: {other:?}"),
            }
        }
        let old = format!("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n{body}");
        let parsed = parse(old.as_bytes(), &Hosts::default());
        assert!(
            matches!(&parsed, Parsed::Refused(400, e) if e.message().contains("HTTP/1.0")),
            "{parsed:?}"
        );
        // Bad chunks are the chunk reader's refusal, passed on.
        let bad = chunked("Transfer-Encoding: chunked\r\n", "2\r\n{}}\r\n0\r\n\r\n");
        let parsed = parse(bad.as_bytes(), &Hosts::default());
        assert!(matches!(parsed, Parsed::Refused(400, _)), "{parsed:?}");
    }

    #[test]
    fn a_request_in_pieces_is_partial_until_its_body_is_there() {
        let whole = post("{\"Limit\":5}", "Expect: 100-continue\r\n");
        let head_end = whole.find("\r\n\r\n").unwrap() + 4;
        assert!(matches!(
            parse(&whole.as_bytes()[..10], &Hosts::default()),
            Parsed::Partial {
                expects_continue: false,
                whole: None,
            }
        ));
        // Once the head is whole, so is the request's length.
        let len = whole.len();
        assert!(matches!(
            parse(&whole.as_bytes()[..head_end], &Hosts::default()),
            Parsed::Partial {
                expects_continue: true,
                whole: Some(n),
            } if n == len
        ));
        assert!(matches!(
            parse(whole.as_bytes(), &Hosts::default()),
            Parsed::Whole(_)
        ));
    }

    #[test]
    fn what_cannot_be_served_is_refused_with_a_status_and_an_aws_error() {
        let cases: Vec<(String, u16, ErrorKind)> = vec![
            (
                "GET / HTTP/1.1\r\n\r\n".into(),
                405,
                ErrorKind::UnknownOperationException,
            ),
            (
                format!(
                    "POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n",
                    MAX_BODY + 1
                ),
                413,
                ErrorKind::ValidationException,
            ),
            (
                "POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n".into(),
                400,
                ErrorKind::SerializationException,
            ),
            // A line of the head ending in a bare LF: the request line, a field, the last.
            (
                "POST / HTTP/1.1\nHost: localhost\r\nContent-Length: 2\r\n\r\n{}".into(),
                400,
                ErrorKind::SerializationException,
            ),
            (
                "POST / HTTP/1.1\r\nHost: localhost\nContent-Length: 2\r\n\r\n{}".into(),
                400,
                ErrorKind::SerializationException,
            ),
            (
                "POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 2\r\n\n{}".into(),
                400,
                ErrorKind::SerializationException,
            ),
            // Digits only: a sign, a blank or nothing is no length.
            (
                "POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: +2\r\n\r\n{}".into(),
                400,
                ErrorKind::SerializationException,
            ),
            (
                "POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1 1\r\n\r\n{}".into(),
                400,
                ErrorKind::SerializationException,
            ),
            (
                "POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: \r\n\r\n{}".into(),
                400,
                ErrorKind::SerializationException,
            ),
            (
                "POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 2\u{a0}\r\n\r\n{}"
                    .into(),
                400,
                ErrorKind::SerializationException,
            ),
            (
                "POST / HT\0TP/1.1\r\n\r\n".into(),
                400,
                ErrorKind::SerializationException,
            ),
            (
                format!("POST / HTTP/1.1\r\nX-Pad: {}", "a".repeat(MAX_HEAD + 1)),
                431,
                ErrorKind::ValidationException,
            ),
            (
                format!(
                    "POST / HTTP/1.1\r\nHost: localhost\r\n{}\r\n",
                    "X-Many: a\r\n".repeat(MAX_HEADERS)
                ),
                431,
                ErrorKind::ValidationException,
            ),
        ];
        for (input, status, kind) in cases {
            match parse(input.as_bytes(), &Hosts::default()) {
                Parsed::Refused(s, e) => {
                    assert_eq!((s, e.kind()), (status, kind), "{input:.60}");
                }
                other => panic!("{input:.60}: {other:?}"),
            }
        }
    }

    /// A whole request for `host` (None: no Host header) in `version`.
    fn for_host(version: &str, host: Option<&str>) -> String {
        let host = host.map(|h| format!("Host: {h}\r\n")).unwrap_or_default();
        format!(
            "POST / {version}\r\n{host}X-Amz-Target: TrentService.ListKeys\r\n\
             Content-Length: 2\r\n\r\n{{}}"
        )
    }

    #[test]
    fn a_request_is_served_only_when_its_host_names_this_machine() {
        let hosts = Hosts::new(" kms.internal. , ,Other.Example");
        for host in [
            "localhost",
            "LOCALHOST:4599",
            "localhost.",
            "kms.localhost:80",
            "127.0.0.1:4599",
            "127.3.2.1",
            "[::1]:4599",
            "[::1]",
            "kms.internal:4599",
            "other.example",
        ] {
            let request = for_host("HTTP/1.1", Some(host));
            let parsed = parse(request.as_bytes(), &hosts);
            assert!(matches!(parsed, Parsed::Whole(_)), "{host}: {parsed:?}");
        }
        // A page's own name, re-pointed at 127.0.0.1, and the look-alikes.
        for host in [
            "attacker.example:4599",
            "localhost.attacker.example",
            "127.0.0.1.attacker.example",
            "localhostx",
            "0.0.0.0:4599",
            "10.0.0.1",
            "[::2]:4599",
            "[::1]x",
            "::1",
            "localhost:http",
            "",
            "kms.internal.attacker.example",
        ] {
            match parse(for_host("HTTP/1.1", Some(host)).as_bytes(), &hosts) {
                Parsed::Refused(status, e) => {
                    assert_eq!((status, e.kind()), (421, ErrorKind::AccessDeniedException));
                    assert!(e.message().contains("DNS rebinding"), "{}", e.message());
                }
                other => panic!("{host:?} served: {other:?}"),
            }
        }
        // The configured names are this daemon's only.
        let request = for_host("HTTP/1.1", Some("kms.internal"));
        let parsed = parse(request.as_bytes(), &Hosts::default());
        assert!(matches!(parsed, Parsed::Refused(421, _)), "{parsed:?}");
    }

    #[test]
    fn a_header_read_as_text_that_is_not_utf8_is_refused_naming_it_and_its_bytes() {
        let hosts = Hosts::default();
        for (name, value) in [
            ("Host", &b"local\xffhost"[..]),
            ("Content-Length", b"1\xfe"),
            ("connection", b"keep-alive\xc3"),
        ] {
            let mut request = b"POST / HTTP/1.1\r\nHost: localhost\r\n".to_vec();
            if name == "Host" {
                request = b"POST / HTTP/1.1\r\n".to_vec();
            }
            request.extend_from_slice(format!("{name}: ").as_bytes());
            request.extend_from_slice(value);
            request.extend_from_slice(b"\r\nX-Amz-Target: TrentService.ListKeys\r\n\r\n");
            match parse(&request, &hosts) {
                Parsed::Refused(400, e) => {
                    assert_eq!(e.kind(), ErrorKind::SerializationException);
                    let m = e.message();
                    assert!(m.contains(&format!("The {name} header")), "{m}");
                    assert!(m.contains("not UTF-8") && m.contains('\u{fffd}'), "{m}");
                }
                other => panic!("{name}: {other:?}"),
            }
        }
        // A header the endpoint does not read may carry any bytes (a signature covers them).
        let request = b"POST / HTTP/1.1\r\nHost: localhost\r\nX-Other: \xff\r\n\
                        Content-Length: 0\r\n\r\n";
        assert!(matches!(parse(request, &hosts), Parsed::Whole(_)));
    }

    #[test]
    fn an_http_11_request_has_exactly_one_host_and_http_10_may_have_none() {
        let hosts = Hosts::default();
        let request = for_host("HTTP/1.1", None);
        let missing = parse(request.as_bytes(), &hosts);
        assert!(
            matches!(&missing, Parsed::Refused(400, e) if e.kind() == ErrorKind::SerializationException),
            "{missing:?}"
        );
        let two = "POST / HTTP/1.0\r\nHost: localhost\r\nHost: localhost\r\n\
                   Content-Length: 0\r\n\r\n";
        assert!(matches!(
            parse(two.as_bytes(), &hosts),
            Parsed::Refused(400, _)
        ));
        let request = for_host("HTTP/1.0", None);
        assert!(matches!(
            parse(request.as_bytes(), &hosts),
            Parsed::Whole(_)
        ));
        // An HTTP/1.0 request that names a host is held to it all the same.
        let request = for_host("HTTP/1.0", Some("attacker.example"));
        let named = parse(request.as_bytes(), &hosts);
        assert!(matches!(named, Parsed::Refused(421, _)), "{named:?}");
    }

    #[test]
    fn an_http_10_request_is_not_told_to_continue() {
        let head = "POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n";
        assert!(matches!(
            parse(head.as_bytes(), &Hosts::default()),
            Parsed::Partial {
                expects_continue: false,
                whole: Some(_),
            }
        ));
    }

    #[test]
    fn connection_close_and_http_10_end_the_connection_after_the_answer() {
        let close = post("{}", "Connection: close\r\n");
        let Parsed::Whole(e) = parse(close.as_bytes(), &Hosts::default()) else {
            panic!()
        };
        assert!(!e.keep_alive);
        let old = "POST / HTTP/1.0\r\nContent-Length: 0\r\n\r\n";
        let Parsed::Whole(e) = parse(old.as_bytes(), &Hosts::default()) else {
            panic!()
        };
        assert!(!e.keep_alive);
        let old = "POST / HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n";
        let Parsed::Whole(e) = parse(old.as_bytes(), &Hosts::default()) else {
            panic!()
        };
        assert!(e.keep_alive);
    }

    #[test]
    fn an_answer_has_the_request_id_content_type_and_length() {
        let mut out = Vec::new();
        write_answer(&mut out, 200, "rid-1", b"{}", false);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
        assert!(text.contains("x-amzn-RequestId: rid-1\r\n"));
        assert!(text.contains("Content-Type: application/x-amz-json-1.1\r\n"));
        assert!(text.ends_with("Content-Length: 2\r\n\r\n{}"), "{text}");
        assert!(!text.contains("Allow:"), "{text}");
    }

    #[test]
    fn a_405_answer_names_the_method_the_endpoint_takes() {
        let mut out = Vec::new();
        write_answer(&mut out, 405, "rid-1", b"{}", true);
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"),
            "{text}"
        );
        assert!(text.contains("\r\nAllow: POST\r\n"), "{text}");
    }
}
