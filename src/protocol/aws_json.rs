//! AWS JSON 1.1 (spec §9): the bodies and names of the HTTP endpoint, so that the AWS SDKs and
//! the `aws` CLI reach kmscks with nothing but an endpoint URL.
//!
//! Why here and generated: an operation is named by `X-Amz-Target: <Service>.<Operation>` and
//! its body is the JSON of the operation's own request type — the same types, serialised the
//! same way, as the socket protocol and the CLI use. The decoder and encoder below are
//! generated from the operation table (`ops::for_each_op!`), so an operation added to the table
//! is reachable over HTTP with no further code. KMS operations (and kmscks's extras) are
//! `TrentService.<Name>`; the simulated CloudHSM's are `BaldrApiService.<Name>` (the CloudHSM
//! v2 API's prefix); an operation kmscks accepts by name but refuses ([`Refused`]) is
//! `TrentService.<its AWS name>`. HTTP framing is the daemon's; this module knows only names
//! and bodies.
//!
//! Errors take AWS's shape: `{"__type": "<Exception>", "message": "…"}`, with the status of
//! the error table. A body that is not JSON, or not the operation's shape (a member of another
//! JSON type: a string, or `1.5`, where an integer goes), is `SerializationException`. A body
//! of the operation's shape that the request type cannot hold is refused as AWS's own
//! validation refuses it, `ValidationException` in AWS's wording naming the member: a required
//! member missing, a value its enum lacks, an integer its Rust type cannot hold
//! (`"NumberOfBytes": -5` into a `u32`), which is refused for the bound it crosses, the one the
//! operation holds the member to (the table of `protocol::ranges`) or else its type's. An
//! unknown target is `UnknownOperationException`.

use serde::Serialize;

#[allow(clippy::wildcard_imports)] // the table names its types as the API exports them
use crate::api::hsm::*;
use crate::api::kms::*;
use crate::error::{Constraint, KmsError, Result};
use crate::ops::{for_each_op, Op, Request, Response};
use crate::{err, ErrorKind};

/// The media type of every request and answer body.
pub const CONTENT_TYPE: &str = "application/x-amz-json-1.1";
/// The target prefix of the KMS operations (and kmscks's extras).
pub const KMS_SERVICE: &str = "TrentService";
/// The target prefix of the CloudHSM v2 operations.
pub const CLOUDHSM_SERVICE: &str = "BaldrApiService";

/// The target prefix under which `op` is served: CloudHSM operations (policy actions
/// `cloudhsm:…`) under [`CLOUDHSM_SERVICE`], every other under [`KMS_SERVICE`].
pub fn service_of(op: Op) -> &'static str {
    if op
        .actions()
        .first()
        .is_some_and(|a| a.as_str().starts_with("cloudhsm:"))
    {
        CLOUDHSM_SERVICE
    } else {
        KMS_SERVICE
    }
}

/// The operation an `X-Amz-Target` value names, or `UnknownOperationException`. `Refused`
/// (kmscks's internal name for the refused operations) is not a target of its own.
///
/// A CloudHSM operation is also reachable by its policy action's name, when no other CloudHSM
/// operation shares it: cloudhsmv2's `TagResource`, `UntagResource` and `ListTags`, whose
/// names the table gives KMS's operations.
pub fn operation(target: &str) -> Result<Target> {
    let unknown = || err!(UnknownOperationException, "Unknown operation {target}");
    let (service, name) = target.split_once('.').ok_or_else(unknown)?;
    if let Some(op) =
        Op::from_name(name).filter(|&op| op != Op::Refused && service_of(op) == service)
    {
        return Ok(Target::Op(op));
    }
    if service == CLOUDHSM_SERVICE {
        return cloudhsm_by_action(name).map(Target::Op).ok_or_else(unknown);
    }
    match Refused::ALL.iter().find(|r| r.name() == name) {
        Some(&r) if service == KMS_SERVICE => Ok(Target::Refused(r)),
        _ => Err(unknown()),
    }
}

/// The CloudHSM operation whose one policy action is `cloudhsm:<name>`, when exactly one is.
/// The action names the operation as AWS's API does where the table had to name it otherwise
/// (`TagHsmResource` is `cloudhsm:TagResource`); an action two operations share
/// (`cloudhsm:InitializeCluster`) names neither.
fn cloudhsm_by_action(name: &str) -> Option<Op> {
    let mut found = Op::ALL.iter().filter(|op| {
        matches!(op.actions(), [action] if action.as_str().strip_prefix("cloudhsm:") == Some(name))
    });
    match (found.next(), found.next()) {
        (Some(&op), None) => Some(op),
        _ => None,
    }
}

/// What a target names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// An operation of the table.
    Op(Op),
    /// An AWS operation kmscks refuses (answered by the `Refused` operation).
    Refused(Refused),
}

/// The request of `target` from its JSON body (an empty body reads as `{}`). A body that is
/// not a JSON object is `SerializationException`, as on AWS: serde's derived decoding would
/// otherwise take an array, its elements filling the request's members by position.
pub fn decode_request(target: Target, body: &[u8]) -> Result<Request> {
    let body = match body.iter().find(|b| !b.is_ascii_whitespace()) {
        None => b"{}".as_slice(),
        Some(b'{') => body,
        Some(&first) => {
            return Err(KmsError::new(
                ErrorKind::SerializationException,
                format!(
                    "The request body must be a JSON object; it begins with {:?}",
                    char::from(first)
                ),
            ))
        }
    };
    match target {
        Target::Refused(operation) => {
            #[derive(serde::Deserialize)]
            #[serde(rename_all = "PascalCase")]
            struct KeyOnly {
                key_id: String,
            }
            let k: KeyOnly = serde_json::from_slice(body).map_err(json_error)?;
            Ok(Request::Refused(RefusedRequest {
                operation,
                key_id: k.key_id,
            }))
        }
        Target::Op(op) => {
            super::unhonoured::check(op, body)?;
            macro_rules! decode {
                ($( $code:literal $name:ident ($req:ty) -> $resp:ty [$($action:tt)*]; )*) => {
                    match op {
                        $(Op::$name => serde_json::from_slice::<$req>(body)
                            .map(Request::$name)
                            .map_err(|e| body_error(op, e, body)),)*
                    }
                };
            }
            for_each_op!(decode)
        }
    }
}

