//! One HTTP/1.1 exchange of the AWS JSON endpoint: the request read off a connection's
//! buffer (head parsed by `httparse`, body by `Content-Length`), and the answer written.
//!
//! Why its own file: framing is where hostile input arrives, so it is kept pure (bytes in,
//! a parsed request or a refusal out) and tested on its own, apart from sockets and the
//! service. Only what the AWS JSON protocol needs is accepted: `POST` with a
//! `Content-Length` body of at most [`MAX_BODY`] bytes and a head of at most [`MAX_HEAD`];
//! chunked bodies, other methods and oversized requests are refused with AWS's error shape,
//! and the connection is closed after a refusal whose body was not read.

use crate::err;
use crate::error::KmsError;

/// Largest request head (request line and headers), in bytes.
pub(super) const MAX_HEAD: usize = 16 << 10;
/// Largest request body, in bytes: the largest KMS request (a 32 KB key policy, a 6 KB
/// ciphertext as base64) with room to spare.
pub(super) const MAX_BODY: usize = 1 << 20;
/// Headers a request may have.
const MAX_HEADERS: usize = 64;

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
    pub body: &'b [u8],
    /// The client keeps the connection open after the answer (HTTP/1.1 without
    /// `Connection: close`, or HTTP/1.0 with `keep-alive`).
    pub keep_alive: bool,
    /// Bytes of the buffer this request took (head and body).
    pub len: usize,
}

/// What the start of a connection's buffer holds.
#[derive(Debug)]
pub(super) enum Parsed<'b> {
    /// Not a whole request yet. `expects_continue`: the head is whole and asked for
    /// `100 Continue` before its body is sent. `whole`: once the head is whole, the bytes the
    /// request takes (head and body), so that they can be charged before the body is read.
    Partial {
        expects_continue: bool,
        whole: Option<usize>,
    },
    /// A whole request.
    Whole(Exchange<'b>),
    /// A request that cannot be served: answer with this status and error, then close.
    Refused(u16, KmsError),
}

