//! Identifiers: parsed newtypes, so that a value of one of these types is always well formed.

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::err;
use crate::error::{Constraint, KmsError, Result};

/// Fills `buf` from aws-lc-rs's generator. Identifier generation is control-plane only, so a
/// call per identifier is fine here.
fn random_fill(buf: &mut [u8]) {
    // aws-lc's generator does not fail once the library is initialised; an error here would mean
    // the process cannot produce randomness at all, and no identifier may be made without it.
    aws_lc_rs::rand::fill(buf).expect("system randomness unavailable");
}

/// `len` characters from `alphabet`, drawn uniformly (the alphabets are powers of two long).
fn random_chars(alphabet: &[u8], len: usize) -> String {
    debug_assert!(alphabet.len().is_power_of_two());
    let mut bytes = vec![0u8; len];
    random_fill(&mut bytes);
    bytes
        .iter()
        .map(|b| alphabet[usize::from(*b) % alphabet.len()] as char)
        .collect()
}

/// An id a message quotes: whole when it is at most [`Echoed::CHARS`] characters, else its
/// first ones and its length. A frame may carry a megabyte of "id", and the daemon logs the
/// error it makes.
struct Echoed<'a>(&'a str);

impl Echoed<'_> {
    /// The most characters of an id a message quotes (every id kmscks issues is shorter).
    const CHARS: usize = 64;
}

impl fmt::Display for Echoed<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.char_indices().nth(Self::CHARS) {
            None => write!(f, "{:?}", self.0),
            Some((cut, _)) => write!(f, "{:?}… ({} bytes)", &self.0[..cut], self.0.len()),
        }
    }
}

const HEX: &[u8] = b"0123456789abcdef";
/// CloudHSM identifiers use lowercase base32 (`[2-7a-z]`).
const BASE32: &[u8] = b"abcdefghijklmnopqrstuvwxyz234567";

