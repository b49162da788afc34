//! The AWS JSON endpoint (`kmscksd --http`) driven over plain TCP as an SDK drives it: AWS's
//! shapes and errors, keep-alive and pipelining, `Expect: 100-continue`, size limits, who a
//! signed request acts as; and, when Python's boto3 is installed, boto3 itself
//! (`tests/http_boto3.py`).

mod http_support;
mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};

use http_support::{start, Daemon};

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s
}

/// The bytes of one request.
fn request(target: &str, body: &str, extra: &str) -> String {
    format!(
        "POST / HTTP/1.1\r\nHost: localhost\r\nX-Amz-Target: {target}\r\n\
         Content-Type: application/x-amz-json-1.1\r\n{extra}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// One answer: status, headers (lower-case names), body as JSON (Null when empty).
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Value,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

fn read_answer(r: &mut impl BufRead) -> Answer {
    let mut status_line = String::new();
    r.read_line(&mut status_line).unwrap();
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .unwrap_or_else(|| panic!("no status in {status_line:?}"))
        .parse()
        .unwrap();
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (n, v) = line.split_once(':').unwrap();
        headers.push((n.to_ascii_lowercase(), v.trim().to_owned()));
    }
    let len: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .map_or(0, |(_, v)| v.parse().unwrap());
    let mut body = vec![0; len];
    r.read_exact(&mut body).unwrap();
    let body = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&body).unwrap()
    };
    Answer {
        status,
        headers,
        body,
    }
}

/// Sends one request on `s` and reads its answer.
fn call(s: &mut BufReader<TcpStream>, target: &str, body: &Value, extra: &str) -> Answer {
    s.get_mut()
        .write_all(request(target, &body.to_string(), extra).as_bytes())
        .unwrap();
    read_answer(s)
}

fn kms(s: &mut BufReader<TcpStream>, op: &str, body: Value) -> Answer {
    call(s, &format!("TrentService.{op}"), &body, "")
}