/// The JSON members `op`'s request decodes (AWS's names), and those kmscks knows from AWS's
/// model and refuses to be set (the `unhonoured` table): what a test holds against AWS's
/// published models. Any other member a body carries is skipped, as AWS skips members it
/// does not know.
pub fn request_members(op: Op) -> (&'static [&'static str], Vec<&'static str>) {
    macro_rules! fields {
        ($( $code:literal $name:ident ($req:ty) -> $resp:ty [$($action:tt)*]; )*) => {
            match op {
                $(Op::$name => fields_of::<$req>(),)*
            }
        };
    }
    (
        for_each_op!(fields),
        super::unhonoured::members(op).collect(),
    )
}

/// Refuses a request of `op` whose JSON object `body` sets a member kmscks does not honour
/// ([`request_members`]' second list) with the error the endpoint answers: for a client that
/// builds the typed request itself (the command line), which serde would let drop the member.
pub fn check_members(op: Op, body: &[u8]) -> Result<()> {
    super::unhonoured::check(op, body)
}

/// The member names a derived `Deserialize` of a struct announces (empty for other types).
fn fields_of<T: serde::de::DeserializeOwned>() -> &'static [&'static str] {
    use serde::de::{Error, Visitor};
    use serde::forward_to_deserialize_any;
    type E = serde::de::value::Error;
    /// A deserializer that only records the fields a struct asks for.
    struct Fields<'a>(&'a mut &'static [&'static str]);
    impl<'de> serde::Deserializer<'de> for Fields<'_> {
        type Error = E;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> std::result::Result<V::Value, E> {
            Err(E::custom("not a struct"))
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> std::result::Result<V::Value, E> {
            *self.0 = fields;
            Err(E::custom("fields recorded"))
        }
        forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
            byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map enum
            identifier ignored_any
        }
    }
    let mut fields: &'static [&'static str] = &[];
    // Always an error: the deserializer stops at the struct, having recorded its fields.
    let _ = T::deserialize(Fields(&mut fields));
    fields
}

/// The JSON body answering `response`.
pub fn encode_response(response: &Response) -> Vec<u8> {
    macro_rules! encode {
        ($( $code:literal $name:ident ($req:ty) -> $resp:ty [$($action:tt)*]; )*) => {
            match response {
                $(Response::$name(r) => to_vec(r),)*
            }
        };
    }
    for_each_op!(encode)
}

/// The client's side of the codec: the `X-Amz-Target` value and JSON body of `request` (what
/// [`operation`] and [`decode_request`] read back). The body may carry secrets (a plaintext, a
/// password): it is wiped when dropped.
pub fn encode_request(request: &Request) -> (String, zeroize::Zeroizing<Vec<u8>>) {
    if let Request::Refused(r) = request {
        #[derive(Serialize)]
        #[serde(rename_all = "PascalCase")]
        struct KeyOnly<'a> {
            key_id: &'a str,
        }
        let body = to_vec(&KeyOnly { key_id: &r.key_id });
        let target = format!("{KMS_SERVICE}.{}", r.operation.name());
        return (target, zeroize::Zeroizing::new(body));
    }
    macro_rules! encode {
        ($( $code:literal $name:ident ($req:ty) -> $resp:ty [$($action:tt)*]; )*) => {
            match request {
                $(Request::$name(r) => to_vec(r),)*
            }
        };
    }
    let op = request.op();
    let target = format!("{}.{}", service_of(op), op.name());
    (target, zeroize::Zeroizing::new(for_each_op!(encode)))
}

/// The client's side of the codec: the answer of `op` from its JSON body (what
/// [`encode_response`] wrote), or the error a body of another shape is.
pub fn decode_response(op: Op, body: &[u8]) -> Result<Response> {
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        body
    };
    macro_rules! decode {
        ($( $code:literal $name:ident ($req:ty) -> $resp:ty [$($action:tt)*]; )*) => {
            match op {
                $(Op::$name => serde_json::from_slice::<$resp>(body)
                    .map(Response::$name)
                    .map_err(|e| KmsError::new(
                        ErrorKind::SerializationException,
                        format!("The answer to {} is not its shape: {e}", op.name()),
                    )),)*
            }
        };
    }
    for_each_op!(decode)
}

/// The client's side of the codec: the error an answer with `status` and an AWS error body
/// (`{"__type": …, "message": …}`, what [`encode_error`] wrote; botocore also takes a
/// `<namespace>#<Exception>` type and `Message`) reports. An exception kmscks does not know is
/// reported as `KMSInternalException` naming it.
pub fn decode_error(status: u16, body: &[u8]) -> KmsError {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let kind_name = v["__type"].as_str().unwrap_or_default();
    let kind_name = kind_name.rsplit('#').next().unwrap_or(kind_name);
    let message = v["message"]
        .as_str()
        .or_else(|| v["Message"].as_str())
        .unwrap_or_default();
    match ErrorKind::from_aws_name(kind_name) {
        Some(kind) => KmsError::new(kind, message),
        None => KmsError::new(
            ErrorKind::KMSInternalException,
            format!("HTTP {status} {kind_name}: {message}"),
        ),
    }
}