/// Reads the request at the start of `buf`.
pub(super) fn parse(buf: &[u8]) -> Parsed<'_> {
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
    let mut target = None;
    let mut authorization = None;
    let mut length = None;
    let mut expects_continue = false;
    let mut connection_close = false;
    let mut connection_keep_alive = false;
    for h in req.headers.iter() {
        // Only the headers read here are checked as text: a request carries several others
        // (a signature covers them as bytes).
        let value = || std::str::from_utf8(h.value).unwrap_or("");
        let name = h.name;
        if name.eq_ignore_ascii_case("x-amz-target") {
            target = Some(value().trim());
        } else if name.eq_ignore_ascii_case("authorization") {
            authorization = Some(value().trim());
        } else if name.eq_ignore_ascii_case("content-length") {
            match content_length(value().trim()) {
                Some(n) if length.is_none_or(|l| l == n) => length = Some(n),
                _ => {
                    return Parsed::Refused(
                        400,
                        err!(SerializationException, "Bad Content-Length: {:?}", value()),
                    )
                }
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Parsed::Refused(
                411,
                err!(
                    SerializationException,
                    "Transfer-Encoding {:?} is not accepted: send a Content-Length",
                    value()
                ),
            );
        } else if name.eq_ignore_ascii_case("expect") {
            expects_continue = value().trim().eq_ignore_ascii_case("100-continue");
        } else if name.eq_ignore_ascii_case("connection") {
            for token in value().split(',').map(str::trim) {
                connection_close |= token.eq_ignore_ascii_case("close");
                connection_keep_alive |= token.eq_ignore_ascii_case("keep-alive");
            }
        }
    }
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
    let http_11 = req.version == Some(1);
    let keep_alive = if http_11 {
        !connection_close
    } else {
        connection_keep_alive
    };
    let end = head_len + length;
    if buf.len() < end {
        return Parsed::Partial {
            expects_continue,
            whole: Some(end),
        };
    }
    let path = req.path.unwrap_or("/");
    let headers = req.headers.iter().map(|h| (h.name, h.value)).collect();
    Parsed::Whole(Exchange {
        path,
        headers,
        target,
        authorization,
        body: &buf[head_len..end],
        keep_alive,
        len: end,
    })
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
         Content-Length: {}\r\n{}\r\n",
        reason(status),
        crate::protocol::aws_json::CONTENT_TYPE,
        body.len(),
        if close { "Connection: close\r\n" } else { "" },
    );
    crate::secret::extend_wiping(out, body);
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        405 => "Method Not Allowed",
        411 => "Length Required",
        413 => "Payload Too Large",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Error",
    }
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
    use super::*;
    use crate::ErrorKind;

    fn post(body: &str, extra: &str) -> String {
        format!(
            "POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: TrentService.ListKeys\r\n{extra}\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
    }

    #[test]
    fn a_whole_request_gives_its_target_body_and_length_and_the_next_one_follows() {
        let two = format!("{}{}", post("{}", ""), post("{\"Limit\":5}", ""));
        let Parsed::Whole(first) = parse(two.as_bytes()) else {
            panic!("not whole")
        };
        assert_eq!(first.target, Some("TrentService.ListKeys"));
        assert_eq!(first.body, b"{}");
        assert!(first.keep_alive);
        let Parsed::Whole(second) = parse(&two.as_bytes()[first.len..]) else {
            panic!("not whole")
        };
        assert_eq!(second.body, b"{\"Limit\":5}");
    }

    #[test]
    fn a_request_in_pieces_is_partial_until_its_body_is_there() {
        let whole = post("{\"Limit\":5}", "Expect: 100-continue\r\n");
        let head_end = whole.find("\r\n\r\n").unwrap() + 4;
        assert!(matches!(
            parse(&whole.as_bytes()[..10]),
            Parsed::Partial {
                expects_continue: false,
                whole: None,
            }
        ));
        // Once the head is whole, so is the request's length.
        let len = whole.len();
        assert!(matches!(
            parse(&whole.as_bytes()[..head_end]),
            Parsed::Partial {
                expects_continue: true,
                whole: Some(n),
            } if n == len
        ));
        assert!(matches!(parse(whole.as_bytes()), Parsed::Whole(_)));
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
                "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n".into(),
                411,
                ErrorKind::SerializationException,
            ),
            (
                format!(
                    "POST / HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
                    MAX_BODY + 1
                ),
                413,
                ErrorKind::ValidationException,
            ),
            (
                "POST / HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n".into(),
                400,
                ErrorKind::SerializationException,
            ),
            // Digits only: a sign, a blank or nothing is no length.
            (
                "POST / HTTP/1.1\r\nContent-Length: +2\r\n\r\n{}".into(),
                400,
                ErrorKind::SerializationException,
            ),
            (
                "POST / HTTP/1.1\r\nContent-Length: 1 1\r\n\r\n{}".into(),
                400,
                ErrorKind::SerializationException,
            ),
            (
                "POST / HTTP/1.1\r\nContent-Length: \r\n\r\n{}".into(),
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
        ];
        for (input, status, kind) in cases {
            match parse(input.as_bytes()) {
                Parsed::Refused(s, e) => {
                    assert_eq!((s, e.kind()), (status, kind), "{input:.60}");
                }
                other => panic!("{input:.60}: {other:?}"),
            }
        }
    }

    #[test]
    fn connection_close_and_http_10_end_the_connection_after_the_answer() {
        let close = post("{}", "Connection: close\r\n");
        let Parsed::Whole(e) = parse(close.as_bytes()) else {
            panic!()
        };
        assert!(!e.keep_alive);
        let old = "POST / HTTP/1.0\r\nContent-Length: 0\r\n\r\n";
        let Parsed::Whole(e) = parse(old.as_bytes()) else {
            panic!()
        };
        assert!(!e.keep_alive);
        let old = "POST / HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n";
        let Parsed::Whole(e) = parse(old.as_bytes()) else {
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
    }
}