/// A new key's id.
fn create_key(s: &mut BufReader<TcpStream>) -> String {
    let created = kms(s, "CreateKey", json!({}));
    assert_eq!(created.status, 200, "{}", created.body);
    created.body["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn keys_encrypt_and_decrypt_in_awss_shapes_over_one_kept_alive_connection() {
    let dir = tempfile::tempdir().unwrap();
    let (_d, addr) = start(dir.path(), &[]);
    let mut s = BufReader::new(connect(addr));
    let created = kms(&mut s, "CreateKey", json!({"Description": "http"}));
    assert_eq!(created.status, 200, "{}", created.body);
    assert_eq!(
        created.header("content-type"),
        Some("application/x-amz-json-1.1")
    );
    let key = created.body["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(created.body["KeyMetadata"]["Description"], "http");
    assert!(created.body["KeyMetadata"]["CreationDate"].is_number());
    let ctx = json!({"purpose": "test"});
    let enc = kms(
        &mut s,
        "Encrypt",
        json!({"KeyId": key, "Plaintext": "aGVsbG8=", "EncryptionContext": ctx}),
    );
    assert_eq!(enc.status, 200, "{}", enc.body);
    assert!(enc.body["KeyId"].as_str().unwrap().ends_with(&key));
    let dec = kms(
        &mut s,
        "Decrypt",
        json!({"CiphertextBlob": enc.body["CiphertextBlob"], "EncryptionContext": ctx}),
    );
    assert_eq!(dec.body["Plaintext"], "aGVsbG8=");
    // Every answer has its own request id.
    let ids: Vec<&str> = [&created, &enc, &dec]
        .iter()
        .map(|a| a.header("x-amzn-requestid").unwrap())
        .collect();
    assert!(ids[0] != ids[1] && ids[1] != ids[2], "{ids:?}");
    // A wrong context is AWS's InvalidCiphertextException, status 400.
    let bad = kms(
        &mut s,
        "Decrypt",
        json!({"CiphertextBlob": enc.body["CiphertextBlob"], "EncryptionContext": {"purpose": "other"}}),
    );
    assert_eq!(bad.status, 400);
    assert_eq!(bad.body["__type"], "InvalidCiphertextException");
}

#[test]
fn errors_have_awss_shape_and_the_connection_goes_on_serving() {
    let dir = tempfile::tempdir().unwrap();
    let (_d, addr) = start(dir.path(), &[]);
    let mut s = BufReader::new(connect(addr));
    let cases = [
        (
            "TrentService.DescribeKey",
            r#"{"KeyId":"alias/none"}"#,
            "NotFoundException",
        ),
        ("TrentService.Nope", "{}", "UnknownOperationException"),
        ("BaldrApiService.Encrypt", "{}", "UnknownOperationException"),
        (
            "TrentService.ListKeys",
            "{not json",
            "SerializationException",
        ),
        (
            "TrentService.ListKeys",
            r#"{"Limit":"ten"}"#,
            "SerializationException",
        ),
        (
            "TrentService.ListKeys",
            r#"{"Limit":0}"#,
            "ValidationException",
        ),
        (
            "TrentService.EnableKeyRotation",
            r#"{"KeyId":"alias/none"}"#,
            "NotFoundException",
        ),
        // A required KeyId missing or empty: AWS's validation, before any key is looked for.
        ("TrentService.DescribeKey", "{}", "ValidationException"),
        (
            "TrentService.Encrypt",
            r#"{"Plaintext":"aGk="}"#,
            "ValidationException",
        ),
        (
            "TrentService.GenerateDataKey",
            r#"{"KeyId":"","KeySpec":"AES_256"}"#,
            "ValidationException",
        ),
    ];
    for (target, body, exception) in cases {
        s.get_mut()
            .write_all(request(target, body, "").as_bytes())
            .unwrap();
        let a = read_answer(&mut s);
        assert_eq!(a.status, 400, "{target} {body}: {}", a.body);
        assert_eq!(a.body["__type"], exception, "{target} {body}");
        assert!(a.body["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    assert_eq!(kms(&mut s, "ListKeys", json!({})).status, 200);
}

#[test]
fn an_integer_its_member_cannot_hold_is_awss_validation_error_naming_the_bound_it_crosses() {
    let dir = tempfile::tempdir().unwrap();
    let (_d, addr) = start(dir.path(), &[]);
    let mut s = BufReader::new(connect(addr));
    let crossing = |value: &str, member: &str, bound: &str| {
        format!(
            "1 validation error detected: Value '{value}' at '{member}' failed to satisfy \
             constraint: Member must have value {bound}"
        )
    };
    let cases = [
        (
            "GenerateDataKey",
            json!({"KeyId": "alias/demo", "NumberOfBytes": -5}),
            "ValidationException",
            crossing("-5", "numberOfBytes", "greater than or equal to 1"),
        ),
        (
            "GenerateRandom",
            json!({"NumberOfBytes": -5}),
            "ValidationException",
            crossing("-5", "numberOfBytes", "greater than or equal to 1"),
        ),
        (
            "ListKeys",
            json!({"Limit": -1}),
            "ValidationException",
            crossing("-1", "limit", "greater than or equal to 1"),
        ),
        (
            "ListAliases",
            json!({"Limit": 5_000_000_000_u64}),
            "ValidationException",
            crossing("5000000000", "limit", "less than or equal to 100"),
        ),
        (
            "ScheduleKeyDeletion",
            json!({"KeyId": "alias/demo", "PendingWindowInDays": -5}),
            "ValidationException",
            crossing("-5", "pendingWindowInDays", "greater than or equal to 1"),
        ),
        // Not an integer at all: the body is not the operation's shape.
        (
            "GenerateRandom",
            json!({"NumberOfBytes": 1.5}),
            "SerializationException",
            "The request body is not valid for this operation: invalid type: floating point \
             `1.5`, expected u32 at line 1 column 20"
                .to_owned(),
        ),
    ];
    for (op, body, exception, message) in cases {
        let a = kms(&mut s, op, body.clone());
        assert_eq!(
            (a.status, &a.body),
            (400, &json!({"__type": exception, "message": message})),
            "{op} {body}"
        );
    }
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let (_d, addr) = start(dir.path(), &[]);
    let mut s = BufReader::new(connect(addr));
    let batch = [
        request("TrentService.CreateKey", r#"{"Description":"one"}"#, ""),
        request("TrentService.CreateKey", r#"{"Description":"two"}"#, ""),
        request("TrentService.ListKeys", "{}", ""),
    ]
    .concat();
    s.get_mut().write_all(batch.as_bytes()).unwrap();
    let one = read_answer(&mut s);
    let two = read_answer(&mut s);
    let list = read_answer(&mut s);
    assert_eq!(one.body["KeyMetadata"]["Description"], "one");
    assert_eq!(two.body["KeyMetadata"]["Description"], "two");
    assert_eq!(list.body["Keys"].as_array().unwrap().len(), 2);
}

#[test]
fn a_control_plane_request_answered_off_the_loop_still_comes_before_the_next_ones() {
    let dir = tempfile::tempdir().unwrap();
    let (_d, addr) = start(dir.path(), &[]);
    let mut s = BufReader::new(connect(addr));
    let key = kms(&mut s, "CreateKey", json!({}));
    let key = key.body["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_owned();
    let alias = json!({"AliasName": "alias/ordered", "TargetKeyId": key}).to_string();
    let encrypt = r#"{"KeyId":"alias/ordered","Plaintext":"aGk="}"#;
    let batch = [
        request("TrentService.CreateAlias", &alias, ""),
        request("TrentService.Encrypt", encrypt, ""),
        request(
            "TrentService.DeleteAlias",
            r#"{"AliasName":"alias/ordered"}"#,
            "",
        ),
        request("TrentService.Encrypt", encrypt, ""),
    ]
    .concat();
    s.get_mut().write_all(batch.as_bytes()).unwrap();
    let statuses: Vec<u16> = (0..4).map(|_| read_answer(&mut s).status).collect();
    // Each Encrypt sees the alias change made just before it.
    assert_eq!(statuses, [200, 200, 200, 400]);
}

/// The plaintext member of an answer, decoded.
fn plaintext_of(a: &Answer) -> Vec<u8> {
    use base64::Engine as _;
    let text = a.body["Plaintext"]
        .as_str()
        .unwrap_or_else(|| panic!("no Plaintext: {}", a.body));
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap()
}

#[test]
fn pipelined_data_plane_requests_each_get_their_own_answer_in_order_a_bad_one_its_own_error() {
    let dir = tempfile::tempdir().unwrap();
    let (_d, addr) = start(dir.path(), &[]);
    let mut s = BufReader::new(connect(addr));
    let key = |s: &mut BufReader<TcpStream>| {
        let a = kms(s, "CreateKey", json!({}));
        a.body["KeyMetadata"]["KeyId"].as_str().unwrap().to_owned()
    };
    let (k1, k2) = (key(&mut s), key(&mut s));
    let ctx = json!({"purpose": "pipeline"});
    let sealed = kms(
        &mut s,
        "Encrypt",
        json!({"KeyId": k1, "Plaintext": "c2VhbGVk", "EncryptionContext": ctx}),
    );
    let blob = sealed.body["CiphertextBlob"].clone();
    // One write: runs of GenerateDataKey, Encrypt and Decrypt (each a batch for the engine)
    // with a missing key, a wrong context and a body that is not JSON among them.
    let gdk = |k: &str, n: u32| {
        request(
            "TrentService.GenerateDataKey",
            &json!({"KeyId": k, "NumberOfBytes": n}).to_string(),
            "",
        )
    };
    let pipelined = [
        gdk(&k1, 16),
        gdk(&k1, 32),
        gdk("alias/none", 32),
        gdk(&k2, 48),
        request(
            "TrentService.Encrypt",
            &json!({"KeyId": k1, "Plaintext": "aGVsbG8="}).to_string(),
            "",
        ),
        request(
            "TrentService.Encrypt",
            &json!({"KeyId": k2, "Plaintext": "d29ybGQ="}).to_string(),
            "",
        ),
        request(
            "TrentService.Decrypt",
            &json!({"CiphertextBlob": blob, "EncryptionContext": ctx}).to_string(),
            "",
        ),
        request(
            "TrentService.Decrypt",
            &json!({"CiphertextBlob": blob, "EncryptionContext": {"purpose": "other"}}).to_string(),
            "",
        ),
        request(
            "TrentService.Decrypt",
            &json!({"CiphertextBlob": blob, "EncryptionContext": ctx}).to_string(),
            "",
        ),
        request("TrentService.GenerateDataKey", "{not json", ""),
        gdk(&k2, 64),
        request(
            "TrentService.GenerateDataKeyWithoutPlaintext",
            &json!({"KeyId": k1, "KeySpec": "AES_256"}).to_string(),
            "",
        ),
    ]
    .concat();
    s.get_mut().write_all(pipelined.as_bytes()).unwrap();
    let answers: Vec<Answer> = (0..12).map(|_| read_answer(&mut s)).collect();
    let ends_with = |a: &Answer, k: &str| {
        assert_eq!(a.status, 200, "{}", a.body);
        assert!(a.body["KeyId"].as_str().unwrap().ends_with(k), "{}", a.body);
    };
    for (i, (k, n)) in [
        (0, (&k1, 16)),
        (1, (&k1, 32)),
        (3, (&k2, 48)),
        (10, (&k2, 64)),
    ] {
        ends_with(&answers[i], k);
        assert_eq!(plaintext_of(&answers[i]).len(), n, "answer {i}");
    }
    let error = |i: usize, status: u16, exception: &str| {
        assert_eq!(answers[i].status, status, "answer {i}: {}", answers[i].body);
        assert_eq!(answers[i].body["__type"], exception, "answer {i}");
    };
    error(2, 400, "NotFoundException");
    error(7, 400, "InvalidCiphertextException");
    error(9, 400, "SerializationException");
    ends_with(&answers[4], &k1);
    ends_with(&answers[5], &k2);
    assert_eq!(plaintext_of(&answers[6]), b"sealed");
    assert_eq!(plaintext_of(&answers[8]), b"sealed");
    ends_with(&answers[11], &k1);
    assert!(answers[11].body.get("Plaintext").is_none());
    let mut ids: Vec<&str> = answers
        .iter()
        .map(|a| a.header("x-amzn-requestid").unwrap())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(
        ids.len(),
        answers.len(),
        "every answer has its own request id"
    );
    // What came back is right: the data keys and ciphertexts open to what was answered.
    let mut again = Vec::new();
    for i in [0, 3, 4, 5, 10] {
        again.push(request(
            "TrentService.Decrypt",
            &json!({"CiphertextBlob": answers[i].body["CiphertextBlob"]}).to_string(),
            "",
        ));
    }
    s.get_mut().write_all(again.concat().as_bytes()).unwrap();
    for i in [0, 3] {
        assert_eq!(
            plaintext_of(&read_answer(&mut s)),
            plaintext_of(&answers[i])
        );
    }
    assert_eq!(plaintext_of(&read_answer(&mut s)), b"hello");
    assert_eq!(plaintext_of(&read_answer(&mut s)), b"world");
    assert_eq!(
        plaintext_of(&read_answer(&mut s)),
        plaintext_of(&answers[10])
    );
}

#[test]
fn kmscks_bench_over_http_reports_the_load_generators_members_with_no_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (_d, addr) = start(dir.path(), &[]);
    let bench = |extra: &[&str]| -> Value {
        let out = Command::new(env!("CARGO_BIN_EXE_kmscks"))
            .args(["bench", "--http", &format!("http://{addr}")])
            .args(["--duration", "200ms", "--json"])
            .args(extra)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let r = bench(&[
        "--op",
        "generate-data-key",
        "--connections",
        "2",
        "--pipeline",
        "4",
        "--baseline",
    ]);
    for member in [
        "op",
        "threads",
        "batch",
        "payload",
        "ops_per_sec",
        "p50_us",
        "p99_us",
        "p999_us",
        "errors",
        "baseline_ops_per_sec",
        "baseline_p50_us",
        "baseline_p99_us",
        "ratio",
    ] {
        assert!(r.get(member).is_some(), "no {member} in {r}");
    }
    assert_eq!(r["op"], "GenerateDataKey");
    assert_eq!(
        (r["threads"].as_u64(), r["batch"].as_u64()),
        (Some(2), Some(4))
    );
    assert_eq!(r["errors"], 0, "{r}");
    assert!(r["ops_per_sec"].as_f64().unwrap() > 0.0, "{r}");
    assert!(r["baseline_ops_per_sec"].as_f64().unwrap() > 0.0, "{r}");
    assert!(r["ratio"].as_f64().unwrap() > 0.0, "{r}");
    // A given key, and an operation that needs a ciphertext made first.
    let mut s = BufReader::new(connect(addr));
    let created = kms(&mut s, "CreateKey", json!({}));
    let key = created.body["KeyMetadata"]["Arn"].as_str().unwrap();
    let r = bench(&["--op", "decrypt", "--key-id", key, "--payload", "100"]);
    assert_eq!(
        (r["op"].as_str(), r["errors"].as_u64()),
        (Some("Decrypt"), Some(0))
    );
    assert!(r["ops_per_sec"].as_f64().unwrap() > 0.0, "{r}");
    assert!(r["ratio"].is_null(), "no baseline asked for: {r}");
}

#[test]
fn a_request_followed_at_once_by_the_end_of_the_stream_is_answered_then_closed() {
    let dir = tempfile::tempdir().unwrap();
    let (_d, addr) = start(dir.path(), &[]);
    let created = kms(&mut BufReader::new(connect(addr)), "CreateKey", json!({}));
    let key = created.body["KeyMetadata"]["KeyId"].clone();
    let mut s = connect(addr);
    let body = json!({"KeyId": key, "Plaintext": "aGk="}).to_string();
    s.write_all(request("TrentService.Encrypt", &body, "").as_bytes())
        .unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut r = BufReader::new(s);
    let a = read_answer(&mut r);
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(a.body["CiphertextBlob"].is_string());
    let mut rest = Vec::new();
    assert_eq!(
        r.read_to_end(&mut rest).unwrap(),
        0,
        "closed after the answer"
    );
}

#[test]
fn expect_100_continue_is_answered_before_the_body_is_sent() {
    let dir = tempfile::tempdir().unwrap();
    let (_d, addr) = start(dir.path(), &[]);
    let mut s = BufReader::new(connect(addr));
    let body = r#"{"Description":"continued"}"#;
    let head = format!(
        "POST / HTTP/1.1\r\nHost: localhost\r\nX-Amz-Target: TrentService.CreateKey\r\n\
         Expect: 100-continue\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.get_mut().write_all(head.as_bytes()).unwrap();
    let mut line = String::new();
    s.read_line(&mut line).unwrap();
    assert_eq!(line, "HTTP/1.1 100 Continue\r\n");
    line.clear();
    s.read_line(&mut line).unwrap();
    assert_eq!(line, "\r\n");
    s.get_mut().write_all(body.as_bytes()).unwrap();
    let a = read_answer(&mut s);
    assert_eq!(a.body["KeyMetadata"]["Description"], "continued");
}

/// The bytes of a CreateKey request naming `host` in its `Host` header.
fn create_key_for_host(host: &str) -> String {
    let body = r#"{"Description":"by host"}"#;
    format!(
        "POST / HTTP/1.1\r\nHost: {host}\r\nX-Amz-Target: TrentService.CreateKey\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

#[test]
fn a_request_naming_another_host_is_refused_before_it_acts_and_a_configured_name_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let (_d, addr) = start(dir.path(), &["--http-hosts", "kms.internal"]);
    let mut own = BufReader::new(connect(addr));
    let keys = |s: &mut BufReader<TcpStream>| {
        let listed = kms(s, "ListKeys", json!({}));
        assert_eq!(listed.status, 200, "{}", listed.body);
        listed.body["Keys"].as_array().unwrap().len()
    };
    let before = keys(&mut own);
    // What a browser sends for a page whose name was re-pointed at 127.0.0.1: unsigned,
    // from the daemon's own uid, which would otherwise act as the account root.
    let port = addr.port();
    for host in [
        format!("attacker.example:{port}"),
        format!("localhost.attacker.example:{port}"),
    ] {
        let mut s = BufReader::new(connect(addr));
        s.get_mut()
            .write_all(create_key_for_host(&host).as_bytes())
            .unwrap();
        let a = read_answer(&mut s);
        assert_eq!(a.status, 421, "{host}: {}", a.body);
        assert_eq!(a.body["__type"], "AccessDeniedException");
        assert!(a.body["message"].as_str().unwrap().contains(&host));
        assert_eq!(a.header("connection"), Some("close"));
    }
    assert_eq!(keys(&mut own), before, "no key was created");
    for host in [format!("kms.internal:{port}"), format!("[::1]:{port}")] {
        let mut s = BufReader::new(connect(addr));
        s.get_mut()
            .write_all(create_key_for_host(&host).as_bytes())
            .unwrap();
        let a = read_answer(&mut s);
        assert_eq!(a.status, 200, "{host}: {}", a.body);
    }
    assert_eq!(keys(&mut own), before + 2);
}

/// The bytes of a request for `target` whose `body` is sent in chunks of `chunk` bytes (a
/// chunk extension on the first), with `extra` headers.
fn chunked_request(target: &str, body: &str, chunk: usize, extra: &str) -> String {
    let mut out = format!(
        "POST / HTTP/1.1\r\nHost: localhost\r\nX-Amz-Target: {target}\r\n\
         Content-Type: application/x-amz-json-1.1\r\n{extra}Transfer-Encoding: chunked\r\n\r\n"
    );
    for (i, piece) in body.as_bytes().chunks(chunk).enumerate() {
        let ext = if i == 0 { ";note=first" } else { "" };
        out += &format!("{:x}{ext}\r\n", piece.len());
        out += std::str::from_utf8(piece).unwrap();
        out += "\r\n";
    }
    out + "0\r\nX-Trailer: ignored\r\n\r\n"
}

#[test]
fn a_chunked_body_is_read_whole_and_answered_in_order_among_the_requests_around_it() {
    use base64::Engine as _;
    let dir = tempfile::tempdir().unwrap();
    let (_d, addr) = start(dir.path(), &[]);
    let mut s = BufReader::new(connect(addr));
    let key = create_key(&mut s);
    let plaintext: Vec<u8> = (0..4096u32).map(|i| (i * 7) as u8).collect();
    let b64 = base64::engine::general_purpose::STANDARD.encode(&plaintext);
    let encrypt = json!({"KeyId": key, "Plaintext": b64}).to_string();
    // Chunked, between two Content-Length requests, in one write.
    let pipelined = format!(
        "{}{}{}",
        request("TrentService.ListKeys", "{}", ""),
        chunked_request("TrentService.Encrypt", &encrypt, 700, ""),
        request("TrentService.ListAliases", "{}", ""),
    );
    s.get_mut().write_all(pipelined.as_bytes()).unwrap();
    let listed = read_answer(&mut s);
    assert!(listed.body["Keys"].is_array(), "{}", listed.body);
    let encrypted = read_answer(&mut s);
    assert_eq!(encrypted.status, 200, "{}", encrypted.body);
    let blob = encrypted.body["CiphertextBlob"]
        .as_str()
        .unwrap()
        .to_owned();
    let aliases = read_answer(&mut s);
    assert!(aliases.body["Aliases"].is_array(), "{}", aliases.body);
    // Chunked, written a chunk at a time, with Expect: 100-continue.
    let decrypt = chunked_request(
        "TrentService.Decrypt",
        &json!({"CiphertextBlob": blob}).to_string(),
        512,
        "Expect: 100-continue\r\n",
    );
    let (head, chunks) = decrypt.split_at(decrypt.find("\r\n\r\n").unwrap() + 4);
    s.get_mut().write_all(head.as_bytes()).unwrap();
    let mut line = String::new();
    s.read_line(&mut line).unwrap();
    assert_eq!(line, "HTTP/1.1 100 Continue\r\n");
    s.read_line(&mut line).unwrap();
    for piece in chunks.split_inclusive("\r\n") {
        s.get_mut().write_all(piece.as_bytes()).unwrap();
    }
    let decrypted = read_answer(&mut s);
    assert_eq!(decrypted.status, 200, "{}", decrypted.body);
    assert_eq!(plaintext_of(&decrypted), plaintext);
    assert_eq!(decrypted.header("connection"), None, "kept alive");
}

#[test]
fn a_chunked_body_larger_than_a_connections_floor_is_read_whole_and_the_next_request_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let (_d, addr) = start(dir.path(), &[]);
    let mut s = BufReader::new(connect(addr));
    // Past the 64 KiB a connection holds uncharged: read as a request charged the largest
    // body it may be. (A member ListKeys does not have is skipped, as AWS does.)
    let big = json!({"Limit": 7, "Pad": "p".repeat(300_000)}).to_string();
    let both = format!(
        "{}{}",
        chunked_request("TrentService.ListKeys", &big, 16 << 10, ""),
        request("TrentService.ListAliases", "{}", ""),
    );
    let writer = {
        let mut w = s.get_ref().try_clone().unwrap();
        std::thread::spawn(move || w.write_all(both.as_bytes()).unwrap())
    };
    let listed = read_answer(&mut s);
    assert_eq!(listed.status, 200, "{}", listed.body);
    assert!(listed.body["Keys"].is_array(), "{}", listed.body);
    let aliases = read_answer(&mut s);
    assert!(aliases.body["Aliases"].is_array(), "{}", aliases.body);
    writer.join().unwrap();
}

#[test]
fn a_chunked_body_is_what_a_signature_covers_once_its_chunks_are_joined() {
    let dir = tempfile::tempdir().unwrap();
    let creds = credentials_file(dir.path(), "AKIDCHUNK chunk-secret root\n");
    let creds_arg = creds.display().to_string();
    let (_d, addr) = start(dir.path(), &["--http-credentials", &creds_arg]);
    let amz_date = kmscks::daemon::sigv4_amz_date(std::time::SystemTime::now());
    let body = r#"{"Description":"sent in chunks"}"#;
    let signed = |body: &str| {
        let headers: [(&str, &[u8]); 4] = [
            ("Host", b"localhost"),
            ("Transfer-Encoding", b"chunked"),
            ("X-Amz-Date", amz_date.as_bytes()),
            ("X-Amz-Target", b"TrentService.CreateKey"),
        ];
        let auth = kmscks::daemon::sigv4_authorization(
            "AKIDCHUNK",
            "chunk-secret",
            "us-east-1",
            "kms",
            &headers,
            body.as_bytes(),
            &amz_date,
        )
        .unwrap();
        format!("X-Amz-Date: {amz_date}\r\nAuthorization: {auth}\r\n")
    };
    let mut s = BufReader::new(connect(addr));
    let req = chunked_request("TrentService.CreateKey", body, 5, &signed(body));
    s.get_mut().write_all(req.as_bytes()).unwrap();
    let a = read_answer(&mut s);
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["KeyMetadata"]["Description"], "sent in chunks");
    // Signed over other data than the chunks carry: refused.
    let req = chunked_request("TrentService.CreateKey", body, 5, &signed("{}"));
    s.get_mut().write_all(req.as_bytes()).unwrap();
    let a = read_answer(&mut s);
    assert_eq!(a.body["__type"], "InvalidSignatureException", "{}", a.body);
}

#[test]
fn curl_streaming_its_body_in_chunks_is_served() {
    use std::process::Stdio;
    if Command::new("curl").arg("--version").output().is_err() {
        eprintln!("skipped: curl is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (_d, addr) = start(dir.path(), &[]);
    // A body read from standard input, of a length curl does not know beforehand: it sends it
    // in chunks (asked for by the header), as a streaming client does.
    let mut curl = Command::new("curl")
        .args(["-sS", "--http1.1", "-X", "POST", "--data-binary", "@-"])
        .args(["-H", "Transfer-Encoding: chunked"])
        .args(["-H", "X-Amz-Target: TrentService.CreateKey"])
        .args(["-H", "Content-Type: application/x-amz-json-1.1"])
        .arg(format!("http://localhost:{}/", addr.port()))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let body = json!({"Description": "x".repeat(8000)}).to_string();
    curl.stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = curl.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let answer: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        answer["KeyMetadata"]["Description"],
        "x".repeat(8000),
        "{answer}"
    );
}

#[test]
fn an_oversized_or_misframed_request_is_refused_and_closed_while_other_connections_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let (_d, addr) = start(dir.path(), &[]);
    let mut other = BufReader::new(connect(addr));
    for (head, status) in [
        (
            "POST / HTTP/1.1\r\nHost: localhost\r\nX-Amz-Target: TrentService.ListKeys\r\nContent-Length: 2000000\r\n\r\n",
            413,
        ),
        (
            "POST / HTTP/1.1\r\nHost: localhost\r\nX-Amz-Target: TrentService.ListKeys\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}}\r\n",
            400,
        ),
        (
            "POST / HTTP/1.1\r\nHost: localhost\r\nX-Amz-Target: TrentService.ListKeys\r\nTransfer-Encoding: chunked\r\n\r\n100001\r\n",
            413,
        ),
        (
            "POST / HTTP/1.1\r\nHost: localhost\r\nX-Amz-Target: TrentService.ListKeys\r\nTransfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\n{}",
            400,
        ),
        (
            "POST / HTTP/1.1\r\nHost: localhost\r\nX-Amz-Target: TrentService.ListKeys\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            501,
        ),
        ("GET / HTTP/1.1\r\n\r\n", 405),
    ] {
        let mut s = BufReader::new(connect(addr));
        s.get_mut().write_all(head.as_bytes()).unwrap();
        let a = read_answer(&mut s);
        assert_eq!(a.status, status, "{head:?}: {}", a.body);
        assert!(a.body["__type"].is_string());
        assert_eq!(a.header("connection"), Some("close"));
        let mut rest = Vec::new();
        assert_eq!(s.read_to_end(&mut rest).unwrap(), 0, "the connection is closed");
    }
    assert_eq!(kms(&mut other, "ListKeys", json!({})).status, 200);
}

#[test]
fn a_client_sending_a_refused_body_whole_before_reading_gets_its_answer_not_a_reset() {
    let dir = tempfile::tempdir().unwrap();
    let (_d, addr) = start(dir.path(), &[]);
    // As most SDKs send: the head and the whole body, then read. The daemon refuses the
    // request at its head and closes; the body still on its way must not turn that into a
    // reset that loses the answer.
    // More than the kernel's buffers on both ends hold, so the daemon must read it.
    let body = "x".repeat(16 << 20);
    let whole = format!(
        "POST / HTTP/1.1\r\nHost: localhost\r\nX-Amz-Target: TrentService.ListKeys\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let s = connect(addr);
    let mut writer = s.try_clone().unwrap();
    let sender = std::thread::spawn(move || writer.write_all(whole.as_bytes()).is_ok());
    let mut r = BufReader::new(s);
    let a = read_answer(&mut r);
    assert_eq!(a.status, 413, "{}", a.body);
    assert_eq!(a.body["__type"], "ValidationException");
    assert!(sender.join().unwrap(), "the body was taken whole");
}

#[test]
fn a_signed_request_acts_as_its_access_key_and_the_root_keys_as_the_root() {
    let dir = tempfile::tempdir().unwrap();
    let (_d, addr) = start(dir.path(), &["--http-root-access-keys", "test,ADMINKEY"]);
    let mut s = BufReader::new(connect(addr));
    let key = create_key(&mut s);
    let signed = |akid: &str| {
        format!(
            "Authorization: AWS4-HMAC-SHA256 Credential={akid}/20261203/us-east-1/kms/\
             aws4_request, SignedHeaders=host;x-amz-date, Signature=00\r\n"
        )
    };
    let body = json!({"KeyId": key, "Plaintext": "aGk="});
    for root in ["test", "ADMINKEY"] {
        let a = call(&mut s, "TrentService.Encrypt", &body, &signed(root));
        assert_eq!(a.status, 200, "{root}: {}", a.body);
    }
    let a = call(
        &mut s,
        "TrentService.Encrypt",
        &body,
        &signed("AKIDSOMEONE"),
    );
    assert_eq!(a.body["__type"], "AccessDeniedException");
    let message = a.body["message"].as_str().unwrap();
    assert!(
        message.contains(":user/AKIDSOMEONE is not authorized"),
        "{message}"
    );
}

#[test]
fn a_non_loopback_http_address_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_kmscksd"))
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("--socket")
        .arg(dir.path().join("kmscks.sock"))
        .args(["--http", "0.0.0.0:4599"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not a loopback address"), "{err}");
}

/// Whether python3 can import boto3; if not, says the test is skipped.
fn boto3_installed() -> bool {
    let probe = Command::new("python3")
        .args(["-c", "import boto3"])
        .output();
    let ok = probe.is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("skipped: python3 with boto3 is not installed (pip install boto3)");
    }
    ok
}

/// Runs `tests/http_boto3.py <endpoint> <mode>` with these credentials; asserts it passes.
fn run_boto3(addr: SocketAddr, mode: &str, key_id: &str, secret: &str) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/http_boto3.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(format!("http://{addr}"))
        .arg(mode)
        .env("AWS_ACCESS_KEY_ID", key_id)
        .env("AWS_SECRET_ACCESS_KEY", secret)
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ENDPOINT_URL")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "boto3 flow failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn boto3_runs_the_kms_flow_against_the_endpoint() {
    if !boto3_installed() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (_d, addr) = start(dir.path(), &[]);
    run_boto3(addr, "trusted", "test", "test");
}

/// Writes a credentials file (mode 0600) in `dir`.
fn credentials_file(dir: &Path, text: &str) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("http-credentials");
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

#[test]
fn with_credentials_botocores_signatures_are_verified_and_unsigned_requests_refused() {
    let dir = tempfile::tempdir().unwrap();
    let creds = credentials_file(
        dir.path(),
        "# test keys\nAKIDBOTO boto-secret root\nAKIDALICE alice-secret arn:aws:iam::111122223333:user/alice\n",
    );
    let creds_arg = creds.display().to_string();
    let (_d, addr) = start(dir.path(), &["--http-credentials", &creds_arg]);
    // Unsigned, even as the test key the unverified endpoint takes for the root.
    let mut s = BufReader::new(connect(addr));
    let a = kms(&mut s, "ListKeys", json!({}));
    assert_eq!(a.status, 403);
    assert_eq!(a.body["__type"], "MissingAuthenticationTokenException");
    let a = call(
        &mut s,
        "TrentService.ListKeys",
        &json!({}),
        "Authorization: AWS4-HMAC-SHA256 Credential=test/20261203/us-east-1/kms/aws4_request, \
         SignedHeaders=host, Signature=00\r\n",
    );
    assert_eq!(a.body["__type"], "UnrecognizedClientException");
    if boto3_installed() {
        run_boto3(addr, "verified", "AKIDBOTO", "boto-secret");
    }
}

#[test]
fn a_credentials_file_others_can_read_stops_the_daemon_at_start() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let creds = credentials_file(dir.path(), "AKIDBOTO boto-secret root\n");
    std::fs::set_permissions(&creds, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_kmscksd"))
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("--socket")
        .arg(dir.path().join("kmscks.sock"))
        .args(["--http", "127.0.0.1:0", "--http-credentials"])
        .arg(&creds)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("has mode 0644"), "{err}");
    assert!(!err.contains("boto-secret"), "{err}");
}

/// The uid the second-uid test runs as (`nobody`).
const OTHER: u32 = 65534;

#[test]
fn another_local_uid_acts_as_itself_over_http_whatever_it_signs() {
    use support::Need;
    if !support::runnable(&[Need::Root, Need::Tool("setpriv"), Need::Tool("bash")]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (_d, addr) = start(dir.path(), &[]);
    let mut s = BufReader::new(connect(addr));
    let key = create_key(&mut s);
    // Signed with the root access key, from another uid: one raw request, the answer printed.
    let body = json!({"KeyId": key, "Plaintext": "aGk="}).to_string();
    let raw = format!(
        "POST / HTTP/1.1\r\nHost: localhost\r\nX-Amz-Target: TrentService.Encrypt\r\nConnection: close\r\n\
         Authorization: AWS4-HMAC-SHA256 Credential=test/20261203/us-east-1/kms/aws4_request, \
         SignedHeaders=host, Signature=00\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    // bash's /dev/tcp: a client every machine with setpriv has.
    let script = "exec 3<>/dev/tcp/$0/$1 && printf '%s' \"$2\" >&3 && cat <&3";
    let out = Command::new("setpriv")
        .args([
            &format!("--reuid={OTHER}"),
            &format!("--regid={OTHER}"),
            "--clear-groups",
            "bash",
            "-c",
            script,
            &addr.ip().to_string(),
            &addr.port().to_string(),
            &raw,
        ])
        .output()
        .unwrap();
    let answer = String::from_utf8_lossy(&out.stdout);
    assert!(answer.contains("AccessDeniedException"), "{answer}");
    assert!(
        answer.contains(&format!(":user/uid-{OTHER} is not authorized")),
        "{answer}"
    );
}

#[test]
fn a_uid_past_its_connection_quota_is_told_so_at_accept_and_a_closed_connection_frees_its_place() {
    let dir = tempfile::tempdir().unwrap();
    let (_d, addr) = start(dir.path(), &["--max-connections-per-uid", "2"]);
    let mut a = BufReader::new(connect(addr));
    let mut b = BufReader::new(connect(addr));
    assert_eq!(kms(&mut a, "ListKeys", json!({})).status, 200);
    assert_eq!(kms(&mut b, "ListKeys", json!({})).status, 200);
    // The third is told which quota refused it, and closed (the accept order is the connect
    // order). It reads before it writes: the answer comes at accept, whatever it sends.
    let mut third = connect(addr);
    let mut refusal = Vec::new();
    third.read_to_end(&mut refusal).unwrap();
    let refusal = String::from_utf8_lossy(&refusal);
    assert!(refusal.starts_with("HTTP/1.1 400 "), "{refusal}");
    assert!(refusal.contains("Connection: close"), "{refusal}");
    assert!(
        refusal.contains("LimitExceededException") && refusal.contains("max_connections_per_uid"),
        "the refusal names the quota: {refusal}"
    );
    // `Connection: close`: the daemon releases the connection before it closes it, so once
    // the end is seen a new connection fits again.
    let bye = call(
        &mut a,
        "TrentService.ListKeys",
        &json!({}),
        "Connection: close\r\n",
    );
    assert_eq!(bye.status, 200);
    let mut rest = Vec::new();
    assert_eq!(a.read_to_end(&mut rest).unwrap(), 0);
    let mut again = BufReader::new(connect(addr));
    assert_eq!(kms(&mut again, "ListKeys", json!({})).status, 200);
    assert_eq!(kms(&mut b, "ListKeys", json!({})).status, 200);
}

#[test]
fn a_client_dribbling_its_request_is_closed_after_the_idle_timeout_while_others_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let (_d, addr) = start(dir.path(), &["--idle-timeout-secs", "1"]);
    let mut slow = connect(addr);
    let mut writer = slow.try_clone().unwrap();
    // A slow-loris client: a request head that never ends, one byte every 50 ms, for at most
    // 20 s (the pace is the scenario, not a synchronisation). Its bytes never make a whole
    // request, so they do not count as activity.
    let dribbler = std::thread::spawn(move || {
        let started = std::time::Instant::now();
        writer.write_all(b"POST / HTTP/1.1\r\nX-Slow: ").unwrap();
        while started.elapsed() < Duration::from_secs(20) {
            if writer.write_all(b"a").is_err() {
                return true; // the daemon closed the connection
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    });
    let mut other = BufReader::new(connect(addr));
    assert_eq!(kms(&mut other, "ListKeys", json!({})).status, 200);
    let mut buf = [0u8; 64];
    match slow.read(&mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("the dribbling connection got {other:?}"),
    }
    assert!(
        dribbler.join().unwrap(),
        "the daemon let the dribbling client go on for 20 s"
    );
    // (`other` itself has been idle past the timeout by now: a new connection.)
    let mut after = BufReader::new(connect(addr));
    assert_eq!(kms(&mut after, "ListKeys", json!({})).status, 200);
}

#[test]
fn a_client_reading_long_answers_slowly_is_not_idle_and_gets_every_answer() {
    let dir = tempfile::tempdir().unwrap();
    let (_d, addr) = start(dir.path(), &["--idle-timeout-secs", "1"]);
    let s = connect(addr);
    // 10,000 answers of about 1.5 KB (15 MB), far past what the kernel's buffers on both ends
    // hold: once the daemon has read every request, the last answers wait seconds for this
    // reader, with no new request coming.
    const N: usize = 10_000;
    let mut writer = s.try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        let one = request(
            "TrentService.GenerateRandom",
            r#"{"NumberOfBytes":1024}"#,
            "",
        );
        for _ in 0..N {
            writer.write_all(one.as_bytes()).unwrap();
        }
    });
    // Read at about 2.5 MB/s (the pace is the scenario, not a synchronisation): six seconds,
    // the last two or more after the last request.
    let mut r = BufReader::with_capacity(256 << 10, s);
    let mut answered = 0;
    let mut since_pause = 0usize;
    while answered < N {
        let a = read_answer(&mut r);
        assert_eq!(a.status, 200, "answer {answered}: {}", a.body);
        answered += 1;
        since_pause += 1;
        if since_pause == 170 {
            since_pause = 0;
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    sender.join().unwrap();
}

/// Writes pipelined GenerateRandom requests (each answer ~6× its request) to a connection that
/// never reads its answers, until the daemon stops taking them (a write blocked for 2 s) or
/// `bound` bytes went in; returns how many bytes went in.
fn write_without_reading(s: &mut TcpStream, bound: usize) -> usize {
    let one = request(
        "TrentService.GenerateRandom",
        r#"{"NumberOfBytes":1024}"#,
        "",
    );
    let mut batch = Vec::new();
    while batch.len() < 64 << 10 {
        batch.extend_from_slice(one.as_bytes());
    }
    s.set_write_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut sent = 0;
    while sent < bound {
        match s.write(&batch) {
            Ok(n) => sent += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break, // timed out: the daemon reads no more
        }
    }
    sent
}

/// More request bytes than the daemon may take from one connection that reads nothing: its
/// answers at the limit (8 MiB of answers are ~1.4 MiB of requests), plus what the kernel's
/// buffers on both ends hold (a few MiB each).
const UNREAD_BOUND: usize = 24 << 20;

#[test]
fn a_client_that_never_reads_its_answers_is_read_no_more_and_others_are_still_served() {
    let dir = tempfile::tempdir().unwrap();
    let (_d, addr) = start(dir.path(), &[]);
    let mut hog = connect(addr);
    let sent = write_without_reading(&mut hog, UNREAD_BOUND);
    assert!(
        sent < UNREAD_BOUND,
        "the daemon took {sent} bytes of requests whose answers were never read"
    );
    // Another connection of the same uid still gets its answers.
    let mut other = BufReader::new(connect(addr));
    assert_eq!(kms(&mut other, "ListKeys", json!({})).status, 200);
}

#[test]
fn a_uid_at_its_memory_quota_is_read_no_more_yet_each_connection_keeps_its_floor() {
    let dir = tempfile::tempdir().unwrap();
    // The smallest quota the daemon accepts (two largest socket frames), far under what one
    // connection may leave unwritten: the memory quota is what stops the reading.
    let quota = (2 * (24 + (1 << 20))).to_string();
    let pending = (256usize << 20).to_string();
    let (_d, addr) = start(
        dir.path(),
        &[
            "--max-memory-per-uid",
            &quota,
            "--max-pending-reply-bytes",
            &pending,
        ],
    );
    let mut hogs = [connect(addr), connect(addr)];
    for hog in &mut hogs {
        let sent = write_without_reading(hog, UNREAD_BOUND);
        assert!(
            sent < UNREAD_BOUND,
            "the daemon took {sent} bytes past the uid's quota"
        );
    }
    let mut other = BufReader::new(connect(addr));
    assert_eq!(kms(&mut other, "ListKeys", json!({})).status, 200);
    // Once the hogs go, their memory is the uid's again and a large answer passes.
    drop(hogs);
    let big = kms(&mut other, "GenerateRandom", json!({"NumberOfBytes": 1024}));
    assert_eq!(big.status, 200);
}

/// A daemon whose uid memory quota is the smallest it accepts (two of the socket's largest
/// frames), whose connections may be idle for a minute, and whose unwritten answers per
/// connection may be `pending` bytes.
fn smallest_quota_daemon(dir: &Path, pending: usize) -> (Daemon, SocketAddr) {
    let quota = 2 * (24 + (1 << 20));
    start(
        dir,
        &[
            "--max-memory-per-uid",
            &quota.to_string(),
            "--idle-timeout-secs",
            "60",
            "--max-pending-reply-bytes",
            &pending.to_string(),
        ],
    )
}

/// Caps `s`'s kernel receive buffer (`SO_RCVBUF`): what a client that reads nothing lets the
/// kernel hold for it is then not what the machine's `tcp_rmem` says.
#[allow(unsafe_code)]
fn cap_receive_buffer(s: &TcpStream, bytes: libc::c_int) {
    use std::os::fd::AsRawFd;
    // SAFETY: an open socket, and a pointer to an int of the size given, alive for the call.
    let r = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            std::ptr::from_ref(&bytes).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(r, 0, "{}", std::io::Error::last_os_error());
}

#[test]
fn answers_many_times_their_requests_size_stop_at_the_uids_memory_quota_until_read() {
    let dir = tempfile::tempdir().unwrap();
    // Unwritten answers may reach 64 MiB per connection: only the uid's quota can stop them.
    let (_d, addr) = smallest_quota_daemon(dir.path(), 64 << 20);
    let mut admin = BufReader::new(connect(addr));
    let key = create_key(&mut admin);
    // A key policy of about 30 KB: GetKeyPolicy's answer is about 160 times its request.
    let padding: Vec<Value> = (0..245)
        .map(|i| {
            json!({"Effect": "Allow", "Action": "kms:Encrypt", "Resource": "*",
                   "Principal": {"AWS": format!("arn:aws:iam::111122223333:user/padding-{i:03}")}})
        })
        .collect();
    let mut statements = vec![
        json!({"Effect": "Allow", "Action": "kms:*", "Resource": "*",
                                     "Principal": {"AWS": "arn:aws:iam::111122223333:root"}}),
    ];
    statements.extend(padding);
    let policy = json!({"Version": "2012-10-17", "Statement": statements}).to_string();
    assert!((29_000..32_768).contains(&policy.len()), "{}", policy.len());
    let put = kms(
        &mut admin,
        "PutKeyPolicy",
        json!({"KeyId": key, "PolicyName": "default", "Policy": policy}),
    );
    assert_eq!(put.status, 200, "{}", put.body);
    // 300 GetKeyPolicy (about 10 MB of answers, over four times the quota and what the
    // kernel's buffers hold: the daemon's send buffer is capped, the client's here), then a CreateAlias that shows whether they were all answered;
    // about 60 KB of requests, read whole. The client reads nothing yet.
    let get = request(
        "TrentService.GetKeyPolicy",
        &json!({"KeyId": key, "PolicyName": "default"}).to_string(),
        "",
    );
    let alias = request(
        "TrentService.CreateAlias",
        &json!({"AliasName": "alias/past-the-quota", "TargetKeyId": key}).to_string(),
        "",
    );
    let hog = connect(addr);
    cap_receive_buffer(&hog, 64 << 10);
    let mut hog = BufReader::new(hog);
    let sent = format!("{}{alias}", get.repeat(300));
    assert!(sent.len() < 64 << 10, "{} bytes", sent.len());
    hog.get_mut().write_all(sent.as_bytes()).unwrap();
    // The daemon answers what the quota holds and stops there: the alias is not made. (Before
    // answers were held to the room, every request read was answered into memory, the alias
    // in a few hundred milliseconds.)
    let window = std::time::Instant::now() + Duration::from_secs(3);
    while std::time::Instant::now() < window {
        let aliases = kms(&mut admin, "ListAliases", json!({}));
        assert_eq!(aliases.status, 200, "{}", aliases.body);
        assert!(
            !aliases.body.to_string().contains("past-the-quota"),
            "every GetKeyPolicy was answered while its client read nothing"
        );
    }
    // Back-pressured, not lost: read, every answer comes, the alias last.
    for n in 0..300 {
        let a = read_answer(&mut hog);
        assert_eq!(a.status, 200, "GetKeyPolicy {n}: {}", a.body);
        assert_eq!(a.body["Policy"].as_str().map(str::len), Some(policy.len()));
    }
    let made = read_answer(&mut hog);
    assert_eq!(made.status, 200, "{}", made.body);
}

/// A daemon whose uid memory quota is the smallest it accepts (two requests of a megabyte),
/// a key, and an EncryptBatch request of a megabyte under it (180 items of 4 KiB, answered
/// on the lane of slow work).
fn small_quota_and_a_megabyte_batch(dir: &Path) -> (Daemon, SocketAddr, String, String) {
    let quota = 2 * (24 + (1 << 20));
    let (d, addr) = start(dir, &["--max-memory-per-uid", &quota.to_string()]);
    let mut s = BufReader::new(connect(addr));
    let created = kms(&mut s, "CreateKey", json!({}));
    let key = created.body["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_owned();
    let item = json!({"KeyId": key, "Plaintext": "YWFh".repeat(1365)});
    let batch = request(
        "TrentService.EncryptBatch",
        &json!({ "Items": vec![item; 180] }).to_string(),
        "",
    );
    assert!(batch.len() > 900 << 10, "{} bytes", batch.len());
    (d, addr, key, batch)
}

#[test]
fn a_connection_waiting_for_room_its_own_answer_freed_is_read_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let (_d, addr) = smallest_quota_daemon(dir.path(), 8 << 20);
    // Another connection of the uid holds about half its room: a request's head announcing a
    // megabyte, and a little of its body, the rest never sent.
    let mut holder = connect(addr);
    let head = request("TrentService.DescribeKey", "", "")
        .replace("Content-Length: 0", "Content-Length: 1000000");
    holder.write_all(head.as_bytes()).unwrap();
    holder.write_all(&[b' '; 20_000]).unwrap();
    // This one sends two requests of about a megabyte. The second fits once the first is
    // answered, and the first's answer is what frees the room: it must not wait for the
    // holder (which gives nothing back for a minute).
    let padded = json!({"KeyId": "alias/none", "Pad": "a".repeat(1_000_000)}).to_string();
    let one = request("TrentService.DescribeKey", &padded, "");
    let mut c = BufReader::new(connect(addr));
    c.get_mut()
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    c.get_mut()
        .write_all(format!("{one}{one}").as_bytes())
        .unwrap();
    for n in 0..2 {
        let a = read_answer(&mut c);
        assert_eq!(a.status, 400, "answer {n}: {}", a.body);
        assert_eq!(a.body["__type"], "NotFoundException", "answer {n}");
    }
    drop(holder);
}

/// Sends `batch` on `n` connections at once, each from a thread of its own; returns each
/// one's answer status and `__type`. The last answer waits for all the others (they are
/// answered a few at a time), so each client waits up to two minutes for its own.
fn send_at_once(addr: SocketAddr, batch: &str, n: usize) -> Vec<(u16, Value)> {
    let clients: Vec<_> = (0..n)
        .map(|_| {
            let (batch, stream) = (batch.to_owned(), connect(addr));
            stream
                .set_read_timeout(Some(Duration::from_secs(120)))
                .unwrap();
            std::thread::spawn(move || {
                let mut c = BufReader::new(stream);
                c.get_mut().write_all(batch.as_bytes()).unwrap();
                let a = read_answer(&mut c);
                (a.status, a.body["__type"].clone())
            })
        })
        .collect();
    clients.into_iter().map(|c| c.join().unwrap()).collect()
}

#[test]
fn a_uid_sending_more_megabyte_requests_at_once_than_its_quota_holds_gets_every_answer() {
    let dir = tempfile::tempdir().unwrap();
    let (_d, addr, _, batch) = small_quota_and_a_megabyte_batch(dir.path());
    // Forty megabytes at once against a quota of two. Had each connection read what room
    // allowed of its request, they would hold the quota between them with no request whole,
    // and none would be answered (each waits 30 s, then fails).
    for answer in send_at_once(addr, &batch, 40) {
        assert_eq!(answer, (200, Value::Null));
    }
}

#[test]
fn requests_waiting_for_a_control_thread_stay_charged_to_their_uids_memory_quota() {
    let dir = tempfile::tempdir().unwrap();
    let (d, addr, key, batch) = small_quota_and_a_megabyte_batch(dir.path());
    // The lane of slow work is kept busy first, by RSA_4096 key pairs (hundreds of
    // milliseconds each), so that the batches wait for it.
    let pairs: Vec<_> = (0..3)
        .map(|_| {
            let mut c = BufReader::new(connect(addr));
            let body = json!({"KeyId": key, "KeyPairSpec": "RSA_4096"}).to_string();
            c.get_mut()
                .write_all(request("TrentService.GenerateDataKeyPair", &body, "").as_bytes())
                .unwrap();
            c
        })
        .collect();
    let before = support::memory_of(d.pid(), "VmHWM:");
    // 150 megabytes on 150 connections. Each request the daemon takes while the lane is busy
    // waits there, decoded: uncharged, it took one from every connection (the peak grew by
    // about 140 MiB). Charged, the uid's quota lets two wait.
    for answer in send_at_once(addr, &batch, 150) {
        assert_eq!(answer, (200, Value::Null));
    }
    for mut pair in pairs {
        let a = read_answer(&mut pair);
        assert_eq!(a.status, 200, "{}", a.body);
    }
    let grown = support::memory_of(d.pid(), "VmHWM:").saturating_sub(before);
    // What serving one batch after another costs (its decoding and answer, and what the
    // allocator keeps of them), about 50 MiB here, well under a queue of 150.
    assert!(
        grown < 95 << 20,
        "the daemon's peak memory grew by {} MiB for a uid whose quota is 2 MiB",
        grown >> 20
    );
}

#[test]
fn a_batch_is_answered_off_the_loop_each_item_with_its_own_answer() {
    let dir = tempfile::tempdir().unwrap();
    let (_d, addr) = start(dir.path(), &[]);
    let mut s = BufReader::new(connect(addr));
    let created = kms(&mut s, "CreateKey", json!({}));
    let key = created.body["KeyMetadata"]["KeyId"].as_str().unwrap();
    let items = json!({"Items": [
        {"KeyId": key, "Plaintext": "aGVsbG8="},
        {"KeyId": "alias/none", "Plaintext": "aGVsbG8="},
        {"KeyId": key, "Plaintext": "d29ybGQ="},
    ]});
    let a = kms(&mut s, "EncryptBatch", items);
    assert_eq!(a.status, 200, "{}", a.body);
    let answers = a.body["Results"].as_array().unwrap();
    assert_eq!(answers.len(), 3, "{}", a.body);
    assert!(answers[0]["Ok"]["CiphertextBlob"].is_string(), "{}", a.body);
    assert_eq!(answers[1]["Err"]["__type"], "NotFoundException");
    assert!(answers[2]["Ok"]["CiphertextBlob"].is_string(), "{}", a.body);
    // The connection goes on serving after an answer from the lane.
    let dec = kms(
        &mut s,
        "Decrypt",
        json!({"CiphertextBlob": answers[2]["Ok"]["CiphertextBlob"]}),
    );
    assert_eq!(dec.body["Plaintext"], "d29ybGQ=");
}

#[test]
fn a_batch_whose_answer_would_be_many_times_its_size_is_refused_as_over_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let (_d, addr) = start(dir.path(), &[]);
    // About 350,000 empty items in a request of just under a megabyte: each would be answered
    // with an error item of about 70 bytes, some 24 MB in all.
    let mut body = String::from(r#"{"Items":["#);
    while body.len() < (1 << 20) - 16 {
        body.push_str("{},");
    }
    body.pop();
    body.push_str("]}");
    let mut s = BufReader::new(connect(addr));
    s.get_mut()
        .write_all(request("TrentService.EncryptBatch", &body, "").as_bytes())
        .unwrap();
    // Another client is served meanwhile, and after.
    let mut other = BufReader::new(connect(addr));
    assert_eq!(kms(&mut other, "ListKeys", json!({})).status, 200);
    let a = read_answer(&mut s);
    assert_eq!(a.status, 400, "{}", a.body);
    assert_eq!(a.body["__type"], "LimitExceededException");
    let message = a.body["message"].as_str().unwrap();
    assert!(
        message.contains("EncryptBatch answer") && message.contains("fewer items per batch"),
        "{message}"
    );
    assert!(
        a.header("content-length")
            .unwrap()
            .parse::<usize>()
            .unwrap()
            < 1024
    );
    // The connection goes on serving.
    assert_eq!(kms(&mut s, "ListKeys", json!({})).status, 200);
}