/// A JSON body being written: bodies carry plaintexts, data keys and private keys (base64),
/// so a growing buffer wipes the allocation it leaves.
struct Wiping(Vec<u8>);

impl std::io::Write for Wiping {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        crate::secret::extend_wiping(&mut self.0, bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn to_vec<T: Serialize>(value: &T) -> Vec<u8> {
    let mut body = Wiping(Vec::with_capacity(256));
    match serde_json::to_writer(&mut body, value) {
        Ok(()) => body.0,
        // Invariant: the response types serialise to JSON without fail (no maps with
        // non-string keys, no failing custom serialisers); were one to fail, `{}` is still a
        // valid answer.
        Err(_) => {
            crate::secret::wipe_vec(&mut body.0);
            b"{}".to_vec()
        }
    }
}

/// The HTTP status and JSON body answering `error`.
pub fn encode_error(error: &KmsError) -> (u16, Vec<u8>) {
    #[derive(Serialize)]
    struct Body<'a> {
        #[serde(rename = "__type")]
        kind: &'a str,
        message: &'a str,
    }
    let body = Body {
        kind: error.kind().aws_name(),
        message: aws_message(error),
    };
    (error.kind().http_status(), to_vec(&body))
}

/// A body of `op` that did not decode: a member holding a value serde refused for what it is,
/// not for its type, is AWS's `ValidationException` ([`member_error`]); otherwise as
/// [`json_error`].
fn body_error(op: Op, e: serde_json::Error, body: &[u8]) -> KmsError {
    serde_json::from_slice(body)
        .ok()
        .and_then(|v| member_error(op, &v, Some(body), &e))
        .unwrap_or_else(|| json_error(e))
}

/// The least value AWS's model allows the integer member `member` (AWS's name) of `op`'s
/// request, if the table of `protocol::ranges` gives it one: what the AWS CLI checks before it
/// sends a request (botocore refuses a smaller one itself, `valid min value: 1`).
pub fn member_min(op: Op, member: &str) -> Option<u64> {
    super::ranges::of(op, member).map(|(min, _)| min)
}

/// AWS's `ValidationException` for the member of `op`'s request `body` whose value serde
/// refused (`e`) though it is of the member's JSON type: a value its enum lacks, an integer
/// its Rust type cannot hold (see the module doc). `text` is the body as sent, when there is
/// one: an integer past 64 bits is a float once parsed, and only the text says it was written
/// as an integer. `None` for any other error. The command line reports the same error for the
/// same request before sending it (a typed request cannot carry the value).
pub fn member_error(
    op: Op,
    body: &serde_json::Value,
    text: Option<&[u8]>,
    e: &serde_json::Error,
) -> Option<KmsError> {
    enum_error(op, body, text, e).or_else(|| range_error(op, body, text, e))
}

/// AWS's `ValidationException` for a request member holding a value its enum does not have
/// (`Value 'FOO' at 'keySpec' failed to satisfy constraint: Member must satisfy enum value set:
/// [AES_256, AES_128]`), when `e` is serde's error for one in `body`: the member is the key
/// `text` (the body as sent) writes that value under ([`refused_member`]), and none when that
/// cannot be told.
fn enum_error(
    op: Op,
    body: &serde_json::Value,
    text: Option<&[u8]>,
    e: &serde_json::Error,
) -> Option<KmsError> {
    let message = e.to_string();
    let rest = message.strip_prefix("unknown variant `")?;
    let (value, expected) = rest.split_once('`')?;
    let expected = expected.split(" at line ").next().unwrap_or(expected);
    let allowed: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
    // Where the refused string starts, if the text there is that value (no escapes in it).
    let start = text.and_then(|t| {
        let start = string_ending_at(t, e)?;
        let written = t.get(start + 1..)?.strip_prefix(value.as_bytes())?;
        written.starts_with(b"\"").then_some(start)
    });
    let member = refused_member(op, body, text, start, &|v| v.as_str() == Some(value));
    let constraint = format!(
        "Member must satisfy enum value set: [{}]",
        allowed.join(", ")
    );
    Some(match member {
        Some(member) => KmsError::validation(value, &camel(member), constraint),
        None => KmsError::validation_of_value(value, constraint),
    })
}

/// AWS's `ValidationException` for an integer its member's Rust type cannot hold
/// (`"NumberOfBytes": -5` into a `u32`), when `e` is serde's error for one in `body` (past 64
/// bits, one `text` writes as an integer): AWS reads it as the integer it is and refuses it
/// for the bound it crosses, the one `op` holds the member to ([`super::ranges`]), or its
/// type's for a member held to none. The member is the key the text writes the integer under
/// ([`refused_member`]), and none when that cannot be told. `None`
/// for an integer of a signed type (no request has one): its lower bound is no [`Constraint`].
fn range_error(
    op: Op,
    body: &serde_json::Value,
    text: Option<&[u8]>,
    e: &serde_json::Error,
) -> Option<KmsError> {
    let message = e.to_string();
    // Where serde_json stopped: the integer literal written there, and where it starts.
    let written = text.and_then(|t| integer_ending_at(t, e));
    // The integer, and the float serde_json read it as, if it did.
    let (value, float, expected) = match message.strip_prefix("invalid value: integer `") {
        Some(rest) => {
            let (value, expected) = rest.split_once("`, expected ")?;
            (value, None, expected)
        }
        None => {
            let rest = message.strip_prefix("invalid type: floating point `")?;
            let (_, value) = written?;
            (
                value,
                value.parse::<f64>().ok(),
                rest.split_once("`, expected ")?.1,
            )
        }
    };
    // `-0` is zero, which every unsigned member holds: not refused here (serde_json reads it as
    // a float, and the body stays a serialization error, as before this decoder read ranges).
    if value.trim_start_matches('-').bytes().all(|b| b == b'0') {
        return None;
    }
    let type_max: u64 = match expected.split(" at line ").next()? {
        "u8" => u8::MAX.into(),
        "u16" => u16::MAX.into(),
        "u32" => u32::MAX.into(),
        "u64" => u64::MAX,
        _ => return None,
    };
    let start = written
        .filter(|&(_, literal)| literal == value)
        .map(|(start, _)| start);
    let member = refused_member(op, body, text, start, &|v| {
        v.as_number().is_some_and(|n| match float {
            None => n.to_string() == value,
            Some(float) => n.as_f64() == Some(float),
        })
    });
    let (min, max) = member
        .and_then(|m| super::ranges::of(op, m))
        .unwrap_or((0, type_max));
    let constraint = if value.starts_with('-') {
        Constraint::MinValue(min)
    } else {
        Constraint::MaxValue(max)
    };
    Some(match member {
        Some(member) => KmsError::validation(value, &camel(member), constraint),
        None => KmsError::validation_of_value(value, constraint),
    })
}

/// The JSON integer literal (`-`, then digits) that ends where `e` points in `body`, if the
/// number there is written as one (serde_json points just past a number it could not read),
/// with the offset it starts at.
fn integer_ending_at<'a>(body: &'a [u8], e: &serde_json::Error) -> Option<(usize, &'a str)> {
    let head = up_to_error(body, e)?;
    let digits = head
        .iter()
        .rposition(|b| !b.is_ascii_digit())
        .map_or(0, |i| i + 1);
    let start = match head[..digits].last() {
        Some(b'-') => digits - 1,
        _ => digits,
    };
    // A fraction or an exponent ends in digits too.
    let written_whole = digits < head.len()
        && !matches!(head[..start].last(), Some(b'.' | b'e' | b'E' | b'+' | b'-'));
    written_whole
        .then(|| std::str::from_utf8(&head[start..]).ok())
        .flatten()
        .map(|literal| (start, literal))
}

