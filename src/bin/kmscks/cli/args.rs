//! Parameter values as the AWS CLI v2 reads them: `file://` (text), `fileb://` (raw bytes),
//! base64 for bare blob values, the `k=v,k2=v2` shorthand for maps and tags, and JSON forms.
//! Why here, in one place: a line written for `aws` must mean the same to kmscks, down to the
//! quoting of shorthand values, `~` and `$VAR` in paramfile paths, wrapped base64, and a list
//! flag given as one JSON list.
//!
//! A blob parameter (`--plaintext`, `--ciphertext-blob`) is read as AWS CLI v2 reads it
//! ([`BinaryFormat`]): with its default `--cli-binary-format base64`, a bare value is base64
//! text, `file://PATH` the file's text, which is base64 too (so `--ciphertext-blob
//! file://ct.b64` reads what `base64` wrote), and only `fileb://PATH` gives the file's raw
//! bytes; with `raw-in-base64-out`, a bare value is its own bytes and `file://` the file's.

use std::ffi::OsString;
use std::path::Path;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::{Map, Value};
use zeroize::Zeroizing;

use kmscks::secret::{Password, SecretBytes};

/// A `&'static [ArgSpec]` from spec expressions (const-evaluated).
macro_rules! specs {
    ($($x:expr),* $(,)?) => {{
        const SPECS: &[$crate::cli::args::ArgSpec] = &[$($x),*];
        SPECS
    }};
}
pub(crate) use specs;

/// How a flag's value is read and where it goes in the request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A string (`file://` allowed).
    Str,
    /// An integer.
    Int,
    /// A boolean switch: `--flag` / `--no-flag`.
    Bool,
    /// Binary: base64, `fileb://`, or `file://`.
    Blob,
    /// Binary and secret (a plaintext): like [`Kind::Blob`], but kept out of any JSON value and
    /// put into the request as `SecretBytes`.
    SecretBlob,
    /// A password: a string kept out of any JSON value, put into the request as `Password`.
    Password,
    /// A string-to-string map: `k=v,k2=v2` or a JSON object (`file://` allowed).
    Map,
    /// Tags: `TagKey=k,TagValue=v` per value, or a JSON list (`file://` allowed).
    Tags,
    /// CloudHSM tags: `Key=k,Value=v` per value, or a JSON list (`file://` allowed).
    HsmTags,
    /// A list of strings: one or more values.
    List,
    /// Filters: `name=v1,v2` per value, or a JSON object of lists.
    Filters,
    /// Grant constraints: `EncryptionContextSubset={k=v,k2=v2}` and/or
    /// `EncryptionContextEquals={…}` (the aws CLI's shorthand), or JSON (`file://` allowed).
    Constraints,
    /// Any JSON (`file://` allowed).
    Json,
    /// A structure of string members: the aws CLI's shorthand `Name=v,Name2=v2` or a JSON
    /// object (`file://` allowed), read as a [`Kind::Map`] is; its skeleton is `null`, as
    /// kmscks fills none of its members.
    Structure,
}

/// One flag of a verb.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ArgSpec {
    /// The flag without its dashes, e.g. `key-id`.
    pub flag: &'static str,
    /// How its value is read.
    pub kind: Kind,
    /// Whether the flag must be given.
    pub required: bool,
    /// The request member it fills (PascalCase); `None`: derived from the flag.
    pub member: Option<&'static str>,
    /// One line of help.
    pub help: &'static str,
}

/// An optional flag.
pub(crate) const fn opt(flag: &'static str, kind: Kind, help: &'static str) -> ArgSpec {
    ArgSpec {
        flag,
        kind,
        required: false,
        member: None,
        help,
    }
}

/// A required flag.
pub(crate) const fn req(flag: &'static str, kind: Kind, help: &'static str) -> ArgSpec {
    ArgSpec {
        flag,
        kind,
        required: true,
        member: None,
        help,
    }
}

impl ArgSpec {
    /// The request member this flag fills.
    pub(crate) fn member_name(&self) -> String {
        match self.member {
            Some(m) => m.to_owned(),
            None => pascal_case(self.flag),
        }
    }
}

/// `cloud-hsm-cluster-id` → `CloudHsmClusterId`.
pub(crate) fn pascal_case(flag: &str) -> String {
    flag.split('-')
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut c = w.chars();
            match c.next() {
                Some(first) => first.to_ascii_uppercase().to_string() + c.as_str(),
                None => String::new(),
            }
        })
        .collect()
}

/// `GenerateDataKeyWithoutPlaintext` → `generate-data-key-without-plaintext`.
pub(crate) fn kebab_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 8);
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('-');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// A parameter that could not be read: printed as the AWS CLI prints parameter errors, exit
/// code 252.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct ParamError {
    /// The flag, e.g. `--plaintext`.
    pub flag: String,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for ParamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Error parsing parameter '{}': {}",
            self.flag, self.message
        )
    }
}

fn perr(flag: &str, message: impl Into<String>) -> ParamError {
    ParamError {
        flag: format!("--{flag}"),
        message: message.into(),
    }
}

/// The bytes of a paramfile; `path` as written after `file://` / `fileb://`, expanded as the AWS
/// CLI expands it ([`expand_path`]) and named as written in an error. Wiped when dropped: a
/// paramfile may hold a plaintext or a password (or a plaintext's base64).
fn read_file(flag: &str, path: &str) -> Result<Zeroizing<Vec<u8>>, ParamError> {
    std::fs::read(Path::new(&expand_path(path)))
        .map(Zeroizing::new)
        .map_err(|e| perr(flag, format!("Unable to load paramfile {path}: {e}")))
}

