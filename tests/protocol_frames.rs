//! Frame validation: every way a frame can be wrong gets its typed error.

use kmscks::api::kms::{
    DecryptResponse, EncryptRequest, EncryptResponse, GenerateDataKeyRequest, KeyIdRequest,
};
use kmscks::ops::{Op, Request, Response};
use kmscks::protocol::*;
use kmscks::secret::SecretBytes;
use kmscks::types::{DataKeySpec, EncryptionAlgorithm};
use kmscks::{ErrorKind, KmsError};

fn frame(op: u16, id: u64, status: u32, body: &[u8]) -> Vec<u8> {
    let mut v = Header::new(op, id, status, body.len() as u32)
        .to_bytes()
        .to_vec();
    v.extend_from_slice(body);
    v
}

fn encrypt_req() -> Request {
    let mut r = EncryptRequest {
        key_id: "alias/demo".into(),
        plaintext: SecretBytes::from_slice(b"attack at dawn"),
        ..Default::default()
    };
    r.encryption_context.insert("purpose".into(), "test".into());
    Request::Encrypt(r)
}

#[test]
fn header_layout_is_little_endian_at_fixed_offsets() {
    let h = Header::new(0x0102, 0x0807060504030201, 0x0c0b0a09, 0x100f0e0d);
    let b = h.to_bytes();
    assert_eq!(&b[0..4], b"KMSC");
    assert_eq!(b[4], VERSION);
    assert_eq!(b[5], 0);
    assert_eq!(&b[6..8], &[0x02, 0x01]);
    assert_eq!(&b[8..16], &[1, 2, 3, 4, 5, 6, 7, 8]);
    assert_eq!(&b[16..20], &[9, 10, 11, 12]);
    assert_eq!(&b[20..24], &[13, 14, 15, 16]);
    // body_len 0x100f0e0d is far over MAX_BODY
    assert_eq!(
        parse_header(&b),
        Err(ProtocolError::BodyTooLarge(0x100f0e0d))
    );
}

#[test]
fn short_input_waits_and_bad_prefixes_fail_early() {
    let full = Header::new(Op::Encrypt.code(), 7, 0, 3).to_bytes();
    for n in 0..HEADER_LEN {
        assert_eq!(parse_header(&full[..n]), Ok(None), "prefix of {n} bytes");
    }
    assert_eq!(parse_header(b"X"), Err(ProtocolError::BadMagic));
    assert_eq!(parse_header(b"KMSX"), Err(ProtocolError::BadMagic));
    assert_eq!(
        parse_header(b"GET / HTTP/1.1\r\n"),
        Err(ProtocolError::BadMagic)
    );
    assert_eq!(
        parse_header(b"KMSC\x01"),
        Err(ProtocolError::UnsupportedVersion(1))
    );
    assert_eq!(
        parse_header(&[b'K', b'M', b'S', b'C', VERSION, 0x80]),
        Err(ProtocolError::ReservedFlags(0x80))
    );
    let h = parse_header(&full).unwrap().unwrap();
    assert_eq!((h.op, h.request_id, h.body_len), (Op::Encrypt.code(), 7, 3));
}

#[test]
fn body_length_is_checked_on_the_header() {
    let ok = Header::new(1, 1, 0, MAX_BODY).to_bytes();
    assert_eq!(parse_header(&ok).unwrap().unwrap().body_len, MAX_BODY);
    let big = Header::new(1, 1, 0, MAX_BODY + 1).to_bytes();
    assert_eq!(
        parse_header(&big),
        Err(ProtocolError::BodyTooLarge(MAX_BODY + 1))
    );
    let e = ProtocolError::BodyTooLarge(MAX_BODY + 1).to_error();
    assert_eq!(e.kind(), ErrorKind::SerializationException);
    assert!(e.message().contains("1048577"), "{e}");
}

