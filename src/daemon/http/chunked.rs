//! The chunked transfer coding of a request body (RFC 9112 §7.1), which every HTTP/1.1
//! recipient must be able to read: a client streaming its body (an SDK given a reader, `curl`
//! with `Transfer-Encoding: chunked`) sends it so, with no `Content-Length`.
//!
//! Why its own file: it is the second way a body is framed, and hostile input arrives there as
//! well (chunk sizes past any buffer, endless extensions or trailers, a chunk not ended where
//! its size says). It is pure, as the head's parser is: bytes in; a body's length, decoded
//! bytes or a refusal out.
//!
//! A body is read by one walk over its chunks, twice: while it arrives, to check its framing
//! and tell when it is whole (its length is known only then: until then the request is
//! charged the largest body it may be, `exchange::parse`); once whole, to copy its data into a
//! buffer of exactly its length, wiped when dropped (a body carries plaintexts). The encoded body (chunk sizes,
//! extensions and trailers included) is held to the same [`MAX_BODY`] as a `Content-Length`
//! one, so that framing cannot make a request larger than the buffer the connection may hold
//! (the decoded data is never longer than its encoding), and its framing to [`MAX_FRAMING`],
//! so that the walk, repeated as the body arrives, costs what parsing a head does. Chunk
//! extensions are ignored, as the RFC allows, and so are trailer fields (none has a meaning
//! for the AWS JSON protocol).

use super::exchange::{MAX_BODY, MAX_HEAD, MAX_HEADERS};
use crate::err;
use crate::error::KmsError;
use crate::secret::SecretBytes;

/// Bytes of framing a chunked body may carry besides its data (its chunk size lines with
/// their extensions, the CRLF after each chunk's data, the last chunk and the trailers): what
/// a request's head may take. A body of 1 MiB sent in chunks of 512 bytes or more (each with
/// about 7 bytes of framing) stays within it.
pub(super) const MAX_FRAMING: usize = MAX_HEAD;

/// Where the chunked body at the start of a buffer stands.
#[derive(Debug)]
pub(super) enum Scan {
    /// Not whole yet (its length is not known until it is: the request is charged the largest
    /// body it may be meanwhile).
    Partial,
    /// Whole: its encoding takes `encoded` bytes (the last chunk and trailers included), and
    /// its data `decoded`.
    Whole { encoded: usize, decoded: usize },
    /// Not a body that can be read: answer with this status and error, then close.
    Refused(u16, KmsError),
}

/// Checks the chunked body at the start of `buf` (the bytes after the request's head).
pub(super) fn scan(buf: &[u8]) -> Scan {
    walk(buf, None)
}

/// The data of a body [`scan`] found whole (`encoded` and `decoded` as it gave them), in a
/// buffer of its own, wiped when dropped.
pub(super) fn decode(buf: &[u8], encoded: usize, decoded: usize) -> Result<SecretBytes, Scan> {
    let mut out = SecretBytes::zeroed(decoded);
    match walk(&buf[..encoded], Some(out.expose_mut())) {
        Scan::Whole { .. } => Ok(out),
        // Not reached for a body `scan` found whole: the walk reads the same bytes.
        other => Err(other),
    }
}

/// The walk over the chunks of `buf`: with `out`, each chunk's data is copied there, in order
/// (`out` is as long as the data).
///
/// The encoding may not outgrow the largest body, nor its framing [`MAX_FRAMING`]: both are
/// checked where a chunk or the trailers end, and while the body is partial (everything
/// buffered then belongs to it). The framing bound is what makes the walk cheap enough to
/// repeat each time more of the body arrives: it steps over each chunk's data unread, and
/// reads at most as many framing bytes as parsing a head does.
fn walk(buf: &[u8], mut out: Option<&mut Vec<u8>>) -> Scan {
    let mut at = 0;
    let mut decoded = 0;
    loop {
        let (line, size) = match httparse::parse_chunk_size(&buf[at..]) {
            Ok(httparse::Status::Complete(found)) => found,
            Ok(httparse::Status::Partial) => return partial(buf, buf.len() - decoded),
            Err(httparse::InvalidChunkSize) => {
                return malformed(
                    at,
                    "a chunk size line that is not a hexadecimal number and CRLF",
                )
            }
        };
        // httparse reads an empty size as 0: RFC 9112's chunk-size is 1*HEXDIG.
        if !buf[at].is_ascii_hexdigit() {
            return malformed(at, "a chunk without its size");
        }
        // httparse takes any byte but CR in an extension: a bare LF there would end the line
        // for a reader in front that is laxer about line ends, framing the body its own way.
        if let Some(i) = buf[at..at + line - 2].iter().position(|&b| is_control(b)) {
            return malformed(at + i, "a control character in a chunk size line");
        }
        let data = at + line;
        if size == 0 {
            return trailers(buf, data, decoded);
        }
        // Bounded by MAX_BODY first, so that the sum below cannot overflow.
        let Some(end) = usize::try_from(size)
            .ok()
            .filter(|&s| s <= MAX_BODY)
            .map(|s| data + s)
        else {
            return too_large();
        };
        if end + 2 > MAX_BODY {
            return too_large();
        }
        // The framing so far: every size line, and the CRLF after each chunk's data.
        let framing = data + 2 - decoded;
        if buf.len() < end + 2 {
            return partial(buf, framing);
        }
        if framing > MAX_FRAMING {
            return too_much_framing();
        }
        if &buf[end..end + 2] != b"\r\n" {
            return malformed(end, "a chunk longer than its size");
        }
        if let Some(out) = out.as_deref_mut() {
            out[decoded..decoded + (end - data)].copy_from_slice(&buf[data..end]);
        }
        decoded += end - data;
        at = end + 2;
    }
}