/// The bytes of `buf` as a secret, moved (not copied) out of it.
fn into_secret(mut buf: Zeroizing<Vec<u8>>) -> SecretBytes {
    SecretBytes::new(std::mem::take(&mut *buf))
}

/// A paramfile path as the AWS CLI reads it, `os.path.expandvars(os.path.expanduser(path))`: a
/// leading `~` or `~/` is `$HOME` (left as written when `HOME` is unset; `~user` is left too),
/// then `$NAME` and `${NAME}` are the variable's value (`NAME` of ASCII letters, digits and
/// `_` in the bare form), an unset variable left as written, as Python leaves it.
fn expand_path(path: &str) -> OsString {
    expand_path_in(path, &|name: &str| std::env::var_os(name))
}

/// [`expand_path`] in the environment `env` gives (a variable's value by name).
fn expand_path_in(path: &str, env: &dyn Fn(&str) -> Option<OsString>) -> OsString {
    let mut out = OsString::with_capacity(path.len());
    let mut rest = path;
    if rest == "~" || rest.starts_with("~/") {
        if let Some(home) = env("HOME") {
            rest = &rest[1..];
            // As Python: the home's trailing slashes go, and an empty result is the root.
            match home.to_str() {
                Some(h) if h.trim_end_matches('/').is_empty() && rest.is_empty() => out.push("/"),
                Some(h) => out.push(h.trim_end_matches('/')),
                None => out.push(&home),
            }
        }
    }
    while let Some(at) = rest.find('$') {
        out.push(&rest[..at]);
        let after = &rest[at + 1..];
        // The variable's name and how much of `after` its reference takes.
        let (name, taken) = if let Some(braced) = after.strip_prefix('{') {
            match braced.find('}') {
                Some(end) => (&braced[..end], end + 2),
                None => ("", 0),
            }
        } else {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            (&after[..end], end)
        };
        // `std::env::var_os` takes no empty name nor one with `=` or NUL: such are unset.
        let value = if name.is_empty() || name.contains(['=', '\0']) {
            None
        } else {
            env(name)
        };
        match value {
            Some(v) if taken > 0 => out.push(v),
            _ => out.push(&rest[at..at + 1 + taken]),
        }
        // A lone `$` (or a `${` never closed) took nothing: it is text, and the scan goes on
        // after it.
        rest = &after[taken..];
    }
    out.push(rest);
    out
}

/// A text value: `file://PATH` is the file's text (UTF-8), `fileb://PATH` its bytes (which
/// must be UTF-8 here), anything else the value itself. Wiped when dropped, as the paramfile's
/// bytes are: the text may be a password, or a `--cli-input-json` document holding one (or a
/// plaintext's base64); a caller keeping it moves it out (into a `Password`, say).
pub(crate) fn text(flag: &str, value: &str) -> Result<Zeroizing<String>, ParamError> {
    let mut bytes = if let Some(path) = value.strip_prefix("file://") {
        read_file(flag, path)?
    } else if let Some(path) = value.strip_prefix("fileb://") {
        read_file(flag, path)?
    } else {
        return Ok(Zeroizing::new(value.to_owned()));
    };
    // Moved out, not copied, into the wiping buffer returned.
    String::from_utf8(std::mem::take(&mut *bytes))
        .map(Zeroizing::new)
        .map_err(|e| {
            let offset = e.utf8_error().valid_up_to();
            // Wiped as the buffer it came from would have been.
            drop(Zeroizing::new(e.into_bytes()));
            perr(
                flag,
                format!("the file is not UTF-8 text (invalid byte at offset {offset})"),
            )
        })
}

/// A text value that is no secret (an id, a name, a policy), read as [`text`] reads it and
/// moved out of its wiping buffer.
pub(crate) fn plain_text(flag: &str, value: &str) -> Result<String, ParamError> {
    text(flag, value).map(|mut t| std::mem::take(&mut *t))
}

/// How blob values are read: AWS CLI v2's `--cli-binary-format` (its `cli_binary_format`
/// setting, whose configuration file kmscks does not read). Blobs are printed in base64
/// whichever it is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum BinaryFormat {
    /// A bare value and a file:// file's text are base64 (AWS CLI v2's default)
    #[default]
    #[value(name = "base64")]
    Base64,
    /// A bare value is its UTF-8 bytes as given, a file:// file its raw bytes (base64 out)
    #[value(name = "raw-in-base64-out")]
    RawInBase64Out,
}

/// A blob value as AWS CLI v2 reads it in `format`: `fileb://PATH` the file's raw bytes;
/// `file://PATH` the file's text, base64 ([`BinaryFormat::RawInBase64Out`]: its raw bytes);
/// anything else base64 ([`decode_base64`]; [`BinaryFormat::RawInBase64Out`]: its UTF-8 bytes).
/// For a blob that is no secret (a ciphertext): an error says where the value stops being
/// base64. A secret one is read by [`secret_blob`].
pub(crate) fn blob(
    flag: &str,
    value: &str,
    format: BinaryFormat,
) -> Result<SecretBytes, ParamError> {
    read_blob(flag, value, format, false)
}

/// A secret blob (a plaintext, a message to sign), read as [`blob`] reads one; an error says
/// only that the value (or the paramfile named) is not base64, never which character is not
/// nor where: that would print the secret's text, a character at a time.
pub(crate) fn secret_blob(
    flag: &str,
    value: &str,
    format: BinaryFormat,
) -> Result<SecretBytes, ParamError> {
    read_blob(flag, value, format, true)
}