#[test]
fn unknown_op_hello_op_and_request_status_are_refused() {
    let body = [];
    let h = parse_header(&frame(9999, 1, 0, &body)).unwrap().unwrap();
    assert_eq!(
        decode_request(&h, &body).unwrap_err(),
        ProtocolError::UnknownOp(9999)
    );
    assert_eq!(
        ProtocolError::UnknownOp(9999).to_error().kind(),
        ErrorKind::UnknownOperationException
    );
    let h = parse_header(&frame(OP_HELLO, 1, 0, &body))
        .unwrap()
        .unwrap();
    assert!(matches!(
        decode_request(&h, &body),
        Err(ProtocolError::Malformed(_))
    ));
    let h = parse_header(&frame(Op::ListKeys.code(), 1, 5, &body))
        .unwrap()
        .unwrap();
    assert_eq!(
        decode_request(&h, &body).unwrap_err(),
        ProtocolError::UnexpectedStatus(5)
    );
}

#[test]
fn trailing_truncated_and_garbage_bodies_are_refused() {
    let mut buf = Vec::new();
    encode_request(&mut buf, 3, &encrypt_req());
    let (h, body, used) = split_frame(&buf).unwrap().unwrap();
    assert_eq!(used, buf.len());
    assert!(matches!(decode_request(&h, body), Ok(Request::Encrypt(_))));

    // One extra byte after a valid body.
    let mut long = body.to_vec();
    long.push(0);
    let h2 = Header {
        body_len: long.len() as u32,
        ..h
    };
    assert_eq!(
        decode_request(&h2, &long).unwrap_err(),
        ProtocolError::TrailingBytes {
            op: Op::Encrypt.code(),
            extra: 1
        }
    );
    // Body cut short, with a consistent header.
    let short = &body[..body.len() - 2];
    let h3 = Header {
        body_len: short.len() as u32,
        ..h
    };
    assert!(matches!(
        decode_request(&h3, short),
        Err(ProtocolError::Malformed(_))
    ));
    // Header and body disagree.
    assert!(
        matches!(decode_request(&h, short), Err(ProtocolError::Malformed(m)) if m.contains("announces"))
    );
    // Invalid UTF-8 in the key id string.
    let bad = [2u8, 0xff, 0xfe, 0, 0, 0, 0, 0];
    let h4 = Header {
        body_len: bad.len() as u32,
        ..h
    };
    assert!(matches!(
        decode_request(&h4, &bad),
        Err(ProtocolError::Malformed(_))
    ));
    // A hostile length prefix (2^40 bytes) inside a small body fails without allocating it.
    let hostile = [0xfd, 0, 0, 0, 0, 1, 0, 0, 0];
    let h5 = Header {
        body_len: hostile.len() as u32,
        ..h
    };
    assert!(matches!(
        decode_request(&h5, &hostile),
        Err(ProtocolError::Malformed(_))
    ));
}

#[test]
fn pipelined_frames_split_one_by_one() {
    let mut buf = Vec::new();
    for id in 0..5u64 {
        let r = Request::GenerateDataKey(GenerateDataKeyRequest {
            key_id: format!("alias/k{id}"),
            key_spec: Some(DataKeySpec::Aes256),
            ..Default::default()
        });
        encode_request(&mut buf, id, &r);
    }
    let mut at = 0;
    let mut ids = Vec::new();
    while let Some((h, body, used)) = split_frame(&buf[at..]).unwrap() {
        let Request::GenerateDataKey(r) = decode_request(&h, body).unwrap() else {
            panic!("wrong op")
        };
        assert_eq!(r.key_id, format!("alias/k{}", h.request_id));
        ids.push(h.request_id);
        at += used;
    }
    assert_eq!(ids, vec![0, 1, 2, 3, 4]);
    assert_eq!(at, buf.len());
    // An incomplete frame waits.
    assert_eq!(
        split_frame(&buf[..buf.len() - 1]).unwrap().map(|f| f.2),
        Some(split_frame(&buf).unwrap().unwrap().2)
    );
}