macro_rules! prefixed_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal, $alphabet:expr, $len:literal, $what:literal) => {
        prefixed_id!($(#[$doc])* $name, $prefix, $alphabet, $len, $what, wire = parse);
    };
    ($(#[$doc:meta])* $name:ident, $prefix:literal, $alphabet:expr, $len:literal, $what:literal,
     wire = $wire:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// A fresh random identifier.
            pub fn generate() -> $name {
                $name(format!("{}{}", $prefix, random_chars($alphabet, $len)))
            }

            /// Accepts exactly the shape kmscks issues.
            pub fn parse(text: &str) -> Option<$name> {
                let rest = text.strip_prefix($prefix)?;
                let ok = rest.len() == $len && rest.bytes().all(|b| $alphabet.contains(&b));
                ok.then(|| $name(text.to_owned()))
            }

            /// The identifier as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// What this identifier names, for messages.
            pub const WHAT: &'static str = $what;
        }

        /// On the socket protocol: the text, as a bincode string.
        impl bincode::Encode for $name {
            fn encode<E: bincode::enc::Encoder>(
                &self,
                encoder: &mut E,
            ) -> std::result::Result<(), bincode::error::EncodeError> {
                bincode::Encode::encode(&self.0, encoder)
            }
        }

        /// Decoding checks the shape, as parsing does: a decoded id is always well formed.
        impl<Context> bincode::Decode<Context> for $name {
            fn decode<D: bincode::de::Decoder<Context = Context>>(
                decoder: &mut D,
            ) -> std::result::Result<$name, bincode::error::DecodeError> {
                let text: String = bincode::Decode::decode(decoder)?;
                $name::$wire(&text).ok_or_else(|| {
                    bincode::error::DecodeError::OtherString(format!(
                        "{} is not a valid {} id",
                        Echoed(&text),
                        $what
                    ))
                })
            }
        }
        bincode::impl_borrow_decode!($name);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

prefixed_id!(
    /// `cks-` + 17 lowercase hex digits.
    CustomKeyStoreId, "cks-", HEX, 17, "custom key store"
);
prefixed_id!(
    /// `cluster-` + 11 lowercase base32 characters.
    ClusterId, "cluster-", BASE32, 11, "cluster", wire = parse_lenient
);
prefixed_id!(
    /// `hsm-` + 11 lowercase base32 characters.
    HsmId, "hsm-", BASE32, 11, "HSM"
);
prefixed_id!(
    /// `backup-` + 11 lowercase base32 characters.
    BackupId, "backup-", BASE32, 11, "backup"
);
prefixed_id!(
    /// `subnet-` + 17 lowercase hex digits (as issued; AWS's `subnet-[0-9a-fA-F]{8,17}` is
    /// accepted on input, [`SubnetId::parse_lenient`]).
    SubnetId, "subnet-", HEX, 17, "subnet", wire = parse_lenient
);

impl SubnetId {
    /// AWS's pattern for a subnet id, as its messages quote it.
    pub const PATTERN: &'static str = "subnet-[0-9a-fA-F]{8,17}";

    /// Accepts AWS's shape `subnet-[0-9a-fA-F]{8,17}` (what `aws cloudhsmv2 create-cluster
    /// --subnet-ids` takes); kmscks only issues the 17-digit lowercase form.
    pub fn parse_lenient(text: &str) -> Option<SubnetId> {
        let rest = text.strip_prefix("subnet-")?;
        let ok = (8..=17).contains(&rest.len()) && rest.bytes().all(|b| b.is_ascii_hexdigit());
        ok.then(|| SubnetId(text.to_owned()))
    }
}

impl ClusterId {
    /// Wraps text that is already known to be a cluster id shape (`cluster-[2-7a-zA-Z]{11,16}`),
    /// as AWS accepts on input; kmscks only issues the 11-character form.
    pub fn parse_lenient(text: &str) -> Option<ClusterId> {
        let rest = text.strip_prefix("cluster-")?;
        let ok = (11..=16).contains(&rest.len())
            && rest
                .bytes()
                .all(|b| b.is_ascii_alphabetic() || (b'2'..=b'7').contains(&b));
        ok.then(|| ClusterId(text.to_owned()))
    }
}

/// The length of a key id's text, the UUID's hyphenated form.
const KEY_ID_LEN: usize = 36;

thread_local! {
    /// The last key id text this thread parsed, and its id ([`KeyId::parse`]); at first the
    /// nil UUID's text, which is that id.
    static LAST_KEY_ID: Cell<([u8; KEY_ID_LEN], KeyId)> = const {
        Cell::new((*b"00000000-0000-0000-0000-000000000000", KeyId(Uuid::nil())))
    };
}

/// The last key ARN a thread parsed (see [`Scope::parse_key_name`]): its text, the scope it
/// was parsed in, and the id it named.
#[derive(Default)]
struct LastKeyArn {
    text: String,
    region: String,
    account_id: String,
    id: Option<KeyId>,
}

thread_local! {
    static LAST_KEY_ARN: RefCell<LastKeyArn> = RefCell::default();
}

/// A KMS key id: a UUID, written in lowercase hyphenated form.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct KeyId(Uuid);

impl KeyId {
    /// A fresh random (version 4) key id.
    pub fn generate() -> KeyId {
        let mut bytes = [0u8; 16];
        random_fill(&mut bytes);
        KeyId(uuid::Builder::from_random_bytes(bytes).into_uuid())
    }

    /// Parses the 36-character UUID form. The last text a thread parsed is remembered with its
    /// id (a data-plane caller names the same key call after call, and the hex decode was
    /// about 120 instructions of a single Encrypt's engine-side 2,500): the same 36 bytes
    /// answer the same id without a decode. Parsing is a function of the bytes alone, and the
    /// memory is one entry per thread.
    pub fn parse(text: &str) -> Option<KeyId> {
        let bytes: &[u8; KEY_ID_LEN] = text.as_bytes().try_into().ok()?;
        LAST_KEY_ID.with(|last| {
            let (text, id) = last.get();
            if text == *bytes {
                return Some(id);
            }
            let id = Uuid::try_parse_ascii(bytes).ok().map(KeyId)?;
            last.set((*bytes, id));
            Some(id)
        })
    }

    /// The 16 bytes of the UUID (used in ciphertext headers).
    pub fn as_bytes(&self) -> &[u8; 16] {
        self.0.as_bytes()
    }

    /// The key id from its 16 bytes.
    pub fn from_bytes(bytes: [u8; 16]) -> KeyId {
        KeyId(Uuid::from_bytes(bytes))
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The account and Region that every ARN of this kmscks instance names.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scope {
    /// 12-digit AWS account id.
    pub account_id: String,
    /// Region name, e.g. `us-east-1`.
    pub region: String,
}

impl Default for Scope {
    fn default() -> Scope {
        Scope {
            account_id: "111122223333".into(),
            region: "us-east-1".into(),
        }
    }
}

impl Scope {
    /// The Region a request names (`aws --region`), else this scope's: the one Region whose
    /// regional resources (CloudHSM backups, clusters in a listing) the request reaches.
    pub fn region_or<'a>(&'a self, asked: Option<&'a str>) -> &'a str {
        asked.unwrap_or(&self.region)
    }

    /// `arn:aws:kms:<region>:<account>:key/<id>`.
    pub fn key_arn(&self, id: &KeyId) -> String {
        format!("arn:aws:kms:{}:{}:key/{}", self.region, self.account_id, id)
    }

    /// `arn:aws:kms:<region>:<account>:<alias/name>`.
    pub fn alias_arn(&self, alias_name: &str) -> String {
        format!(
            "arn:aws:kms:{}:{}:{}",
            self.region, self.account_id, alias_name
        )
    }

    /// The account root principal, `arn:aws:iam::<account>:root`.
    pub fn root_principal(&self) -> String {
        format!("arn:aws:iam::{}:root", self.account_id)
    }

    /// Parses a key reference as the crypto operations and DescribeKey accept it: key id, key
    /// ARN, alias name or alias ARN.
    pub fn parse_key_ref(&self, text: &str) -> Result<KeyRef> {
        self.parse_key_name(text).map(KeyName::into_ref)
    }

    /// [`Scope::parse_key_ref`] without a copy: an alias stays borrowed from `text` (the data
    /// plane's hot path parses every request's key reference).
    ///
    /// The last key ARN a thread parsed is remembered with its scope and id, as
    /// [`KeyId::parse`] remembers the last id: a caller naming one key by ARN call after call
    /// (the usual SDK caller) then pays three comparisons instead of the ARN's checks and the
    /// id's (about 270 instructions of a single Encrypt's engine-side 2,250). The verdict is
    /// a function of the text and the scope alone, both compared.
    pub fn parse_key_name<'a>(&self, text: &'a str) -> Result<KeyName<'a>> {
        if let Some(rest) = text.strip_prefix("arn:") {
            if let Some(id) = self.remembered_key_arn(text) {
                return Ok(KeyName::Id(id));
            }
            let resource = self.arn_resource(rest, text)?;
            if let Some(id) = resource.strip_prefix("key/") {
                let id = KeyId::parse(id)
                    .ok_or_else(|| err!(NotFoundException, "Invalid arn {text}"))?;
                self.remember_key_arn(text, id);
                return Ok(KeyName::Id(id));
            }
            if resource.starts_with("alias/") {
                return Ok(KeyName::Alias(Cow::Borrowed(resource)));
            }
            return Err(err!(NotFoundException, "Invalid arn {text}"));
        }
        if text.starts_with("alias/") {
            return Ok(KeyName::Alias(Cow::Borrowed(text)));
        }
        KeyId::parse(text).map(KeyName::Id).ok_or_else(|| {
            if text.is_empty() {
                // AWS checks the member's length before it looks for a key; over HTTP a
                // request without the member decodes to this empty text too.
                KmsError::validation("", "keyId", Constraint::MinLength(1))
            } else {
                err!(NotFoundException, "Invalid keyId '{text}'")
            }
        })
    }

    /// The id of key ARN `text` if this thread parsed it last, in this scope.
    fn remembered_key_arn(&self, text: &str) -> Option<KeyId> {
        LAST_KEY_ARN
            .try_with(|last| {
                let last = last.try_borrow().ok()?;
                let same = last.text == text
                    && last.region == self.region
                    && last.account_id == self.account_id;
                last.id.filter(|_| same)
            })
            .ok()
            .flatten()
    }

    /// Remembers that key ARN `text` names `id` in this scope (see [`Scope::parse_key_name`]);
    /// the memo's strings keep their capacity, so a warm thread allocates nothing here.
    fn remember_key_arn(&self, text: &str, id: KeyId) {
        let _ = LAST_KEY_ARN.try_with(|last| {
            if let Ok(mut last) = last.try_borrow_mut() {
                let last = &mut *last;
                for (to, from) in [
                    (&mut last.text, text),
                    (&mut last.region, self.region.as_str()),
                    (&mut last.account_id, self.account_id.as_str()),
                ] {
                    to.clear();
                    to.push_str(from);
                }
                last.id = Some(id);
            }
        });
    }

    /// Parses a key reference as the management operations accept it: key id or key ARN only.
    pub fn parse_key_id(&self, text: &str) -> Result<KeyId> {
        match self.parse_key_ref(text)? {
            KeyRef::Id(id) => Ok(id),
            KeyRef::Alias(_) => Err(err!(NotFoundException, "Invalid keyId '{text}'")),
        }
    }

    /// Checks `kms:<region>:<account>:` and returns the resource part of an ARN (without `arn:`).
    fn arn_resource<'a>(&self, rest: &'a str, whole: &str) -> Result<&'a str> {
        // The usual case, an ARN of this scope: prefix comparisons instead of a split (the
        // split's character searches were most of a data-plane call's key parse). The same
        // verdict as the split below, as long as neither part of the scope holds a `:`.
        let plain = |part: &str| !holds_colon(part.as_bytes());
        if let Some(res) = rest
            .strip_prefix("aws:kms:")
            .and_then(|r| r.strip_prefix(self.region.as_str()))
            .and_then(|r| r.strip_prefix(':'))
            .and_then(|r| r.strip_prefix(self.account_id.as_str()))
            .and_then(|r| r.strip_prefix(':'))
        {
            if plain(&self.region) && plain(&self.account_id) {
                return Ok(res);
            }
        }
        let mut parts = rest.splitn(5, ':');
        let (partition, service, region, account, resource) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        );
        match (partition, service, region, account, resource) {
            (Some("aws"), Some("kms"), Some(r), Some(a), Some(res))
                if r == self.region && a == self.account_id =>
            {
                Ok(res)
            }
            (Some("aws"), Some("kms"), Some(_), Some(_), Some(_)) => Err(err!(
                NotFoundException,
                "{whole} does not exist in account {} and Region {}",
                self.account_id,
                self.region
            )),
            _ => Err(err!(NotFoundException, "Invalid arn {whole}")),
        }
    }
}