fn read_blob(
    flag: &str,
    value: &str,
    format: BinaryFormat,
    secret: bool,
) -> Result<SecretBytes, ParamError> {
    if let Some(path) = value.strip_prefix("fileb://") {
        return read_file(flag, path).map(into_secret);
    }
    if let Some(path) = value.strip_prefix("file://") {
        let bytes = read_file(flag, path)?;
        if format == BinaryFormat::RawInBase64Out {
            return Ok(into_secret(bytes));
        }
        let raw = format!("use fileb://{path} for its raw bytes");
        if let Err(e) = std::str::from_utf8(&bytes) {
            let at = if secret {
                String::new()
            } else {
                format!(" at offset {}", e.valid_up_to())
            };
            return Err(perr(
                flag,
                format!("paramfile {path} is not base64 text (invalid UTF-8{at}): {raw}"),
            ));
        }
        return decode_base64(&bytes).map_err(|e| {
            perr(
                flag,
                format!(
                    "Invalid base64 in paramfile {path}: {} ({raw})",
                    base64_error(&e, secret)
                ),
            )
        });
    }
    blob_text(value, format).map_err(|e| {
        perr(
            flag,
            format!(
                "Invalid base64: {} (use fileb://PATH for raw bytes)",
                base64_error(&e, secret)
            ),
        )
    })
}

/// What is wrong with base64 text that did not decode (`e`): for a secret's text, only that it
/// is not base64 (`e` names the first character that is not, and its offset).
pub(crate) fn base64_error(e: &base64::DecodeError, secret: bool) -> String {
    if secret {
        "the value is not base64 text".to_owned()
    } else {
        e.to_string()
    }
}

/// A blob given as text, not as a paramfile (a bare flag value, a `--cli-input-json` member):
/// base64 ([`decode_base64`]), or its UTF-8 bytes in [`BinaryFormat::RawInBase64Out`].
pub(crate) fn blob_text(
    text: &str,
    format: BinaryFormat,
) -> Result<SecretBytes, base64::DecodeError> {
    match format {
        BinaryFormat::Base64 => decode_base64(text.as_bytes()),
        BinaryFormat::RawInBase64Out => Ok(SecretBytes::from_slice(text.as_bytes())),
    }
}

/// Base64 text's bytes (standard alphabet, padding optional). ASCII whitespace is dropped, as
/// Python's `b64decode` drops it, so `"$(base64 ct.bin)"` or a file `base64` wrote (wrapped at
/// 76 columns) reads as it does for `aws`.
fn decode_base64(text: &[u8]) -> Result<SecretBytes, base64::DecodeError> {
    // The base64 text may be a plaintext's: wiped when dropped.
    let compact = Zeroizing::new(
        text.iter()
            .copied()
            .filter(|b| !b.is_ascii_whitespace())
            .collect::<Vec<u8>>(),
    );
    let mut end = compact.len();
    while end > 0 && compact[end - 1] == b'=' {
        end -= 1;
    }
    base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(&compact[..end])
        .map(SecretBytes::new)
}

/// A password value (`file://` allowed; a trailing newline of a file is dropped).
pub(crate) fn password(flag: &str, value: &str) -> Result<Password, ParamError> {
    let from_file = value.starts_with("file://") || value.starts_with("fileb://");
    let mut t = text(flag, value)?;
    if from_file && t.ends_with('\n') {
        t.pop();
        if t.ends_with('\r') {
            t.pop();
        }
    }
    // Moved, not copied, out of the wiping buffer (the popped line end stays in its spare
    // capacity, wiped with the password).
    Ok(Password::new(std::mem::take(&mut *t)))
}

fn json(flag: &str, value: &str) -> Result<Value, ParamError> {
    // Parsed from the wiping text, which is dropped (wiped) once read.
    let t = text(flag, value)?;
    serde_json::from_str(&t).map_err(|e| invalid_json(flag, value, &e))
}

/// `Invalid JSON received` for `value` of `flag` that serde could not read (`e`): what serde
/// found and where, and the paramfile of a `file://` value, never the text itself: it may hold
/// a secret (a `--cli-input-json` with its `KeyStorePassword`), and AWS CLI v2 prints none of
/// it either. serde's own message is not used: for a value of the wrong type it quotes the
/// value.
fn invalid_json(flag: &str, value: &str, e: &serde_json::Error) -> ParamError {
    use serde_json::error::Category;
    let what = match e.classify() {
        Category::Syntax => "syntax error",
        Category::Eof => "unexpected end of input",
        Category::Data => "value of the wrong type",
        Category::Io => "read error",
    };
    let from = match value
        .strip_prefix("file://")
        .or_else(|| value.strip_prefix("fileb://"))
    {
        Some(path) => format!(" from paramfile {path}"),
        None => String::new(),
    };
    perr(
        flag,
        format!(
            "Invalid JSON received{from}: {what} at line {}, column {}",
            e.line(),
            e.column()
        ),
    )
}

/// How shorthand is written, for the error messages.
const SHORTHAND_FORM: &str = "key=value,key2=value2; quote a value holding ',': key='a,b'";

/// A reader of the AWS CLI's shorthand (`k=v,k2=v2`), as its `shorthand.py` reads it: a key or
/// value is `'…'` or `"…"` (the quotes dropped, `,`, `=` and blanks kept inside; `\'`, `\"`
/// and `\\` are the character escaped) or bare text up to the next `,` (and `=`, for a key),
/// in which `\,` is a comma. Blanks around a key or value are dropped, and so are empty
/// entries (`a=1,,b=2`, a trailing `,`). A bare value may hold `=` (`k=a=b`).
struct Shorthand<'a> {
    flag: &'a str,
    text: &'a str,
    /// How the whole value is written, for the error messages.
    form: &'a str,
    chars: Vec<char>,
    pos: usize,
}