#[test]
fn replies_carry_responses_and_aws_errors() {
    let mut buf = Vec::new();
    let ok: Result<Response, KmsError> = Ok(Response::Encrypt(EncryptResponse {
        ciphertext_blob: vec![1, 2, 3],
        key_id: "arn:aws:kms:us-east-1:111122223333:key/x".into(),
        encryption_algorithm: EncryptionAlgorithm::SymmetricDefault,
    }));
    encode_response(&mut buf, 41, Op::Encrypt.code(), &ok);
    let err = Err(kmscks::err!(
        NotFoundException,
        "Key 'alias/none' does not exist"
    ));
    encode_response(&mut buf, 42, Op::Encrypt.code(), &err);
    let dec: Result<Response, KmsError> = Ok(Response::Decrypt(DecryptResponse {
        key_id: "k".into(),
        plaintext: SecretBytes::from_slice(b"secret"),
        encryption_algorithm: EncryptionAlgorithm::SymmetricDefault,
    }));
    encode_response(&mut buf, 43, Op::Decrypt.code(), &dec);

    let (h, body, n1) = split_frame(&buf).unwrap().unwrap();
    assert_eq!((h.request_id, h.status), (41, 0));
    match decode_response(&h, body).unwrap().unwrap() {
        Response::Encrypt(r) => assert_eq!(r.ciphertext_blob, vec![1, 2, 3]),
        other => panic!("{other:?}"),
    }
    let (h, body, n2) = split_frame(&buf[n1..]).unwrap().unwrap();
    assert_eq!(h.status, ErrorKind::NotFoundException.code());
    let e = decode_response(&h, body).unwrap().unwrap_err();
    assert_eq!(e.aws_name(), "NotFoundException");
    assert_eq!(e.message(), "Key 'alias/none' does not exist");
    let (h, body, _) = split_frame(&buf[n1 + n2..]).unwrap().unwrap();
    match decode_response(&h, body).unwrap().unwrap() {
        Response::Decrypt(r) => assert_eq!(r.plaintext.expose(), b"secret"),
        other => panic!("{other:?}"),
    }

    // An error code this build does not know still surfaces, named.
    let f = frame(Op::Encrypt.code(), 1, 4242, b"from the future");
    let (h, body, _) = split_frame(&f).unwrap().unwrap();
    let e = decode_response(&h, body).unwrap().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::KMSInternalException);
    assert!(e.message().contains("4242") && e.message().contains("from the future"));
    // A non-UTF-8 error message is malformed.
    let f = frame(
        Op::Encrypt.code(),
        1,
        ErrorKind::NotFoundException.code(),
        &[0xff],
    );
    let (h, body, _) = split_frame(&f).unwrap().unwrap();
    assert!(matches!(
        decode_response(&h, body),
        Err(ProtocolError::Malformed(_))
    ));
}

#[test]
fn oversized_requests_and_responses_are_caught_when_encoding() {
    let huge = Request::Decrypt(kmscks::api::kms::DecryptRequest {
        ciphertext_blob: vec![7; MAX_BODY as usize + 10],
        ..Default::default()
    });
    let mut buf = vec![9u8];
    assert!(matches!(
        try_encode_request(&mut buf, 1, &huge),
        Err(ProtocolError::BodyTooLarge(_))
    ));
    assert_eq!(buf, vec![9u8], "nothing appended");

    let resp: Result<Response, KmsError> = Ok(Response::Encrypt(EncryptResponse {
        ciphertext_blob: vec![0; MAX_BODY as usize + 1],
        key_id: "k".into(),
        encryption_algorithm: EncryptionAlgorithm::SymmetricDefault,
    }));
    let mut buf = Vec::new();
    encode_response(&mut buf, 5, Op::Encrypt.code(), &resp);
    let (h, body, _) = split_frame(&buf).unwrap().unwrap();
    assert_eq!(h.request_id, 5);
    let e = decode_response(&h, body).unwrap().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::LimitExceededException);
}