/// Whether `bytes` holds a `:`, eight bytes at a time: the key parse of every data-plane call
/// asks it of the scope's Region and account, a few bytes each, for which `contains` (a
/// byte-at-a-time search below 16 bytes) cost as much as the rest of the parse.
fn holds_colon(bytes: &[u8]) -> bool {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    const COLONS: u64 = u64::from_ne_bytes([b':'; 8]);
    let mut words = bytes.chunks_exact(8);
    let any = words.by_ref().any(|w| {
        let mut word = [0u8; 8];
        word.copy_from_slice(w);
        // A zero byte in `x` (a `:` in `w`) and only then sets its high bit here.
        let x = u64::from_ne_bytes(word) ^ COLONS;
        x.wrapping_sub(ONES) & !x & HIGHS != 0
    });
    any || words.remainder().contains(&b':')
}

/// A reference to a KMS key as a caller may give it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyRef {
    /// A key id (from a bare id or a key ARN).
    Id(KeyId),
    /// An alias name, `alias/...` (from an alias name or alias ARN).
    Alias(String),
}

impl KeyRef {
    /// The same reference, borrowed.
    pub fn as_name(&self) -> KeyName<'_> {
        match self {
            KeyRef::Id(id) => KeyName::Id(*id),
            KeyRef::Alias(a) => KeyName::Alias(Cow::Borrowed(a)),
        }
    }
}