impl<'a> Shorthand<'a> {
    fn new(flag: &'a str, text: &'a str, form: &'a str) -> Self {
        Shorthand {
            flag,
            text,
            form,
            chars: text.chars().collect(),
            pos: 0,
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn skip_blanks(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
    }

    /// `Expected: <expected>, received: <what is here>`, with where and the form.
    fn error(&self, expected: &str) -> ParamError {
        let received = match self.peek() {
            Some(c) => format!("'{c}'"),
            None => "end of input".to_owned(),
        };
        perr(
            self.flag,
            format!(
                "Expected: {expected}, received: {received} at column {} of {:?} (shorthand is {})",
                self.pos + 1,
                self.text,
                self.form
            ),
        )
    }

    /// Takes `c` (after blanks), or fails naming it.
    fn expect(&mut self, c: char) -> Result<(), ParamError> {
        self.skip_blanks();
        if self.peek() == Some(c) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.error(&format!("'{c}'")))
        }
    }

    /// After an entry: a `,` (taken), or the end, or `close`; `Ok(true)` when another entry
    /// may follow.
    fn separator(&mut self, close: Option<char>) -> Result<bool, ParamError> {
        self.skip_blanks();
        match self.peek() {
            Some(',') => {
                self.pos += 1;
                Ok(true)
            }
            None => Ok(false),
            Some(c) if Some(c) == close => Ok(false),
            Some(_) => Err(self.error(match close {
                Some('}') => "',' or '}'",
                _ => "',' or end of input",
            })),
        }
    }

    /// Whether no entry starts here (the end, or `close`), empty entries skipped.
    fn at_end(&mut self, close: Option<char>) -> bool {
        loop {
            self.skip_blanks();
            match self.peek() {
                Some(',') => self.pos += 1,
                None => return true,
                Some(c) => return Some(c) == close,
            }
        }
    }

    /// One key or value: quoted, or bare up to (not including) one of `stops`.
    fn token(&mut self, stops: &[char]) -> Result<String, ParamError> {
        self.skip_blanks();
        let mut out = String::new();
        match self.peek() {
            Some(quote @ ('\'' | '"')) => {
                self.pos += 1;
                loop {
                    let Some(c) = self.peek() else {
                        return Err(self.error(&format!("the closing {quote}")));
                    };
                    self.pos += 1;
                    if c == quote {
                        return Ok(out);
                    }
                    match (c, self.peek()) {
                        ('\\', Some(next)) if next == quote || next == '\\' => {
                            out.push(next);
                            self.pos += 1;
                        }
                        _ => out.push(c),
                    }
                }
            }
            _ => {
                while let Some(c) = self.peek() {
                    if stops.contains(&c) {
                        break;
                    }
                    self.pos += 1;
                    if c == '\\' && self.peek() == Some(',') {
                        out.push(',');
                        self.pos += 1;
                    } else {
                        out.push(c);
                    }
                }
                out.truncate(out.trim_end().len());
                Ok(out)
            }
        }
    }

    /// `key=value` entries up to the end or `close` (not taken).
    fn pairs(&mut self, close: Option<char>) -> Result<Vec<(String, String)>, ParamError> {
        // Without `close`, `,` stands in for it (already a stop).
        let close_stop = close.unwrap_or(',');
        let key_stops = [',', '=', close_stop];
        let value_stops = [',', close_stop];
        let mut out = Vec::new();
        while !self.at_end(close) {
            let key = self.token(&key_stops)?;
            self.expect('=')?;
            let value = self.token(&value_stops)?;
            out.push((key, value));
            if !self.separator(close)? {
                break;
            }
        }
        Ok(out)
    }
}

/// Reads shorthand `a=1,b=2` into its pairs ([`Shorthand`] says how: quoted values may hold
/// `,`; use the JSON form for anything richer).
fn shorthand(flag: &str, value: &str) -> Result<Vec<(String, String)>, ParamError> {
    Shorthand::new(flag, value, SHORTHAND_FORM).pairs(None)
}

/// A map: JSON object (`{"k":"v"}` or `file://`) or shorthand `k=v,k2=v2`.
pub(crate) fn map(flag: &str, value: &str) -> Result<Value, ParamError> {
    let looks_json = value.trim_start().starts_with('{')
        || value.starts_with("file://")
        || value.starts_with("fileb://");
    if looks_json {
        let v = json(flag, value)?;
        match &v {
            Value::Object(m) if m.values().all(Value::is_string) => Ok(v),
            _ => Err(perr(flag, "expected a JSON object of string values")),
        }
    } else {
        let mut m = Map::new();
        for (k, v) in shorthand(flag, value)? {
            m.insert(k, Value::String(v));
        }
        Ok(Value::Object(m))
    }
}

/// Grant constraints: JSON, or the aws CLI's shorthand `Name={k=v,k2=v2},Name2={…}` (the
/// pairs read as [`Shorthand`] reads them, so a quoted value may hold `,` or `}`).
pub(crate) fn constraints(flag: &str, value: &str) -> Result<Value, ParamError> {
    if value.trim_start().starts_with('{') || value.starts_with("file://") {
        return json(flag, value);
    }
    let mut out = Map::new();
    let mut sh = Shorthand::new(flag, value, "EncryptionContextSubset={k=v,k2=v2}");
    while !sh.at_end(None) {
        let name = sh.token(&[',', '='])?;
        sh.expect('=')?;
        sh.expect('{')?;
        let mut m = Map::new();
        for (k, v) in sh.pairs(Some('}'))? {
            m.insert(k, Value::String(v));
        }
        sh.expect('}')?;
        out.insert(name, Value::Object(m));
        if !sh.separator(None)? {
            break;
        }
    }
    Ok(Value::Object(out))
}

/// The member names of a KMS tag.
pub(crate) const KMS_TAG: (&str, &str) = ("TagKey", "TagValue");
/// The member names of a CloudHSM tag.
pub(crate) const HSM_TAG: (&str, &str) = ("Key", "Value");