/// The member a refused value is about, `start` being where its literal begins in `text`: the
/// key the text writes it under, at any depth, whatever other members hold; without one (no
/// text, a value in an array, a key written with escapes), the member holding a value `holds`
/// picks, if only members of one name do.
fn refused_member<'a>(
    op: Op,
    body: &'a serde_json::Value,
    text: Option<&'a [u8]>,
    start: Option<usize>,
    holds: &dyn Fn(&serde_json::Value) -> bool,
) -> Option<&'a str> {
    start.and_then(|start| key_before(text?, start)).or_else(
        || match holders(op, body, holds)[..] {
            [member] => Some(member),
            _ => None,
        },
    )
}

/// `body` up to where `e` points: its line and column, the column that of the last character
/// serde_json read (just past a value it could not use, that value's last).
fn up_to_error<'a>(body: &'a [u8], e: &serde_json::Error) -> Option<&'a [u8]> {
    let line_start: usize = body
        .split(|&b| b == b'\n')
        .take(e.line().checked_sub(1)?)
        .map(|line| line.len() + 1)
        .sum();
    body.get(..line_start + e.column())
}

/// Where the JSON string literal that ends where `e` points in `body` starts (the offset of
/// its opening quote), if one ends there: serde_json points just past a string it could not
/// use.
fn string_ending_at(body: &[u8], e: &serde_json::Error) -> Option<usize> {
    let inner = up_to_error(body, e)?.strip_suffix(b"\"")?;
    let mut end = inner.len();
    loop {
        let quote = inner[..end].iter().rposition(|&b| b == b'"')?;
        // A quote after an odd number of backslashes is inside the string.
        let escapes = inner[..quote]
            .iter()
            .rev()
            .take_while(|&&b| b == b'\\')
            .count();
        if escapes % 2 == 0 {
            return Some(quote);
        }
        end = quote;
    }
}

/// The key whose value starts at `value_start` in `body` (`"Key": value`), if the text before
/// the value is a key written without escapes: what a refusal there is about, at any depth,
/// whatever other members hold.
fn key_before(body: &[u8], value_start: usize) -> Option<&str> {
    let head = body.get(..value_start)?.trim_ascii_end();
    let head = head.strip_suffix(b":")?.trim_ascii_end();
    let head = head.strip_suffix(b"\"")?;
    let open = head.iter().rposition(|&b| b == b'"')?;
    let key = &head[open + 1..];
    // A backslash in the key, or before the quote found: escapes, which this does not read.
    if key.contains(&b'\\') || head[..open].last() == Some(&b'\\') {
        return None;
    }
    std::str::from_utf8(key).ok()
}

/// The names of the members of `v`, at any depth, that hold a value `is` picks: each name
/// once, in the order found.
fn holders<'a>(
    op: Op,
    v: &'a serde_json::Value,
    is: &dyn Fn(&serde_json::Value) -> bool,
) -> Vec<&'a str> {
    fn walk<'a>(
        v: &'a serde_json::Value,
        is: &dyn Fn(&serde_json::Value) -> bool,
        found: &mut Vec<&'a str>,
    ) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, v) in m {
                    if is(v) && !found.contains(&k.as_str()) {
                        found.push(k);
                    }
                    walk(v, is, found);
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|i| walk(i, is, found)),
            _ => {}
        }
    }
    let mut found = Vec::new();
    // At the top, only the request's own members: one AWS does not define is skipped by the
    // decoder (as AWS skips it), so it holds nothing the refusal could be about.
    let (decoded, refused) = request_members(op);
    if let serde_json::Value::Object(m) = v {
        for (k, v) in m
            .iter()
            .filter(|(k, _)| decoded.contains(&k.as_str()) || refused.contains(&k.as_str()))
        {
            if is(v) && !found.contains(&k.as_str()) {
                found.push(k);
            }
            walk(v, is, &mut found);
        }
    }
    found
}