/// After the last chunk: trailer fields up to an empty line (read as header fields, and
/// ignored).
fn trailers(buf: &[u8], from: usize, decoded: usize) -> Scan {
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    match httparse::parse_headers(&buf[from..], &mut fields) {
        Ok(httparse::Status::Complete((len, _))) => {
            let encoded = from + len;
            if let Some(at) = super::exchange::bare_lf(&buf[from..encoded]) {
                return malformed(from + at, "a trailer line ending in a bare LF");
            }
            if encoded > MAX_BODY {
                too_large()
            } else if encoded - decoded > MAX_FRAMING {
                too_much_framing()
            } else {
                Scan::Whole { encoded, decoded }
            }
        }
        Ok(httparse::Status::Partial) => partial(buf, buf.len() - decoded),
        Err(e) => malformed(from, &format!("trailer fields that do not parse ({e})")),
    }
}

/// Not whole, unless what is buffered already takes the largest body (it needs at least one
/// byte more), or `framing` (the framing bytes buffered) outgrew the framing allowed.
fn partial(buf: &[u8], framing: usize) -> Scan {
    if buf.len() >= MAX_BODY {
        too_large()
    } else if framing > MAX_FRAMING {
        too_much_framing()
    } else {
        Scan::Partial
    }
}

/// A control character, HTAB excepted (RFC 9110's field values allow no other).
fn is_control(b: u8) -> bool {
    (b < 0x20 && b != b'\t') || b == 0x7f
}

fn too_large() -> Scan {
    Scan::Refused(
        413,
        err!(
            ValidationException,
            "The chunked request body takes more than {MAX_BODY} bytes as sent"
        ),
    )
}

fn too_much_framing() -> Scan {
    Scan::Refused(
        413,
        err!(
            ValidationException,
            "The chunked request body's framing (chunk sizes, extensions and trailers) takes more \
             than {MAX_FRAMING} bytes: send it in fewer chunks"
        ),
    )
}