/// Tags: each value `TagKey=k,TagValue=v` (`Key=k,Value=v` for CloudHSM, as `names` says), or
/// one JSON list of such objects.
pub(crate) fn tags(
    flag: &str,
    values: &[String],
    names: (&str, &str),
) -> Result<Value, ParamError> {
    let (key, value) = names;
    if let [one] = values {
        if one.trim_start().starts_with('[') || one.starts_with("file://") {
            let v = json(flag, one)?;
            return match v {
                Value::Array(_) => Ok(v),
                _ => Err(perr(flag, "expected a JSON list of tags")),
            };
        }
    }
    let mut out = Vec::with_capacity(values.len());
    for v in values {
        let mut tag = Map::new();
        for (k, val) in shorthand(flag, v)? {
            if k != key && k != value {
                return Err(perr(
                    flag,
                    format!("Unknown key {k:?} in {v:?}: a tag is {key}=k,{value}=v"),
                ));
            }
            tag.insert(k, Value::String(val));
        }
        if !tag.contains_key(key) {
            return Err(perr(flag, format!("Missing {key} in {v:?}")));
        }
        tag.entry(value).or_insert(Value::String(String::new()));
        out.push(Value::Object(tag));
    }
    Ok(Value::Array(out))
}

/// Filters: each value `name=v1,v2` (the values read as [`Shorthand`] reads them), or one JSON
/// object of string lists.
pub(crate) fn filters(flag: &str, values: &[String]) -> Result<Value, ParamError> {
    if let [one] = values {
        if one.trim_start().starts_with('{') || one.starts_with("file://") {
            return json(flag, one);
        }
    }
    let mut m = Map::new();
    for v in values {
        let mut sh = Shorthand::new(flag, v, "name=value1,value2");
        let name = sh.token(&[',', '='])?;
        sh.expect('=')?;
        let mut items = Vec::new();
        while !sh.at_end(None) {
            items.push(Value::String(sh.token(&[','])?));
            if !sh.separator(None)? {
                break;
            }
        }
        let entry = m.entry(name).or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(list) = entry {
            list.extend(items);
        }
    }
    Ok(Value::Object(m))
}

/// A list of strings: the values given, or one JSON list when a single value's first
/// non-blank character is `[` (as the AWS CLI's `_unpack_complex_cli_arg` reads a list), so
/// `--tag-keys '["a","b"]'` is the two keys, not one key spelt `["a","b"]`.
pub(crate) fn list(flag: &str, values: &[String]) -> Result<Value, ParamError> {
    if let [one] = values {
        if one.trim_start().starts_with('[') {
            return serde_json::from_str::<Vec<Value>>(one)
                .map(Value::Array)
                .map_err(|e| {
                    let mut error = invalid_json(flag, one, &e);
                    error.message.push_str(" (expected a JSON list)");
                    error
                });
        }
    }
    Ok(Value::Array(
        values.iter().cloned().map(Value::String).collect(),
    ))
}

/// Any JSON value (`file://` allowed); a bare word that is not JSON is taken as a string. The
/// text (a whole `--cli-input-json` document, secrets and all) is parsed where it was read, in
/// its wiping buffer, and wiped once parsed.
pub(crate) fn any_json(flag: &str, value: &str) -> Result<Value, ParamError> {
    let mut t = text(flag, value)?;
    match serde_json::from_str(&t) {
        Ok(v) => Ok(v),
        Err(_)
            if t.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') =>
        {
            Ok(Value::String(std::mem::take(&mut *t)))
        }
        Err(e) => Err(invalid_json(flag, value, &e)),
    }
}

/// An integer, negative or not (as Python's `int()` reads it, within 64 bits): one under its
/// member's least value is refused before the request is sent (`check_minimums`, as botocore
/// refuses it), one past the member's type by the request's decoding.
pub(crate) fn int(flag: &str, value: &str) -> Result<Value, ParamError> {
    let t = value.trim();
    t.parse::<u64>()
        .map(Value::from)
        .or_else(|_| t.parse::<i64>().map(Value::from))
        .map_err(|_| perr(flag, format!("invalid literal for int(): {value}")))
}