/// A [`KeyRef`] whose alias may be borrowed (from a request's bytes) or owned (a request
/// handed to another thread): what the engine takes, so that naming a key by alias costs no
/// allocation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyName<'a> {
    /// A key id (from a bare id or a key ARN).
    Id(KeyId),
    /// An alias name, `alias/...` (from an alias name or alias ARN).
    Alias(Cow<'a, str>),
}

impl KeyName<'_> {
    /// The owned reference.
    pub fn into_ref(self) -> KeyRef {
        match self {
            KeyName::Id(id) => KeyRef::Id(id),
            KeyName::Alias(a) => KeyRef::Alias(a.into_owned()),
        }
    }

    /// A copy that borrows nothing (an alias is copied).
    pub fn to_static(&self) -> KeyName<'static> {
        match self {
            KeyName::Id(id) => KeyName::Id(*id),
            KeyName::Alias(a) => KeyName::Alias(Cow::Owned(a.to_string())),
        }
    }

    /// This reference, borrowed from `self`.
    pub fn borrowed(&self) -> KeyName<'_> {
        match self {
            KeyName::Id(id) => KeyName::Id(*id),
            KeyName::Alias(a) => KeyName::Alias(Cow::Borrowed(a)),
        }
    }

    /// `self == other`, but an alias borrowed from the very bytes of `other`'s is equal
    /// without comparing them: the requests of a pipelined or batched run on one alias share
    /// one name, and the hot path compares it up to three times per request.
    #[inline]
    pub(crate) fn same(&self, other: &KeyName<'_>) -> bool {
        match (self, other) {
            (KeyName::Id(a), KeyName::Id(b)) => a == b,
            (KeyName::Alias(a), KeyName::Alias(b)) => same_text(a, b),
            _ => false,
        }
    }
}