fn malformed(at: usize, what: &str) -> Scan {
    Scan::Refused(
        400,
        err!(
            SerializationException,
            "Malformed chunked request body: {what} at byte {at} of the body"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    /// The data of `encoded`, or what the walk said of it.
    fn read(encoded: &[u8]) -> Result<Vec<u8>, Scan> {
        match scan(encoded) {
            Scan::Whole {
                encoded: len,
                decoded,
            } => Ok(decode(encoded, len, decoded)?.expose().to_vec()),
            other => Err(other),
        }
    }

    #[test]
    fn chunks_are_joined_and_extensions_and_trailers_skipped() {
        let body = b"5\r\n{\"Lim\r\nA;name=\"v\"\r\nit\":5}    \r\n0\r\nX-Checksum: abc\r\n\r\n";
        assert_eq!(read(body).unwrap(), b"{\"Limit\":5}    ");
        // Sizes in either case, and a body of no chunk but the last.
        assert_eq!(
            read(b"a\r\n0123456789\r\n0\r\n\r\n").unwrap(),
            b"0123456789"
        );
        assert_eq!(
            read(b"A\r\n0123456789\r\n0\r\n\r\n").unwrap(),
            b"0123456789"
        );
        assert_eq!(read(b"0\r\n\r\n").unwrap(), b"");
        assert_eq!(read(b"1;\ta\t=\tb\r\nx\r\n0\r\n\r\n").unwrap(), b"x");
    }

    #[test]
    fn the_encoding_ends_at_the_empty_line_after_the_last_chunk_and_the_next_request_follows() {
        let body = b"2\r\n{}\r\n0\r\n\r\nPOST / HTTP/1.1\r\n";
        assert!(matches!(
            scan(body),
            Scan::Whole {
                encoded: 12,
                decoded: 2
            }
        ));
    }

    #[test]
    fn a_body_cut_anywhere_is_partial_and_whole_only_at_its_end() {
        let body = b"10;a=b\r\n0123456789abcdef\r\n0\r\nX: y\r\n\r\n";
        for cut in 0..body.len() {
            let scanned = scan(&body[..cut]);
            assert!(
                matches!(scanned, Scan::Partial),
                "cut at {cut}: {scanned:?}"
            );
        }
        assert!(matches!(read(body), Ok(d) if d == b"0123456789abcdef"));
    }

    #[test]
    fn framing_past_what_a_head_may_take_is_refused_whether_partial_or_whole() {
        let framing =
            |s: Scan| matches!(s, Scan::Refused(413, e) if e.message().contains("fewer chunks"));
        // Each chunk of one byte brings five bytes of framing.
        let chunks = MAX_FRAMING / 5 + 1;
        let tiny = b"1\r\nx\r\n".repeat(chunks);
        assert!(framing(scan(&tiny)));
        assert!(framing(scan(&[&tiny[..], b"0\r\n\r\n"].concat())));
        // One fewer is read.
        let fewer = [&tiny[..6 * (chunks - 2)], b"0\r\n\r\n"].concat();
        assert_eq!(read(&fewer).unwrap().len(), chunks - 2);
        // An endless extension, or endless trailers, partial or whole.
        let ext = format!("1;{}", "e".repeat(MAX_FRAMING));
        assert!(framing(scan(ext.as_bytes())));
        let trailer = format!("0\r\nX-Pad: {}\r\n", "p".repeat(MAX_FRAMING));
        assert!(framing(scan(trailer.as_bytes())));
        assert!(framing(scan(format!("{trailer}\r\n").as_bytes())));
    }

    #[test]
    fn bad_framing_is_refused_naming_where_it_went_wrong() {
        for (body, what) in [
            (&b"x\r\n"[..], "not a hexadecimal number"),
            (b"\r\n{}\r\n0\r\n\r\n", "without its size"),
            (b";ext\r\n{}\r\n0\r\n\r\n", "without its size"),
            (b"2\r\n{}}\r\n0\r\n\r\n", "longer than its size"),
            (b"2\n{}\r\n0\r\n\r\n", "not a hexadecimal number"),
            (b"2\r\n{}\r\n0\r\nno colon\r\n\r\n", "trailer fields"),
            (b"12345678901234567\r\n", "not a hexadecimal number"),
            // A bare LF, a NUL or a DEL in an extension (an HTAB is a blank, and taken).
            (
                b"1;a\nGET / HTTP/1.1\r\nx\r\n0\r\n\r\n",
                "control character",
            ),
            (b"1;a\0\r\nx\r\n0\r\n\r\n", "control character"),
            // A bare LF ending a trailer line, or the trailers' last line.
            (b"1\r\nx\r\n0\r\nA: b\n\r\n", "bare LF"),
            (b"1\r\nx\r\n0\r\n\n", "bare LF"),
            (b"1;a\x7f\r\nx\r\n0\r\n\r\n", "control character"),
        ] {
            match scan(body) {
                Scan::Refused(400, e) => {
                    assert_eq!(e.kind(), ErrorKind::SerializationException);
                    assert!(e.message().contains(what), "{body:?}: {}", e.message());
                }
                other => panic!("{body:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn an_encoding_past_the_largest_body_is_refused_before_it_is_buffered() {
        let refused = |s: Scan| matches!(s, Scan::Refused(413, e) if e.kind() == ErrorKind::ValidationException);
        // A size past the limit, or past what a u64 holds in usize terms, at its line.
        assert!(refused(scan(format!("{:x}\r\n", MAX_BODY + 1).as_bytes())));
        assert!(refused(scan(b"fffffffffffffff\r\n")));
        // Framing counts: a chunk of the limit's size leaves no room for its size line.
        assert!(refused(scan(format!("{MAX_BODY:x}\r\n").as_bytes())));
        // A chunk whose end would pass the limit, at its size line.
        assert!(refused(scan(format!("{:x}\r\n", MAX_BODY - 7).as_bytes())));
        // A body cut where it takes the limit whole needs a byte more: refused, not waited for.
        let mut cut = format!("{:x}\r\n", MAX_BODY - 16).into_bytes();
        cut.resize(MAX_BODY - 9, b'z');
        cut.extend_from_slice(b"\r\n0\r\nX: ");
        cut.resize(MAX_BODY, b'a');
        assert!(refused(scan(&cut)));
        assert!(matches!(scan(&cut[..MAX_BODY - 1]), Scan::Partial));
        // The largest body that fits whole is read.
        let size = MAX_BODY - 16;
        let mut whole = format!("{size:x}\r\n").into_bytes();
        whole.resize(whole.len() + size, b'y');
        whole.extend_from_slice(b"\r\n0\r\n\r\n");
        assert!(whole.len() <= MAX_BODY);
        assert_eq!(read(&whole).unwrap().len(), size);
    }
}