/// Base64 of bytes, as a JSON string (for non-secret blobs).
pub(crate) fn base64_value(bytes: &[u8]) -> Value {
    Value::String(STANDARD.encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn names_convert() {
        assert_eq!(pascal_case("cloud-hsm-cluster-id"), "CloudHsmClusterId");
        assert_eq!(pascal_case("key-id"), "KeyId");
        assert_eq!(
            kebab_case("GenerateDataKeyWithoutPlaintext"),
            "generate-data-key-without-plaintext"
        );
        assert_eq!(
            kebab_case("CreateCustomKeyStore"),
            "create-custom-key-store"
        );
    }

    #[test]
    fn blobs_follow_aws_cli_v2() {
        assert_eq!(
            blob("plaintext", "aGVsbG8=", BinaryFormat::Base64)
                .unwrap()
                .expose(),
            b"hello"
        );
        assert_eq!(
            blob("plaintext", "aGVsbG8", BinaryFormat::Base64)
                .unwrap()
                .expose(),
            b"hello"
        );
        let e = blob("plaintext", "not base64!", BinaryFormat::Base64).unwrap_err();
        assert_eq!(e.flag, "--plaintext");
        assert!(e.message.contains("base64"), "{e}");
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(&[0, 1, 2, 255]).unwrap();
        let p = f.path().display().to_string();
        assert_eq!(
            blob("plaintext", &format!("fileb://{p}"), BinaryFormat::Base64)
                .unwrap()
                .expose(),
            &[0, 1, 2, 255]
        );
        let e = blob("plaintext", "fileb:///no/such/file", BinaryFormat::Base64).unwrap_err();
        assert!(e.message.contains("/no/such/file"), "{e}");
        // file:// of binary bytes is not text.
        let e = text("policy", &format!("file://{p}")).unwrap_err();
        assert!(e.message.contains("offset 3"), "{e}");
    }

    #[test]
    fn a_file_url_on_a_blob_flag_is_base64_text_as_aws_cli_v2_reads_it() {
        // What `base64 ct.bin > ct.b64` writes: wrapped at 76 columns, a final newline.
        let bytes: Vec<u8> = (0u8..=99).collect();
        let encoded = STANDARD.encode(&bytes);
        let wrapped = encoded
            .as_bytes()
            .chunks(76)
            .map(|c| String::from_utf8_lossy(c).into_owned() + "\n")
            .collect::<String>();
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(wrapped.as_bytes()).unwrap();
        let p = f.path().display().to_string();
        assert_eq!(
            blob(
                "ciphertext-blob",
                &format!("file://{p}"),
                BinaryFormat::Base64
            )
            .unwrap()
            .expose(),
            bytes
        );
        // The same file as fileb:// is its bytes, the base64 text itself.
        assert_eq!(
            blob(
                "ciphertext-blob",
                &format!("fileb://{p}"),
                BinaryFormat::Base64
            )
            .unwrap()
            .expose(),
            wrapped.as_bytes()
        );
        // Text that is not base64, and bytes that are not text: the file named, fileb:// offered.
        let mut text_file = tempfile::NamedTempFile::new().unwrap();
        text_file.write_all(b"hello, world\n").unwrap();
        let t = text_file.path().display().to_string();
        let e = secret_blob("plaintext", &format!("file://{t}"), BinaryFormat::Base64).unwrap_err();
        assert_eq!(e.flag, "--plaintext");
        assert!(
            e.message
                .starts_with(&format!("Invalid base64 in paramfile {t}: "))
                && e.message.contains(&format!("use fileb://{t}")),
            "{e}"
        );
        let mut binary = tempfile::NamedTempFile::new().unwrap();
        binary.write_all(&[0x41, 0xff, 0x00]).unwrap();
        let b = binary.path().display().to_string();
        let e = secret_blob("plaintext", &format!("file://{b}"), BinaryFormat::Base64).unwrap_err();
        assert!(
            e.message
                .contains(&format!("paramfile {b} is not base64 text"))
                && e.message.contains(&format!("use fileb://{b}")),
            "{e}"
        );
    }

    #[test]
    fn a_secret_blob_not_base64_is_refused_without_naming_a_character_or_where_it_is() {
        let raw = |p: &str| format!("use fileb://{p} for its raw bytes");
        // A bare value: a plaintext's error says only that it is not base64.
        let e = secret_blob("plaintext", "MyS3cret!!", BinaryFormat::Base64).unwrap_err();
        assert_eq!(e.flag, "--plaintext");
        assert_eq!(
            e.message,
            "Invalid base64: the value is not base64 text (use fileb://PATH for raw bytes)"
        );
        // A ciphertext is no secret: its error keeps the character and offset.
        let e = blob("ciphertext-blob", "MyS3cret!!", BinaryFormat::Base64).unwrap_err();
        assert!(
            e.message.contains("Invalid symbol 33") && e.message.contains("offset"),
            "{e}"
        );
        // A file:// paramfile of text: the file named and fileb:// offered, nothing of its text.
        let mut text_file = tempfile::NamedTempFile::new().unwrap();
        text_file.write_all(b"MyS3cret!!\n").unwrap();
        let t = text_file.path().display().to_string();
        let e = secret_blob("plaintext", &format!("file://{t}"), BinaryFormat::Base64).unwrap_err();
        assert_eq!(
            e.message,
            format!(
                "Invalid base64 in paramfile {t}: the value is not base64 text ({})",
                raw(&t)
            )
        );
        // A file:// paramfile of bytes that are not UTF-8: not where the first such byte is.
        let mut binary = tempfile::NamedTempFile::new().unwrap();
        binary.write_all(&[0x41, 0x42, 0xff, 0x00]).unwrap();
        let b = binary.path().display().to_string();
        let e = secret_blob("plaintext", &format!("file://{b}"), BinaryFormat::Base64).unwrap_err();
        assert_eq!(
            e.message,
            format!(
                "paramfile {b} is not base64 text (invalid UTF-8): {}",
                raw(&b)
            )
        );
        let e = blob(
            "ciphertext-blob",
            &format!("file://{b}"),
            BinaryFormat::Base64,
        )
        .unwrap_err();
        assert!(e.message.contains("invalid UTF-8 at offset 2"), "{e}");
    }

    #[test]
    fn maps_tags_and_filters() {
        assert_eq!(
            map("encryption-context", "a=1,b=2").unwrap(),
            serde_json::json!({"a":"1","b":"2"})
        );
        assert_eq!(
            map("encryption-context", r#"{"a":"x=y"}"#).unwrap(),
            serde_json::json!({"a":"x=y"})
        );
        assert!(map("encryption-context", "a").is_err());
        assert!(map("encryption-context", r#"{"a":1}"#).is_err());
        let t = tags(
            "tags",
            &["TagKey=k,TagValue=v".into(), "TagKey=k2,TagValue=".into()],
            KMS_TAG,
        )
        .unwrap();
        assert_eq!(
            t,
            serde_json::json!([{"TagKey":"k","TagValue":"v"},{"TagKey":"k2","TagValue":""}])
        );
        assert!(tags("tags", &["Key=k".into()], KMS_TAG).is_err());
        let t = tags("tag-list", &["Key=k,Value=v".into()], HSM_TAG).unwrap();
        assert_eq!(t, serde_json::json!([{"Key": "k", "Value": "v"}]));
        assert!(tags("tag-list", &["TagKey=k".into()], HSM_TAG).is_err());
        assert_eq!(
            filters("filters", &["clusterIds=a,b".into()]).unwrap(),
            serde_json::json!({"clusterIds":["a","b"]})
        );
        assert!(int("limit", "ten").is_err());
        assert_eq!(any_json("fault", "NetworkDown").unwrap(), "NetworkDown");
        assert_eq!(
            any_json("fault", r#"{"HsmLost":"hsm-1"}"#).unwrap(),
            serde_json::json!({"HsmLost":"hsm-1"})
        );
    }

    #[test]
    fn quoted_shorthand_values_lose_their_quotes_and_may_hold_commas_blanks_and_equals() {
        let m = |v: &str| map("encryption-context", v).unwrap_or_else(|e| panic!("{v}: {e}"));
        assert_eq!(m("k='x y'"), serde_json::json!({"k": "x y"}));
        assert_eq!(m(r#"k="a,b""#), serde_json::json!({"k": "a,b"}));
        assert_eq!(
            m(r#"k="a,b", n='c=d' ,o=3"#),
            serde_json::json!({"k": "a,b", "n": "c=d", "o": "3"})
        );
        assert_eq!(m("k='  padded  '"), serde_json::json!({"k": "  padded  "}));
        // Inside quotes, a backslash escapes the quote and itself.
        assert_eq!(
            m(r"k='it\'s',b='a\\b'"),
            serde_json::json!({"k": "it's", "b": r"a\b"})
        );
        assert_eq!(
            m(r#"k="say \"hi\"""#),
            serde_json::json!({"k": r#"say "hi""#})
        );
        assert_eq!(m("k=''"), serde_json::json!({"k": ""}));
    }

    #[test]
    fn a_backslash_escaped_comma_is_a_comma_of_a_bare_shorthand_value() {
        assert_eq!(
            map("encryption-context", r"k=a\,b,n=1").unwrap(),
            serde_json::json!({"k": "a,b", "n": "1"})
        );
        // Any other backslash is itself.
        assert_eq!(
            map("encryption-context", r"path=C:\dir").unwrap(),
            serde_json::json!({"path": r"C:\dir"})
        );
    }

    #[test]
    fn every_shorthand_form_read_before_quoting_reads_the_same() {
        let m = |v: &str| map("encryption-context", v).unwrap_or_else(|e| panic!("{v}: {e}"));
        assert_eq!(m("a=1,b=2"), serde_json::json!({"a": "1", "b": "2"}));
        assert_eq!(
            m(" a = 1 , b = 2 "),
            serde_json::json!({"a": "1", "b": "2"})
        );
        assert_eq!(m("a=1,,b=2,"), serde_json::json!({"a": "1", "b": "2"}));
        assert_eq!(m("k=a=b"), serde_json::json!({"k": "a=b"}));
        assert_eq!(m("k="), serde_json::json!({"k": ""}));
        assert_eq!(m("it's=o'k"), serde_json::json!({"it's": "o'k"}));
        assert_eq!(
            m("my key=two words"),
            serde_json::json!({"my key": "two words"})
        );
        let t = tags("tags", &["TagKey='a,b',TagValue=\"c d\"".into()], KMS_TAG).unwrap();
        assert_eq!(t, serde_json::json!([{"TagKey": "a,b", "TagValue": "c d"}]));
    }

    #[test]
    fn a_shorthand_quote_left_open_or_followed_by_text_is_a_parameter_error() {
        let e = map("encryption-context", "k='open").unwrap_err();
        assert_eq!(e.flag, "--encryption-context");
        assert!(e.message.contains("the closing '"), "{e}");
        let e = map("encryption-context", "k='a'b").unwrap_err();
        assert!(e.message.contains("received: 'b'"), "{e}");
        let e = map("encryption-context", "a=1,b").unwrap_err();
        assert!(
            e.message
                .starts_with("Expected: '=', received: end of input"),
            "{e}"
        );
    }

    #[test]
    fn constraints_and_filters_read_quoted_values_as_shorthand_does() {
        assert_eq!(
            constraints(
                "constraints",
                "EncryptionContextSubset={k='a,b}',n=1}, EncryptionContextEquals={c=d}"
            )
            .unwrap(),
            serde_json::json!({
                "EncryptionContextSubset": {"k": "a,b}", "n": "1"},
                "EncryptionContextEquals": {"c": "d"}
            })
        );
        assert!(constraints("constraints", "EncryptionContextSubset=k=v").is_err());
        assert!(constraints("constraints", "EncryptionContextSubset={k=v").is_err());
        assert_eq!(
            filters(
                "filters",
                &["clusterIds='a,b',c".into(), "states=ACTIVE".into()]
            )
            .unwrap(),
            serde_json::json!({"clusterIds": ["a,b", "c"], "states": ["ACTIVE"]})
        );
        assert!(filters("filters", &["clusterIds".into()]).is_err());
    }

    #[test]
    fn one_list_value_whose_first_non_blank_is_a_bracket_is_a_json_list() {
        assert_eq!(
            list("tag-keys", &[r#"["a","b"]"#.into()]).unwrap(),
            serde_json::json!(["a", "b"])
        );
        assert_eq!(
            list("operations", &[r#"  ["Encrypt"]"#.into()]).unwrap(),
            serde_json::json!(["Encrypt"])
        );
        assert_eq!(
            list("tag-keys", &["a".into(), "b".into()]).unwrap(),
            serde_json::json!(["a", "b"])
        );
        let e = list("grant-tokens", &["[not json".into()]).unwrap_err();
        assert_eq!(e.flag, "--grant-tokens");
        assert!(e.message.starts_with("Invalid JSON"), "{e}");
    }

    #[test]
    fn json_that_does_not_read_is_named_by_what_and_where_never_by_its_text() {
        let secret = "MyS3cretKmsuserPw";
        // A trailing comma, a value cut short, a bare word after a value: each flag reader.
        let e = any_json(
            "cli-input-json",
            &format!(r#"{{"CustomKeyStoreId":"cks-1","KeyStorePassword":"{secret}",}}"#),
        )
        .unwrap_err();
        assert_eq!(e.flag, "--cli-input-json");
        assert_eq!(
            e.message,
            "Invalid JSON received: syntax error at line 1, column 68"
        );
        let e = map("encryption-context", &format!(r#"{{"k":"{secret}""#)).unwrap_err();
        assert!(!e.message.contains(secret), "{e}");
        assert!(
            e.message
                .contains("unexpected end of input at line 1, column"),
            "{e}"
        );
        let e = list("grant-tokens", &[format!(r#"["{secret}"] x"#)]).unwrap_err();
        assert!(!e.message.contains(secret), "{e}");
        assert!(e.message.contains("syntax error at line 1"), "{e}");
        for e in [
            constraints("constraints", &format!(r#"{{"a":{secret}}}"#)).unwrap_err(),
            tags("tags", &[format!("[{secret}]")], KMS_TAG).unwrap_err(),
            filters("filters", &[format!("{{{secret}}}")]).unwrap_err(),
        ] {
            assert!(!e.message.contains(secret), "{e}");
            assert!(e.message.starts_with("Invalid JSON received: "), "{e}");
        }
        // From a paramfile: the file is named (as written), its text is not printed.
        let mut f = tempfile::NamedTempFile::new().unwrap();
        write!(
            f,
            "{{\n  \"KeyStorePassword\": \"{secret}\"\n  \"x\": 1\n}}"
        )
        .unwrap();
        let p = f.path().display().to_string();
        let e = any_json("cli-input-json", &format!("file://{p}")).unwrap_err();
        assert!(!e.message.contains(secret), "{e}");
        assert_eq!(
            e.message,
            format!("Invalid JSON received from paramfile {p}: syntax error at line 3, column 3")
        );
    }

    #[test]
    fn raw_in_base64_out_reads_a_bare_value_and_a_file_url_as_the_bytes_given() {
        let raw = BinaryFormat::RawInBase64Out;
        // Base64-looking text is not decoded: its bytes are the value.
        assert_eq!(
            blob("plaintext", "aGVsbG8=", raw).unwrap().expose(),
            b"aGVsbG8="
        );
        assert_eq!(
            blob("plaintext", "héllo wörld\n", raw).unwrap().expose(),
            "héllo wörld\n".as_bytes()
        );
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(&[0, 1, 2, 255]).unwrap();
        let p = f.path().display().to_string();
        for value in [format!("file://{p}"), format!("fileb://{p}")] {
            assert_eq!(
                blob("plaintext", &value, raw).unwrap().expose(),
                &[0, 1, 2, 255],
                "{value}"
            );
        }
        // The default is base64: the same file as file:// is not base64 text.
        assert_eq!(BinaryFormat::default(), BinaryFormat::Base64);
        assert!(blob("plaintext", &format!("file://{p}"), BinaryFormat::default()).is_err());
    }

    #[test]
    fn base64_with_line_breaks_and_blanks_decodes_as_pythons_b64decode_does() {
        assert_eq!(
            blob("ciphertext-blob", "aGVs\nbG8=\n", BinaryFormat::Base64)
                .unwrap()
                .expose(),
            b"hello"
        );
        assert_eq!(
            blob("ciphertext-blob", " aGVs\r\n bG8\t", BinaryFormat::Base64)
                .unwrap()
                .expose(),
            b"hello"
        );
        assert!(blob("ciphertext-blob", "aGVs\nbG8!", BinaryFormat::Base64).is_err());
    }

    #[test]
    fn paramfile_paths_expand_a_leading_tilde_and_variables_as_python_does() {
        let env = |name: &str| match name {
            "HOME" => Some(OsString::from("/home/u/")),
            "DIR" => Some(OsString::from("/data")),
            _ => None,
        };
        let x = |p: &str| expand_path_in(p, &env);
        assert_eq!(x("~/ca.pem"), "/home/u/ca.pem");
        assert_eq!(x("~"), "/home/u");
        assert_eq!(x("$DIR/ca.pem"), "/data/ca.pem");
        assert_eq!(x("${DIR}/ca.pem"), "/data/ca.pem");
        assert_eq!(x("~/$DIR"), "/home/u//data");
        // Unset variables, `~user`, a lone `$` and an unclosed `${` stay as written.
        assert_eq!(x("$NOPE/ca.pem"), "$NOPE/ca.pem");
        assert_eq!(x("${NOPE}/a"), "${NOPE}/a");
        assert_eq!(x("~other/ca.pem"), "~other/ca.pem");
        assert_eq!(x("a$/b$"), "a$/b$");
        assert_eq!(x("${DIR"), "${DIR");
        assert_eq!(x("/plain/path"), "/plain/path");
        // No HOME: `~` stays; a HOME of `/` gives the root.
        assert_eq!(expand_path_in("~/a", &|_: &str| None), "~/a");
        let root = |name: &str| (name == "HOME").then(|| OsString::from("/"));
        assert_eq!(expand_path_in("~", &root), "/");
        assert_eq!(expand_path_in("~/a", &root), "/a");
        // The error names the path as written.
        let e = text("policy", "file://$NOPE/p.json").unwrap_err();
        assert!(e.message.contains("paramfile $NOPE/p.json"), "{e}");
    }
}