/// The message AWS gives with `error`: AWS's own where it is fixed (AWS answers an
/// `InvalidCiphertextException` with an empty message), otherwise kmscks's. The socket, the
/// CLI and the C library keep kmscks's detail, which names the problem.
fn aws_message(error: &KmsError) -> &str {
    match error.kind() {
        ErrorKind::InvalidCiphertextException => "",
        _ => error.message(),
    }
}

/// A body that did not decode: a missing member is AWS's validation error, anything else a
/// serialization error naming what serde found.
fn json_error(e: serde_json::Error) -> KmsError {
    let text = e.to_string();
    if let Some(member) = text
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next())
    {
        return KmsError::not_null(&camel(member));
    }
    KmsError::new(
        ErrorKind::SerializationException,
        format!("The request body is not valid for this operation: {text}"),
    )
}

/// `KeyId` → `keyId`, as AWS names members in validation messages.
fn camel(member: &str) -> String {
    let mut chars = member.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::kms::{EncryptRequest, GenerateDataKeyResponse};
    use crate::secret::SecretBytes;

    #[test]
    fn answers_are_what_serde_json_writes_whatever_their_size() {
        for len in [0, 1, 32, 1024, 4096] {
            let response = Response::GenerateDataKey(GenerateDataKeyResponse {
                ciphertext_blob: vec![7; len],
                plaintext: Some(SecretBytes::new((0..len).map(|i| i as u8).collect())),
                key_id: "arn:aws:kms:us-east-1:111122223333:key/k".into(),
            });
            let Response::GenerateDataKey(r) = &response else {
                unreachable!("made just above")
            };
            assert_eq!(
                encode_response(&response),
                serde_json::to_vec(r).unwrap(),
                "{len}"
            );
        }
    }

    #[test]
    fn a_body_that_is_not_a_json_object_is_refused_not_read_by_position() {
        for body in [
            &br#"["alias/demo","aGVsbG8="]"#[..],
            b" \n [\"alias/demo\",\"aGVsbG8=\",{},[],null,true]",
            b"\"alias/demo\"",
            b"7",
            b"null",
        ] {
            let e = decode_request(Target::Op(Op::Encrypt), body).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::SerializationException, "{e}");
            assert!(e.message().contains("must be a JSON object"), "{e}");
        }
        // An object, and an empty body (read as `{}`), still decode.
        let body = br#" {"KeyId":"alias/demo","Plaintext":"aGVsbG8="}"#;
        assert!(matches!(
            decode_request(Target::Op(Op::Encrypt), body),
            Ok(Request::Encrypt(_))
        ));
        assert!(decode_request(Target::Op(Op::ListKeys), b"  ").is_ok());
    }

    #[test]
    fn secret_members_round_trip_through_base64_and_bad_base64_is_named() {
        let request = EncryptRequest {
            key_id: "k".into(),
            plaintext: SecretBytes::from_slice(b"a plaintext of 27 bytes....."),
            ..Default::default()
        };
        let json = serde_json::to_string(&request).unwrap();
        assert!(
            json.contains("\"Plaintext\":\"YSBwbGFpbnRleHQgb2YgMjcgYnl0ZXMuLi4uLg==\""),
            "{json}"
        );
        let back: EncryptRequest = serde_json::from_str(&json).unwrap();
        assert_eq!(back.plaintext.expose(), request.plaintext.expose());
        for len in [0, 1, 2, 3, 4, 5, 64] {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 37) as u8).collect();
            let json = format!(
                r#"{{"KeyId":"k","Plaintext":"{}"}}"#,
                base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &bytes)
            );
            let r: EncryptRequest = serde_json::from_str(&json).unwrap();
            assert_eq!(r.plaintext.expose(), &bytes[..], "{len}");
        }
        let e = serde_json::from_str::<EncryptRequest>(r#"{"KeyId":"k","Plaintext":"no!"}"#)
            .unwrap_err();
        assert!(e.to_string().contains("invalid base64"), "{e}");
        // A secret's bad base64 names neither the character nor where it is.
        assert!(
            !e.to_string().contains("symbol") && !e.to_string().contains('!'),
            "{e}"
        );
    }

    #[test]
    fn every_operation_is_a_target_under_its_service_and_nowhere_else() {
        for &op in Op::ALL.iter().filter(|&&op| op != Op::Refused) {
            let service = service_of(op);
            let target = format!("{service}.{}", op.name());
            assert_eq!(operation(&target).unwrap(), Target::Op(op), "{target}");
            let other = if service == KMS_SERVICE {
                CLOUDHSM_SERVICE
            } else {
                KMS_SERVICE
            };
            let wrong = format!("{other}.{}", op.name());
            match operation(&wrong) {
                Err(e) => assert_eq!(e.kind(), ErrorKind::UnknownOperationException, "{wrong}"),
                // Under CloudHSM's prefix, a KMS name may be a CloudHSM operation's action
                // (TagResource): then it is that operation, never KMS's.
                Ok(Target::Op(found)) => {
                    assert_eq!(service_of(found), CLOUDHSM_SERVICE, "{wrong}");
                    assert_ne!(found, op, "{wrong}");
                }
                Ok(other) => panic!("{wrong} is {other:?}"),
            }
        }
        assert_eq!(service_of(Op::CreateCluster), CLOUDHSM_SERVICE);
        assert_eq!(service_of(Op::Encrypt), KMS_SERVICE);
        assert_eq!(service_of(Op::WaitForConnection), KMS_SERVICE);
    }

    #[test]
    fn cloudhsmv2s_tagging_operations_are_targets_by_their_aws_names() {
        for (name, op) in [
            ("TagResource", Op::TagHsmResource),
            ("UntagResource", Op::UntagHsmResource),
            ("ListTags", Op::ListHsmTags),
        ] {
            let target = format!("{CLOUDHSM_SERVICE}.{name}");
            assert_eq!(operation(&target).unwrap(), Target::Op(op), "{target}");
            // KMS's operation of that name stays KMS's.
            let kms = operation(&format!("{KMS_SERVICE}.{name}"));
            assert_ne!(kms.ok(), Some(Target::Op(op)), "{name}");
        }
        assert_eq!(
            operation("TrentService.TagResource").unwrap(),
            Target::Op(Op::TagResource)
        );
        // An action two CloudHSM operations share names neither by itself.
        assert_eq!(
            operation("BaldrApiService.InitializeCluster").unwrap(),
            Target::Op(Op::InitializeCluster)
        );
        let req = decode_request(
            operation("BaldrApiService.TagResource").unwrap(),
            br#"{"ResourceId":"cluster-234abcdefgh","TagList":[{"Key":"a","Value":"b"}]}"#,
        )
        .unwrap();
        assert!(matches!(req, Request::TagHsmResource(r) if r.tag_list[0].key == "a"));
    }

    #[test]
    fn refused_operations_are_targets_by_their_aws_name_and_refused_itself_is_not() {
        for &r in Refused::ALL {
            let target = format!("TrentService.{}", r.name());
            assert_eq!(operation(&target).unwrap(), Target::Refused(r));
            let req = decode_request(Target::Refused(r), br#"{"KeyId":"alias/x"}"#).unwrap();
            assert!(
                matches!(req, Request::Refused(RefusedRequest { operation, .. }) if operation == r)
            );
        }
        for bad in [
            "TrentService.Refused",
            "TrentService",
            "Nope.Encrypt",
            "TrentService.Nope",
        ] {
            assert_eq!(
                operation(bad).unwrap_err().kind(),
                ErrorKind::UnknownOperationException,
                "{bad}"
            );
        }
    }

    #[test]
    fn a_body_decodes_into_its_operations_request_with_base64_blobs() {
        let req = decode_request(
            Target::Op(Op::Encrypt),
            br#"{"KeyId":"alias/a","Plaintext":"aGVsbG8=","EncryptionContext":{"k":"v"}}"#,
        )
        .unwrap();
        let Request::Encrypt(EncryptRequest {
            key_id,
            plaintext,
            encryption_context,
            ..
        }) = req
        else {
            panic!("not an Encrypt request")
        };
        assert_eq!(key_id, "alias/a");
        assert_eq!(plaintext.expose(), b"hello");
        assert_eq!(encryption_context["k"], "v");
        // No body at all reads as `{}`.
        assert!(matches!(
            decode_request(Target::Op(Op::ListKeys), b"").unwrap(),
            Request::ListKeys(_)
        ));
    }

    #[test]
    fn bad_bodies_get_awss_errors_naming_the_problem() {
        let e = decode_request(Target::Op(Op::Encrypt), b"{not json").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::SerializationException);
        let e = decode_request(
            Target::Op(Op::Encrypt),
            br#"{"KeyId":7,"Plaintext":"aGk="}"#,
        )
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::SerializationException);
        assert!(e.message().contains("invalid type"), "{e}");
        // A member left out takes its default; the operation's own validation names it.
        assert!(decode_request(Target::Op(Op::DescribeKey), b"{}").is_ok());
        assert_eq!(
            json_error(serde_json::from_str::<RefusedRequest>("{}").unwrap_err()).message(),
            "1 validation error detected: Value 'null' at 'operation' failed to satisfy \
             constraint: Member must not be null"
        );
        let e = decode_request(
            Target::Op(Op::Encrypt),
            br#"{"KeyId":"a","Plaintext":"!!"}"#,
        )
        .unwrap_err();
        assert!(e.message().contains("base64"), "{e}");
    }

    #[test]
    fn the_client_side_reads_back_what_the_server_side_writes() {
        let req = Request::Encrypt(EncryptRequest {
            key_id: "alias/a".into(),
            plaintext: crate::secret::SecretBytes::new(b"hi".to_vec()),
            ..serde_json::from_str(r#"{"KeyId":"x","Plaintext":""}"#).unwrap()
        });
        let (target, body) = encode_request(&req);
        assert_eq!(target, "TrentService.Encrypt");
        let back = decode_request(operation(&target).unwrap(), &body).unwrap();
        assert!(matches!(back, Request::Encrypt(r) if r.plaintext.expose() == b"hi"));
        let refused = Request::Refused(RefusedRequest {
            operation: Refused::ReplicateKey,
            key_id: "k".into(),
        });
        let (target, body) = encode_request(&refused);
        assert_eq!(
            (target.as_str(), &body[..]),
            ("TrentService.ReplicateKey", &br#"{"KeyId":"k"}"#[..])
        );
        let resp = Response::ListKeys(ListKeysResponse {
            keys: vec![],
            next_marker: Some("m".into()),
            truncated: true,
        });
        assert!(matches!(
            decode_response(Op::ListKeys, &encode_response(&resp)).unwrap(),
            Response::ListKeys(r) if r.truncated && r.next_marker.as_deref() == Some("m")
        ));
        let (status, body) = encode_error(&err!(NotFoundException, "gone"));
        let e = decode_error(status, &body);
        assert_eq!(
            (e.kind(), e.message()),
            (ErrorKind::NotFoundException, "gone")
        );
        let e = decode_error(
            400,
            br#"{"__type":"com.amazonaws.kms#DisabledException","Message":"off"}"#,
        );
        assert_eq!(
            (e.kind(), e.message()),
            (ErrorKind::DisabledException, "off")
        );
    }

    #[test]
    fn a_value_its_enum_lacks_is_awss_validation_error_naming_the_member() {
        let e = decode_request(
            Target::Op(Op::GenerateDataKey),
            br#"{"KeyId":"k","KeySpec":"AES_512"}"#,
        )
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ValidationException);
        assert!(
            e.message().starts_with(
                "1 validation error detected: Value 'AES_512' at 'keySpec' failed to satisfy \
                 constraint: Member must satisfy enum value set: ["
            ),
            "{e}"
        );
        assert!(
            e.message().contains("AES_256") && e.message().ends_with(']'),
            "{e}"
        );
    }

    #[test]
    fn a_value_its_enum_lacks_is_named_by_the_key_it_is_written_under_whatever_others_hold() {
        // Members sort by name once parsed: `KeyId` holding the same text comes first.
        for body in [
            r#"{"KeyId":"AES_512","KeySpec":"AES_512"}"#,
            "{\"KeySpec\" :\n \"AES_512\", \"KeyId\":\"AES_512\"}",
        ] {
            let e = decode_request(Target::Op(Op::GenerateDataKey), body.as_bytes()).unwrap_err();
            assert!(
                e.message()
                    .starts_with("1 validation error detected: Value 'AES_512' at 'keySpec'"),
                "{body}: {e}"
            );
        }
    }

    /// The kind and message `body` gets as a request of `op`.
    fn refusal(op: Op, body: &str) -> (ErrorKind, String) {
        let e = decode_request(Target::Op(op), body.as_bytes()).unwrap_err();
        (e.kind(), e.message().to_owned())
    }

    /// Asserts that `body`, as a request of `op`, gets AWS's refusal of `value` at `member`
    /// for crossing `bound` (`>= 1`, `<= 1024`).
    fn assert_crosses(op: Op, body: &str, value: &str, member: &str, bound: &str) {
        let bound = bound
            .replace(">=", "greater than or equal to")
            .replace("<=", "less than or equal to");
        let message = format!(
            "1 validation error detected: Value '{value}' at '{member}' failed to satisfy \
             constraint: Member must have value {bound}"
        );
        assert_eq!(
            refusal(op, body),
            (ErrorKind::ValidationException, message),
            "{body}"
        );
    }

    #[test]
    fn an_integer_its_type_cannot_hold_is_awss_validation_error_naming_the_bound_it_crosses() {
        const KEY: &str = r#""KeyId":"alias/demo","#;
        let cases = [
            (Op::GenerateDataKey, KEY, "NumberOfBytes", "-5", ">= 1"),
            (Op::GenerateRandom, "", "NumberOfBytes", "-5", ">= 1"),
            (
                Op::GenerateDataKeyWithoutPlaintext,
                KEY,
                "NumberOfBytes",
                "5000000000",
                "<= 1024",
            ),
            // One member, each operation's own range.
            (Op::ListKeys, "", "Limit", "-1", ">= 1"),
            (Op::ListKeys, "", "Limit", "5000000000", "<= 1000"),
            (Op::ListAliases, "", "Limit", "5000000000", "<= 100"),
            // The model's window, which the service checks before its own 7 to 30 days.
            (
                Op::ScheduleKeyDeletion,
                KEY,
                "PendingWindowInDays",
                "-7",
                ">= 1",
            ),
            (
                Op::ScheduleKeyDeletion,
                KEY,
                "PendingWindowInDays",
                "4294967296",
                "<= 365",
            ),
            (
                Op::EnableKeyRotation,
                KEY,
                "RotationPeriodInDays",
                "-365",
                ">= 90",
            ),
            // Past 64 bits too, as written (serde_json reads it as a float).
            (
                Op::GenerateRandom,
                "",
                "NumberOfBytes",
                "-100000000000000000000",
                ">= 1",
            ),
        ];
        for (op, other, member, value, bound) in cases {
            let body = format!("{{{other}\"{member}\":{value}}}");
            assert_crosses(op, &body, value, &camel(member), bound);
        }
        // Deeper in the body: in a batch's item, in a fault's variant; and on any line.
        let batch =
            r#"{"Items":[{"KeyId":"k","NumberOfBytes":32},{"KeyId":"k","NumberOfBytes":-5}]}"#;
        assert_crosses(
            Op::GenerateDataKeyBatch,
            batch,
            "-5",
            "numberOfBytes",
            ">= 1",
        );
        let slow = r#"{"ClusterId":"c","Fault":{"SlowHsm":{"HsmId":"h","LatencyMs":5000000000}}}"#;
        assert_crosses(Op::InjectFault, slow, "5000000000", "latencyMs", "<= 60000");
        let cut = r#"{"ClusterId":"c","Fault":{"NetworkDownFor":{"DurationMs":-1}}}"#;
        assert_crosses(Op::InjectFault, cut, "-1", "durationMs", ">= 1");
        let lines = "{\n  \"NumberOfBytes\":\n    100000000000000000000\n}";
        assert_crosses(
            Op::GenerateRandom,
            lines,
            "100000000000000000000",
            "numberOfBytes",
            "<= 1024",
        );
    }

    #[test]
    fn a_member_held_to_no_range_of_its_own_is_held_to_its_types() {
        let timeout = r#"{"CustomKeyStoreId":"cks-1","TimeoutMillis":-1}"#;
        assert_crosses(
            Op::WaitForConnection,
            timeout,
            "-1",
            "timeoutMillis",
            ">= 0",
        );
        let big = "18446744073709551616";
        let handle = format!(r#"{{"ClusterId":"c","KeyReference":{big}}}"#);
        assert_crosses(
            Op::DeleteKeyObject,
            &handle,
            big,
            "keyReference",
            "<= 18446744073709551615",
        );
    }

    #[test]
    fn a_member_aws_does_not_define_holding_the_same_integer_does_not_hide_the_one_it_does() {
        assert_crosses(
            Op::ListKeys,
            r#"{"Limit":-5,"Zzz":-5}"#,
            "-5",
            "limit",
            ">= 1",
        );
    }

    #[test]
    fn an_integer_is_refused_naming_the_key_it_is_written_under_whatever_other_members_hold() {
        // Below the top the request's members are not told from others by name: the text
        // says which one the refused value is written under.
        let batch = r#"{"Items":[{"KeyId":"a","Zzz":-5,"NumberOfBytes":-5,"Yyy":-5}]}"#;
        assert_crosses(
            Op::GenerateDataKeyBatch,
            batch,
            "-5",
            "numberOfBytes",
            ">= 1",
        );
        let spaced = "{\"Items\":[{\"KeyId\":\"a\",\"Zzz\":-5,\n \"NumberOfBytes\" :\t-5}]}";
        assert_crosses(
            Op::GenerateDataKeyBatch,
            spaced,
            "-5",
            "numberOfBytes",
            ">= 1",
        );
    }

    #[test]
    fn a_value_its_enum_lacks_under_a_key_written_with_escapes_is_named_if_one_member_holds_it() {
        // `Key\u0053pec` is KeySpec: found by the value it holds, unless `KeyId` holds it too.
        let (kind, message) = refusal(Op::GenerateDataKey, r#"{"KeyId":"k","Key\u0053pec":"X"}"#);
        assert_eq!(kind, ErrorKind::ValidationException);
        assert!(message.starts_with("1 validation error detected: Value 'X' at 'keySpec' "));
        let (kind, message) = refusal(Op::GenerateDataKey, r#"{"KeyId":"X","Key\u0053pec":"X"}"#);
        assert_eq!(kind, ErrorKind::ValidationException);
        assert!(
            message.starts_with(
                "1 validation error detected: Value 'X' failed to satisfy constraint: Member \
                 must satisfy enum value set: [AES_256, AES_128]"
            ),
            "{message}"
        );
    }

    #[test]
    fn an_integer_under_a_key_written_with_escapes_is_named_by_the_members_holding_it() {
        // `Number\u004ffBytes` is NumberOfBytes; escapes are not read back from the text, and
        // the members holding -5 are searched for instead: one name, named; two, none.
        let alone = r#"{"Items":[{"KeyId":"a","Number\u004ffBytes":-5}]}"#;
        assert_crosses(
            Op::GenerateDataKeyBatch,
            alone,
            "-5",
            "numberOfBytes",
            ">= 1",
        );
        assert_eq!(
            refusal(
                Op::GenerateDataKeyBatch,
                r#"{"Items":[{"KeyId":"a","Number\u004ffBytes":-5,"Zzz":-5}]}"#
            ),
            (
                ErrorKind::ValidationException,
                "1 validation error detected: Value '-5' failed to satisfy constraint: Member \
                 must have value greater than or equal to 0"
                    .to_owned()
            ),
        );
    }

    #[test]
    fn a_value_that_is_no_integer_at_all_stays_awss_serialization_error() {
        let cases = [
            (
                r#"{"NumberOfBytes":"5"}"#,
                "invalid type: string \"5\", expected u32 at line 1 column 20",
            ),
            (
                r#"{"NumberOfBytes":1.5}"#,
                "invalid type: floating point `1.5`, expected u32 at line 1 column 20",
            ),
            // A float of an integer's value, and past 64 bits: still written as a float.
            (
                r#"{"NumberOfBytes":1e20}"#,
                "invalid type: floating point `1e+20`, expected u32 at line 1 column 21",
            ),
            // `-0` is zero, not a value under a bound: serde_json reads it as a float.
            (
                r#"{"NumberOfBytes":-0}"#,
                "invalid type: floating point `-0.0`, expected u32 at line 1 column 19",
            ),
        ];
        for (body, serde) in cases {
            assert_eq!(
                refusal(Op::GenerateRandom, body),
                (
                    ErrorKind::SerializationException,
                    format!("The request body is not valid for this operation: {serde}")
                ),
                "{body}"
            );
        }
    }

    #[test]
    fn a_member_aws_defines_and_kmscks_does_not_honour_is_refused_not_dropped() {
        let e = decode_request(
            Target::Op(Op::GenerateDataKey),
            br#"{"KeyId":"a","Recipient":{"KeyEncryptionAlgorithm":"RSAES_OAEP_SHA_256"}}"#,
        )
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::UnsupportedOperationException);
        assert!(e.message().contains("Recipient"), "{e}");
        // A member AWS does not define is skipped, as AWS skips it.
        assert!(decode_request(Target::Op(Op::DescribeKey), br#"{"KeyId":"a","Zzz":1}"#).is_ok());
    }

    #[test]
    fn request_members_are_awss_names_of_the_request_type() {
        let (decoded, refused) = request_members(Op::Decrypt);
        assert!(decoded.contains(&"CiphertextBlob") && decoded.contains(&"DryRun"));
        assert!(refused.contains(&"Recipient"));
        assert!(request_members(Op::ListKeys).1.is_empty());
    }

    #[test]
    fn errors_carry_the_exception_name_and_the_tables_status() {
        let (status, body) = encode_error(&err!(NotFoundException, "Key 'x' does not exist"));
        assert_eq!(status, 400);
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["__type"], "NotFoundException");
        assert_eq!(v["message"], "Key 'x' does not exist");
        let (status, _) = encode_error(&err!(KMSInternalException, "boom"));
        assert_eq!(status, ErrorKind::KMSInternalException.http_status());
        // AWS says nothing of why a ciphertext is invalid.
        let (_, body) = encode_error(&err!(InvalidCiphertextException, "tag mismatch"));
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["message"], "");
    }
}