/// `a == b`, without comparing the bytes when both are the same slice (address and length).
#[inline]
pub(crate) fn same_text(a: &str, b: &str) -> bool {
    std::ptr::eq(a, b) || a == b
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    #[test]
    fn an_empty_key_reference_is_awss_validation_error_not_a_missing_key() {
        let scope = Scope::default();
        let e = scope.parse_key_ref("").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ValidationException);
        assert!(
            e.message()
                .contains("at 'keyId' failed to satisfy constraint: Member must have length"),
            "{e}"
        );
        let e = scope.parse_key_ref("nope").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFoundException);
    }

    #[test]
    fn a_remembered_key_arn_answers_only_in_the_scope_it_was_parsed_in() {
        let home = Scope::default();
        let away = Scope {
            region: "eu-west-1".into(),
            ..Scope::default()
        };
        let (one, two) = (KeyId::generate(), KeyId::generate());
        let arn = home.key_arn(&one);
        for _ in 0..2 {
            assert_eq!(home.parse_key_name(&arn).unwrap(), KeyName::Id(one));
            // The same text in another Region's scope is refused, remembered or not.
            let e = away.parse_key_name(&arn).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::NotFoundException);
            assert_eq!(
                away.parse_key_name(&away.key_arn(&two)).unwrap(),
                KeyName::Id(two)
            );
            assert!(home.parse_key_name(&away.key_arn(&two)).is_err());
        }
        // A key ARN differing in one character of its id names that id.
        let other = arn.replace(&one.to_string(), &two.to_string());
        assert_eq!(home.parse_key_name(&other).unwrap(), KeyName::Id(two));
        assert_eq!(home.parse_key_name(&arn).unwrap(), KeyName::Id(one));
    }

    #[test]
    fn same_names_the_same_key_as_equality_does_whether_or_not_the_bytes_are_shared() {
        let (a, b) = (String::from("alias/one"), String::from("alias/one"));
        let id = KeyId::generate();
        let names = [
            KeyName::Alias(Cow::Borrowed(&a)),
            KeyName::Alias(Cow::Borrowed(&b)),
            KeyName::Alias(Cow::Borrowed(&a[..8])),
            KeyName::Alias(Cow::Owned("alias/two".into())),
            KeyName::Id(id),
            KeyName::Id(KeyId::generate()),
        ];
        for x in &names {
            for y in &names {
                assert_eq!(x.same(y), x == y, "{x:?} against {y:?}");
            }
        }
        assert!(same_text(&a, &a) && same_text(&a, &b) && !same_text(&a, &a[..8]));
    }

    #[test]
    fn holds_colon_finds_a_colon_at_any_position_and_nothing_else() {
        for len in 0..40 {
            let plain: Vec<u8> = (0..len)
                .map(|i| b"us-east-1 111122223333;9"[i % 24])
                .collect();
            assert!(!holds_colon(&plain), "{len} bytes without a colon");
            for at in 0..len {
                let mut with = plain.clone();
                with[at] = b':';
                assert!(holds_colon(&with), "a colon at {at} of {len}");
            }
        }
        // Bytes next to ':' (0x3a) in value, and high bytes, are not colons.
        assert!(!holds_colon(&[
            0x39,
            0x3b,
            0xba,
            0x3a ^ 0x80,
            0xff,
            0x00,
            0x01,
            0x3b,
            0x39
        ]));
    }

    #[test]
    fn a_key_id_parsed_again_is_the_same_id_and_a_text_one_byte_apart_is_parsed_anew() {
        let nil = "00000000-0000-0000-0000-000000000000";
        assert_eq!(KeyId::parse(nil), Some(KeyId::from_bytes([0; 16])));
        assert_eq!(
            KeyId::parse(&"\0".repeat(36)),
            None,
            "not the first entry's id"
        );
        let a = KeyId::generate();
        let text = a.to_string();
        for _ in 0..2 {
            assert_eq!(KeyId::parse(&text), Some(a));
        }
        for at in 0..text.len() {
            let mut other = text.clone().into_bytes();
            // A hex digit becomes another one; a hyphen becomes a digit (invalid).
            other[at] = if other[at] == b'0' { b'1' } else { b'0' };
            let other = String::from_utf8(other).expect("ASCII in, ASCII out");
            assert_eq!(
                KeyId::parse(&other),
                Uuid::try_parse(&other).ok().map(KeyId)
            );
            assert_ne!(KeyId::parse(&other), Some(a), "byte {at} changed");
            assert_eq!(KeyId::parse(&text), Some(a));
        }
        assert_eq!(KeyId::parse(&text.to_uppercase()), Some(a));
        assert_eq!(KeyId::parse(&text[..35]), None);
    }

    #[test]
    fn an_invalid_id_on_the_wire_is_quoted_whole_when_short_and_cut_with_its_length_when_long() {
        let refusal = |text: &str| {
            let wire = bincode::encode_to_vec(text, crate::protocol::BINCODE_CONFIG)
                .expect("a string always encodes");
            let decoded: std::result::Result<(CustomKeyStoreId, usize), _> =
                bincode::decode_from_slice(&wire, crate::protocol::BINCODE_CONFIG);
            match decoded.expect_err("not an id") {
                bincode::error::DecodeError::OtherString(message) => message,
                other => panic!("refused for another reason: {other:?}"),
            }
        };
        assert_eq!(
            refusal("cks-123"),
            r#""cks-123" is not a valid custom key store id"#
        );
        let at_most = "c".repeat(Echoed::CHARS);
        assert_eq!(
            refusal(&at_most),
            format!("{at_most:?} is not a valid custom key store id")
        );
        // A megabyte of it: its first characters (escaped as they would be) and its length.
        let long = format!("\n{}", "é".repeat(1 << 19));
        let head: String = long.chars().take(Echoed::CHARS).collect();
        let message = refusal(&long);
        assert!(message.len() < 300, "a message of {} bytes", message.len());
        assert_eq!(
            message,
            format!(
                "{head:?}… ({} bytes) is not a valid custom key store id",
                long.len()
            )
        );
    }

    #[test]
    fn generated_ids_have_aws_shapes() {
        let s = CustomKeyStoreId::generate();
        assert_eq!(s.as_str().len(), 4 + 17);
        assert_eq!(CustomKeyStoreId::parse(s.as_str()), Some(s.clone()));
        let c = ClusterId::generate();
        assert!(ClusterId::parse(c.as_str()).is_some());
        assert!(
            ClusterId::parse_lenient("cluster-1a23b4cdefg").is_none(),
            "1 is not base32"
        );
        assert!(ClusterId::parse_lenient("cluster-2a23b4cdefg").is_some());
        assert!(CustomKeyStoreId::parse("cks-123").is_none());
        let k = KeyId::generate();
        assert_eq!(KeyId::parse(&k.to_string()), Some(k));
        assert_ne!(KeyId::generate(), k);
    }

    #[test]
    fn key_refs_in_every_accepted_form() {
        let scope = Scope::default();
        let id = KeyId::generate();
        assert_eq!(
            scope.parse_key_ref(&id.to_string()).unwrap(),
            KeyRef::Id(id)
        );
        assert_eq!(
            scope.parse_key_ref(&scope.key_arn(&id)).unwrap(),
            KeyRef::Id(id)
        );
        assert_eq!(
            scope.parse_key_ref("alias/demo").unwrap(),
            KeyRef::Alias("alias/demo".into())
        );
        assert_eq!(
            scope.parse_key_ref(&scope.alias_arn("alias/demo")).unwrap(),
            KeyRef::Alias("alias/demo".into())
        );
        assert_eq!(
            scope.parse_key_ref("nope").unwrap_err().kind(),
            ErrorKind::NotFoundException
        );
        let foreign = format!("arn:aws:kms:eu-west-1:111122223333:key/{id}");
        assert_eq!(
            scope.parse_key_ref(&foreign).unwrap_err().kind(),
            ErrorKind::NotFoundException
        );
        assert!(scope.parse_key_id("alias/demo").is_err());
    }

    #[test]
    fn key_arns_that_only_begin_like_this_scope_are_refused() {
        let scope = Scope::default();
        let id = KeyId::generate();
        for text in [
            format!("arn:aws:kms:us-east-10:111122223333:key/{id}"),
            format!("arn:aws:kms:us-east-1:1111222233334:key/{id}"),
            format!("arn:aws:kms:us-east-1:111122223333key/{id}"),
            format!("arn:aws:kms:us-east-1::111122223333:key/{id}"),
            format!("arn:aws-cn:kms:us-east-1:111122223333:key/{id}"),
            "arn:aws:kms:us-east-1:111122223333:".to_string(),
        ] {
            let e = scope.parse_key_ref(&text).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::NotFoundException, "{text}");
        }
        // A scope whose parts hold a `:` never matches an ARN, as the split reads it.
        let odd = Scope {
            account_id: "1111:2222".into(),
            region: "us-east-1".into(),
        };
        let arn = format!("arn:aws:kms:us-east-1:1111:2222:key/{id}");
        assert!(odd.parse_key_ref(&arn).is_err());
    }
}