#[test]
fn hello_round_trips_and_is_checked() {
    let mut buf = Vec::new();
    encode_hello(
        &mut buf,
        0,
        &Hello {
            version: VERSION,
            client: "test".into(),
        },
    );
    let (h, body, _) = split_frame(&buf).unwrap().unwrap();
    assert_eq!(h.op, OP_HELLO);
    assert_eq!(decode_hello(&h, body).unwrap().client, "test");
    // A Hello body where an operation is expected, and an operation where Hello is expected.
    let mut other = Vec::new();
    encode_request(
        &mut other,
        1,
        &Request::DescribeKey(KeyIdRequest::default()),
    );
    let (h2, body2, _) = split_frame(&other).unwrap().unwrap();
    assert!(matches!(
        decode_hello(&h2, body2),
        Err(ProtocolError::Malformed(_))
    ));

    let reply = HelloReply {
        version: VERSION,
        server: "kmscksd/test".into(),
        max_body: MAX_BODY,
        max_in_flight: 128,
        principal: "arn:aws:iam::111122223333:root".into(),
    };
    let mut buf = Vec::new();
    encode_hello_reply(&mut buf, 0, &reply);
    let (h, body, _) = split_frame(&buf).unwrap().unwrap();
    assert_eq!(decode_hello_reply(&h, body).unwrap().unwrap(), reply);
    let mut buf = Vec::new();
    encode_protocol_error(&mut buf, 0, OP_HELLO, &ProtocolError::UnsupportedVersion(9));
    let (h, body, _) = split_frame(&buf).unwrap().unwrap();
    let e = decode_hello_reply(&h, body).unwrap().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::SerializationException);
    assert!(e.message().contains("version 9"), "{e}");
}

#[test]
fn docs_list_every_op_code_and_error_code() {
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/protocol.md")).unwrap();
    for &op in Op::ALL {
        let row = format!("| {} | `{}` |", op.code(), op.name());
        assert!(
            doc.contains(&row),
            "docs/protocol.md lacks the op row {row}"
        );
    }
    for &kind in ErrorKind::ALL {
        let row = format!(
            "| {} | `{}` | {} |",
            kind.code(),
            kind.aws_name(),
            kind.http_status()
        );
        assert!(
            doc.contains(&row),
            "docs/protocol.md lacks the status row {row}"
        );
    }
    // And nothing extra: the tables have exactly as many rows as the enums.
    let rows = doc.lines().filter(|l| {
        let mut cells = l.split('|').skip(1);
        let code = cells.next().unwrap_or("").trim();
        let name = cells.next().unwrap_or("").trim();
        !code.is_empty() && code.bytes().all(|b| b.is_ascii_digit()) && name.starts_with('`')
    });
    assert_eq!(rows.count(), Op::ALL.len() + ErrorKind::ALL.len());
}

#[test]
fn documented_encrypt_example_is_what_the_codec_writes() {
    let mut buf = Vec::new();
    let req = Request::Encrypt(EncryptRequest {
        key_id: "alias/demo".into(),
        plaintext: SecretBytes::from_slice(b"hello"),
        ..Default::default()
    });
    encode_request(&mut buf, 7, &req);
    let mut want = vec![
        0x4b, 0x4d, 0x53, 0x43, 6, 0, 0x3c, 0, 7, 0, 0, 0, 0, 0, 0, 0,
    ];
    want.extend_from_slice(&[0, 0, 0, 0, 0x15, 0, 0, 0]);
    want.push(10);
    want.extend_from_slice(b"alias/demo");
    want.push(5);
    want.extend_from_slice(b"hello");
    want.extend_from_slice(&[0, 0, 0, 0]);
    assert_eq!(buf, want);
}
