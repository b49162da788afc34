//! Wrapping-key files: `<data dir>/keys/<name>.key`, one 32-byte key each, mode 0600.
//!
//! Layout: an 8-byte prefix — magic "KCKK" | version u8 (1) | kind u8 | reserved u16 (0) —
//! then, for kind 0 (plain), the 32 key bytes and a crc32 of everything before; for kind 1
//! (sealed), PBKDF2 iterations u32 | salt (16) | the key wrapped by [`crate::crypto::wrap`]
//! under a key derived from the passphrase with PBKDF2-HMAC-SHA256, with AAD = everything
//! before the wrapped key followed by the key's name (so a file renamed to another name no
//! longer opens).
//!
//! Files are written atomically (temporary file, fsync, link into place, directory fsync). A
//! key file, once created, is the key: it is replaced only by the same key sealed afresh — a
//! sealed file whose iteration count is below [`PBKDF2_ITERATIONS`] (written by an older
//! build), or a plain file opened with a passphrase set, is re-sealed at the current count when
//! it is opened (new salt; a temporary file created with `O_EXCL`, fsynced, renamed over the
//! old one, directory fsynced), so raising the count or setting a passphrase later protects
//! the files already there.

use std::fs;
use std::io::{self, Read};
use std::num::NonZeroU32;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use aws_lc_rs::pbkdf2;
use zeroize::Zeroizing;

use super::{create_private_dir, io_error, sync_dir, write_file_synced, LockedDir};
use crate::crypto::wrap::{self, WRAP_OVERHEAD};
use crate::error::KmsError;
use crate::secret::{KeyMaterial, Password};
use crate::{err, Result};

/// Environment variable holding the passphrase that seals key files.
pub const PASSPHRASE_ENV: &str = "KMSCKS_PASSPHRASE";
/// Environment variable naming a file that holds the passphrase (preferred over
/// [`PASSPHRASE_ENV`]: a variable's value is readable in `/proc/<pid>/environ` until it is
/// wiped, and the process that set it may keep it).
pub const PASSPHRASE_FILE_ENV: &str = "KMSCKS_PASSPHRASE_FILE";
/// Longest passphrase file read (a passphrase is a line of text, not a document).
const PASSPHRASE_FILE_MAX: u64 = 4096;
/// Subdirectory of the data directory holding key files.
pub const KEYS_DIR: &str = "keys";
/// PBKDF2-HMAC-SHA256 iterations used when sealing a key file (OWASP's 2023 figure for
/// PBKDF2-HMAC-SHA256; about 0.3 s per key file on a 2026 laptop core). Files sealed with fewer
/// (100,000 before) still open, and are re-sealed at this count when they are.
pub const PBKDF2_ITERATIONS: u32 = 600_000;
/// Iteration counts accepted when reading a sealed file (outside: treated as damage).
const ITERATIONS_ACCEPTED: (u32, u32) = (1_000, 10_000_000);

const MAGIC: [u8; 4] = *b"KCKK";
const VERSION: u8 = 1;
const KIND_PLAIN: u8 = 0;
const KIND_SEALED: u8 = 1;
const PREFIX_LEN: usize = 8;
const SALT_LEN: usize = 16;
const PLAIN_LEN: usize = PREFIX_LEN + KeyMaterial::LEN + 4;
const SEALED_HEAD_LEN: usize = PREFIX_LEN + 4 + SALT_LEN;
const SEALED_LEN: usize = SEALED_HEAD_LEN + WRAP_OVERHEAD + KeyMaterial::LEN;

/// How key files are protected. Build it once at start-up (e.g. with [`from_env`]) and pass
/// it to every key-file call.
///
/// [`from_env`]: KeyFileOptions::from_env
#[derive(Debug, Default)]
pub struct KeyFileOptions {
    /// If set, new key files are sealed under this passphrase, and sealed files need it.
    pub passphrase: Option<Password>,
}

impl KeyFileOptions {
    /// Reads the passphrase from the file named by `KMSCKS_PASSPHRASE_FILE`, or else from
    /// `KMSCKS_PASSPHRASE` (unset or empty: no passphrase), leaving the environment as it is.
    /// Both set is refused (which one was meant?).
    pub fn from_env() -> Result<KeyFileOptions> {
        let file = std::env::var_os(PASSPHRASE_FILE_ENV).filter(|v| !v.is_empty());
        let var = std::env::var_os(PASSPHRASE_ENV).filter(|v| !v.is_empty());
        let passphrase = match (file, var) {
            (Some(_), Some(_)) => {
                return Err(err!(
                    ValidationException,
                    "both {PASSPHRASE_FILE_ENV} and {PASSPHRASE_ENV} are set: set only one \
                     (the file is preferred)"
                ))
            }
            (Some(path), None) => Some(read_passphrase_file(Path::new(&path))?),
            (None, Some(v)) => {
                // `into_string` moves the bytes (no copy); `Password` zeroizes them on drop.
                // The `OsString` std handed out is itself a copy of the environment's bytes,
                // which stay in the process's environment block unless `take_from_env` wipes
                // them.
                let text = v.into_string().map_err(|v| {
                    let mut bytes = v.into_encoded_bytes();
                    zeroize::Zeroize::zeroize(&mut bytes);
                    err!(ValidationException, "{PASSPHRASE_ENV} is not valid UTF-8")
                })?;
                Some(Password::new(text))
            }
            (None, None) => None,
        };
        Ok(KeyFileOptions { passphrase })
    }

    /// [`from_env`](KeyFileOptions::from_env), then wipes the value of `KMSCKS_PASSPHRASE`
    /// in place in the C environment and removes the variable, so that child processes do not
    /// inherit it, later `std::env` reads do not see it, and `/proc/<pid>/environ` no longer
    /// shows it.
    ///
    /// Why the wipe: `/proc/<pid>/environ` shows the environment strings the kernel placed on
    /// the stack at `exec`, and `unsetenv` (what `std::env::remove_var` calls) only drops the
    /// pointer to one from the `environ` array — the string, value included, stays readable
    /// there for the life of the process. So the value's bytes are overwritten with zeros
    /// first. What remains: the value was in that memory (and readable by the same uid and
    /// root) from `exec` until this call, and any copy the parent process keeps. Only
    /// `KMSCKS_PASSPHRASE_FILE` keeps the passphrase out of the environment altogether.
    ///
    /// Changing the environment races with any other thread reading it through the C library
    /// (`getenv` is not synchronised with std's lock): call this only while the process has
    /// a single thread — `kmscksd` calls it first thing in its startup, before it spawns any.
    pub fn take_from_env() -> Result<KeyFileOptions> {
        let opts = KeyFileOptions::from_env()?;
        if std::env::var_os(PASSPHRASE_ENV).is_some() {
            wipe_environment_value(PASSPHRASE_ENV);
            std::env::remove_var(PASSPHRASE_ENV);
        }
        Ok(opts)
    }
}

/// Overwrites with zeros, in place, the value of every `name=value` string of the C
/// environment (see [`KeyFileOptions::take_from_env`] for why, and when this may be called).
#[allow(unsafe_code)]
fn wipe_environment_value(name: &str) {
    extern "C" {
        /// POSIX: the NULL-terminated array of the process's `name=value` strings.
        static mut environ: *mut *mut libc::c_char;
    }
    let prefix = format!("{name}=");
    // SAFETY: the caller runs while the process has a single thread, so neither `environ` nor
    // its strings change meanwhile. `environ` is NULL or a NULL-terminated array of pointers to
    // NUL-terminated strings in writable memory (the initial stack, or the C library's
    // allocations); only bytes before a string's terminating NUL are written, so each stays a
    // valid (shorter) C string. The shared view made of a string ends before it is written.
    unsafe {
        let mut entry = environ;
        if entry.is_null() {
            return;
        }
        while !(*entry).is_null() {
            let s = *entry;
            let (matches, len) = {
                let bytes = std::ffi::CStr::from_ptr(s).to_bytes();
                (bytes.starts_with(prefix.as_bytes()), bytes.len())
            };
            if matches {
                for i in prefix.len()..len {
                    std::ptr::write_volatile(s.add(i), 0);
                }
            }
            entry = entry.add(1);
        }
    }
}

/// Reads a passphrase file: a regular file owned by the effective uid with no group or other
/// access (checked on the open descriptor), at most [`PASSPHRASE_FILE_MAX`] bytes of UTF-8;
/// one trailing newline (`\n` or `\r\n`) is dropped. Every buffer that held the bytes is
/// zeroized.
fn read_passphrase_file(path: &Path) -> Result<Password> {
    let refuse = |why: String| {
        err!(
            ValidationException,
            "passphrase file {} ({PASSPHRASE_FILE_ENV}) {why}",
            path.display()
        )
    };
    let mut data = crate::peer::read_private_file(path, PASSPHRASE_FILE_MAX).map_err(refuse)?;
    if data.last() == Some(&b'\n') {
        data.pop();
        if data.last() == Some(&b'\r') {
            data.pop();
        }
    }
    if data.is_empty() {
        return Err(refuse("is empty".into()));
    }
    match String::from_utf8(std::mem::take(&mut *data)) {
        Ok(text) => Ok(Password::new(text)),
        Err(e) => {
            let mut bytes = e.into_bytes();
            zeroize::Zeroize::zeroize(&mut bytes);
            Err(refuse("is not valid UTF-8".into()))
        }
    }
}

/// Checks a key name against `[a-z0-9-]{1,64}`.
fn check_name(name: &str) -> Result<()> {
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(KmsError::validation(
            name,
            "keyFileName",
            crate::error::Constraint::Pattern("[a-z0-9-]{1,64}"),
        ))
    }
}

/// The path of key `name`'s file in `dir` (a `ValidationException` for a bad name).
pub(crate) fn key_path(dir: &LockedDir, name: &str) -> Result<PathBuf> {
    check_name(name)?;
    Ok(dir.path().join(KEYS_DIR).join(format!("{name}.key")))
}

fn derive_kek(passphrase: &Password, salt: &[u8], iterations: NonZeroU32) -> KeyMaterial {
    let mut out = Zeroizing::new([0u8; KeyMaterial::LEN]);
    pbkdf2::derive(
        pbkdf2::PBKDF2_HMAC_SHA256,
        iterations,
        salt,
        passphrase.expose().as_bytes(),
        &mut out[..],
    );
    KeyMaterial::from_bytes(&mut out)
}

fn sealed_aad(head: &[u8], name: &str) -> Vec<u8> {
    let mut aad = head.to_vec();
    aad.extend_from_slice(name.as_bytes());
    aad
}

/// The file image for `key` (which holds the key in the clear if there is no passphrase),
/// sealed with `iterations` (always [`PBKDF2_ITERATIONS`] but in the tests of old files).
fn encode(
    key: &KeyMaterial,
    name: &str,
    opts: &KeyFileOptions,
    iterations: NonZeroU32,
) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(SEALED_LEN));
    out.extend_from_slice(&MAGIC);
    out.push(VERSION);
    match &opts.passphrase {
        None => {
            out.extend_from_slice(&[KIND_PLAIN, 0, 0]);
            out.extend_from_slice(key.expose());
            let crc = crc32fast::hash(&out);
            out.extend_from_slice(&crc.to_le_bytes());
        }
        Some(pass) => {
            out.extend_from_slice(&[KIND_SEALED, 0, 0]);
            out.extend_from_slice(&iterations.get().to_le_bytes());
            let mut salt = [0u8; SALT_LEN];
            aws_lc_rs::rand::fill(&mut salt).expect("system randomness unavailable");
            out.extend_from_slice(&salt);
            let kek = derive_kek(pass, &salt, iterations);
            let wrapped = wrap::wrap_key(&kek, &sealed_aad(&out, name), key);
            out.extend_from_slice(&wrapped);
        }
    }
    out
}

/// [`PBKDF2_ITERATIONS`], as the type PBKDF2 takes.
fn current_iterations() -> NonZeroU32 {
    // Invariant: PBKDF2_ITERATIONS is a non-zero constant.
    NonZeroU32::new(PBKDF2_ITERATIONS).expect("non-zero iterations")
}

/// A decoded key file: the key, and whether the file should be re-sealed (a sealed file below
/// the current iteration count, or a plain file while a passphrase is set).
struct Decoded {
    key: KeyMaterial,
    reseal: bool,
}

fn decode(path: &Path, name: &str, data: &[u8], opts: &KeyFileOptions) -> Result<Decoded> {
    let damaged = |offset: usize, what: &str| {
        err!(
            StorageException,
            "key file {} damaged at offset {offset}: {what}",
            path.display()
        )
    };
    if data.len() < PREFIX_LEN {
        return Err(damaged(0, "truncated header"));
    }
    if data[0..4] != MAGIC {
        return Err(damaged(0, "bad magic (not a kmscks key file)"));
    }
    if data[4] != VERSION {
        return Err(damaged(4, &format!("unsupported version {}", data[4])));
    }
    match data[5] {
        KIND_PLAIN => {
            if data.len() != PLAIN_LEN {
                return Err(damaged(
                    data.len().min(PLAIN_LEN),
                    &format!("{} bytes, a plain key file has {PLAIN_LEN}", data.len()),
                ));
            }
            let body = &data[..PLAIN_LEN - 4];
            let mut crc = [0u8; 4];
            crc.copy_from_slice(&data[PLAIN_LEN - 4..]);
            if crc32fast::hash(body) != u32::from_le_bytes(crc) {
                return Err(damaged(PLAIN_LEN - 4, "checksum mismatch"));
            }
            // Length checked just above.
            let key = KeyMaterial::from_slice(&body[PREFIX_LEN..])
                .ok_or_else(|| damaged(PREFIX_LEN, "bad key length"))?;
            Ok(Decoded {
                key,
                reseal: opts.passphrase.is_some(),
            })
        }
        KIND_SEALED => {
            let Some(pass) = &opts.passphrase else {
                return Err(err!(
                    StorageException,
                    "key file {} is sealed: {PASSPHRASE_ENV} is not set (nor \
                     {PASSPHRASE_FILE_ENV})",
                    path.display()
                ));
            };
            if data.len() != SEALED_LEN {
                return Err(damaged(
                    data.len().min(SEALED_LEN),
                    &format!("{} bytes, a sealed key file has {SEALED_LEN}", data.len()),
                ));
            }
            let mut it = [0u8; 4];
            it.copy_from_slice(&data[PREFIX_LEN..PREFIX_LEN + 4]);
            let it = u32::from_le_bytes(it);
            let iterations = NonZeroU32::new(it)
                .filter(|_| (ITERATIONS_ACCEPTED.0..=ITERATIONS_ACCEPTED.1).contains(&it))
                .ok_or_else(|| {
                    damaged(
                        PREFIX_LEN,
                        &format!("implausible PBKDF2 iteration count {it}"),
                    )
                })?;
            let head = &data[..SEALED_HEAD_LEN];
            let kek = derive_kek(pass, &data[PREFIX_LEN + 4..SEALED_HEAD_LEN], iterations);
            let key = wrap::unwrap_key(&kek, &sealed_aad(head, name), &data[SEALED_HEAD_LEN..])
                .map_err(|_| {
                    err!(
                        StorageException,
                        "key file {}: wrong passphrase or damaged",
                        path.display()
                    )
                })?;
            Ok(Decoded {
                key,
                reseal: it < PBKDF2_ITERATIONS,
            })
        }
        other => Err(damaged(5, &format!("unknown kind {other}"))),
    }
}

fn read_checked(path: &Path) -> Result<Option<Zeroizing<Vec<u8>>>> {
    if let Some(keys) = path.parent().filter(|k| k.exists()) {
        super::check_owned_dir(keys)?;
    }
    match fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error("stat key file", path, e)),
        Ok(m) if !m.file_type().is_file() => {
            return Err(err!(
                StorageException,
                "key file {} is not a regular file",
                path.display()
            ))
        }
        Ok(_) => {}
    }
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(super::NOFOLLOW)
        .open(path)
        .map_err(|e| io_error("open key file", path, e))?;
    let meta = file
        .metadata()
        .map_err(|e| io_error("stat key file", path, e))?;
    let (owner, me) = (meta.uid(), crate::peer::effective_uid());
    if owner != me {
        return Err(err!(
            StorageException,
            "key file {} is owned by uid {owner}, not by uid {me} who runs kmscks: a key file \
             another user could have written is never used",
            path.display()
        ));
    }
    let mode = meta.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(err!(
            StorageException,
            "key file {} has mode {:04o}: it must not be accessible to group or others \
             (chmod 600 it)",
            path.display(),
            mode & 0o7777
        ));
    }
    let mut data = Zeroizing::new(Vec::with_capacity(SEALED_LEN));
    // Read at most one byte more than any valid file, so a huge file costs nothing.
    file.take(SEALED_LEN as u64 + 1)
        .read_to_end(&mut data)
        .map_err(|e| io_error("read key file", path, e))?;
    Ok(Some(data))
}

/// Decodes the key file `path` of key `name` and, if it asks for it, re-seals it at the
/// current iteration count. A failed re-seal is logged, not fatal: the file read is intact
/// and the key in hand is good; the next open tries again.
fn open_key(path: &Path, name: &str, data: &[u8], opts: &KeyFileOptions) -> Result<KeyMaterial> {
    let decoded = decode(path, name, data, opts)?;
    if decoded.reseal {
        match reseal(path, name, &decoded.key, opts) {
            Ok(()) => tracing::info!(
                key_file = %path.display(),
                iterations = PBKDF2_ITERATIONS,
                "key file re-sealed at the current PBKDF2 iteration count"
            ),
            Err(e) => tracing::warn!(
                key_file = %path.display(),
                error = %e,
                "key file could not be re-sealed; it stays as it was"
            ),
        }
    }
    Ok(decoded.key)
}

/// Replaces key file `path` with `key` sealed afresh, atomically: a temporary file beside it
/// (random name, created with `O_EXCL` and `O_NOFOLLOW`, mode 0600), fsynced, renamed over
/// `path`, then the directory fsynced. A crash leaves the old file or the new one, each
/// holding the same key, and perhaps a `.tmp` (not a `.key` name: never read, and removed at
/// the next open by [`remove_stale_temps`]).
fn reseal(path: &Path, name: &str, key: &KeyMaterial, opts: &KeyFileOptions) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().unwrap_or(Path::new("."));
    let image = encode(key, name, opts, current_iterations());
    let tmp = temp_path(dir, name);
    let written = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| {
            f.write_all(&image)?;
            f.sync_all()
        })
        .map_err(|e| io_error("write", &tmp, e))
        .and_then(|()| {
            fs::rename(&tmp, path).map_err(|e| io_error("rename over key file", path, e))
        });
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    sync_dir(dir)
}

/// A fresh temporary name for key `name` in `keys`: `.<name>.<16 hex digits>.tmp`, the one
/// pattern [`temp_key_name`] recognizes.
fn temp_path(keys: &Path, name: &str) -> PathBuf {
    let mut nonce = [0u8; 8];
    aws_lc_rs::rand::fill(&mut nonce).expect("system randomness unavailable");
    keys.join(format!(".{name}.{:016x}.tmp", u64::from_le_bytes(nonce)))
}

/// The key name in `file_name` if [`temp_path`] could have made it (`.<name>.<16 lowercase
/// hex digits>.tmp`, `<name>` a valid key name); `None` for any other name, which is never
/// ours to remove.
fn temp_key_name(file_name: &str) -> Option<&str> {
    let (name, nonce) = file_name
        .strip_prefix('.')?
        .strip_suffix(".tmp")?
        .rsplit_once('.')?;
    let hex = nonce.len() == 16
        && nonce
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    (hex && check_name(name).is_ok()).then_some(name)
}

/// Removes the temporary key files a killed process left in `dir`'s `keys/`, and returns how
/// many: those named as [`temp_path`] names them whose key file `<name>.key` exists. Why: a
/// kill between [`load_or_create_key`]'s link and its removal of the temporary name, or
/// before [`reseal`]'s rename, leaves it for good, and without a passphrase it holds the key
/// in the clear, a copy nothing would ever remove. Beside its key file it is a second name for
/// that file or a copy of the same key (or of one that lost a race and was never used); without
/// it, it is left alone, as it may be the only trace of the key. Call it only while nothing
/// else creates key files in `dir` (at open, under the directory's lock, before the store is
/// served), since it cannot tell another thread's temporary file from a dead process's. The
/// directory is fsynced if anything was removed.
pub fn remove_stale_temps(dir: &impl AsRef<LockedDir>) -> Result<usize> {
    let keys = dir.as_ref().path().join(KEYS_DIR);
    let entries = match fs::read_dir(&keys) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(io_error("list", &keys, e)),
        Ok(entries) => entries,
    };
    let mut removed = 0;
    for entry in entries {
        let entry = entry.map_err(|e| io_error("list", &keys, e))?;
        let file_name = entry.file_name();
        let Some(name) = file_name.to_str().and_then(temp_key_name) else {
            continue;
        };
        match fs::symlink_metadata(keys.join(format!("{name}.key"))) {
            Ok(meta) if meta.file_type().is_file() => {}
            _ => continue,
        }
        let path = keys.join(&file_name);
        match fs::remove_file(&path) {
            Ok(()) => removed += 1,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_error("remove stale temporary key file", &path, e)),
        }
    }
    if removed > 0 {
        sync_dir(&keys)?;
    }
    Ok(removed)
}

/// Loads the wrapping key `name`; fails if it does not exist.
pub fn load_key(
    dir: &impl AsRef<LockedDir>,
    name: &str,
    opts: &KeyFileOptions,
) -> Result<KeyMaterial> {
    let dir = dir.as_ref();
    let path = key_path(dir, name)?;
    match read_checked(&path)? {
        Some(data) => open_key(&path, name, &data, opts),
        None => Err(err!(
            StorageException,
            "key file {} does not exist",
            path.display()
        )),
    }
}

/// Loads the wrapping key `name` if its file exists (`Ok(None)` if it does not). For a caller
/// that must not create the key, and must tell a missing file from one it cannot use (any
/// other failure is an error, as in [`load_key`]).
pub fn load_key_if_present(
    dir: &impl AsRef<LockedDir>,
    name: &str,
    opts: &KeyFileOptions,
) -> Result<Option<KeyMaterial>> {
    let path = key_path(dir.as_ref(), name)?;
    read_checked(&path)?
        .map(|data| open_key(&path, name, &data, opts))
        .transpose()
}

/// Loads the wrapping key `name`, creating a fresh random one (sealed if `opts` has a
/// passphrase) if there is none yet.
pub fn load_or_create_key(
    dir: &impl AsRef<LockedDir>,
    name: &str,
    opts: &KeyFileOptions,
) -> Result<KeyMaterial> {
    let dir = dir.as_ref();
    let path = key_path(dir, name)?;
    let keys = dir.path().join(KEYS_DIR);
    if let Some(data) = read_checked(&path)? {
        let key = open_key(&path, name, &data, opts)?;
        // An earlier run may have been killed between its link and the fsync below: the entry
        // is made durable before records come to depend on the key.
        sync_dir(&keys)?;
        return Ok(key);
    }
    if !keys.is_dir() {
        // Made durable in the data directory as it is created.
        create_private_dir(&keys)?;
    }
    let key = KeyMaterial::generate();
    let image = encode(&key, name, opts, current_iterations());
    let tmp = temp_path(&keys, name);
    if let Err(e) = write_file_synced(&tmp, &[&image]) {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    // A hard link never replaces an existing file: if another thread created the key first,
    // its key wins and is the one returned.
    let linked = fs::hard_link(&tmp, &path);
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            sync_dir(&keys)?;
            Ok(key)
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            // The other creator fsyncs the directory too, maybe after this returns.
            let key = load_key(dir, name, opts)?;
            sync_dir(&keys)?;
            Ok(key)
        }
        Err(e) => Err(io_error("create key file", &path, e)),
    }
}

/// Deletes the key file `name` durably. Deleting a key that does not exist succeeds. Only
/// its test uses it: key files outlive their keys today.
#[cfg(test)]
pub fn delete_key(dir: &impl AsRef<LockedDir>, name: &str) -> Result<()> {
    let dir = dir.as_ref();
    let path = key_path(dir, name)?;
    match fs::remove_file(&path) {
        Ok(()) => sync_dir(&dir.path().join(KEYS_DIR)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_error("delete key file", &path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    fn sealed(p: &str) -> KeyFileOptions {
        KeyFileOptions {
            passphrase: Some(Password::new(p)),
        }
    }

    #[test]
    fn plain_key_is_created_once_with_mode_0600() {
        let t = tempfile::tempdir().unwrap();
        let d = crate::store::DataDir::lock(t.path()).unwrap();
        let opts = KeyFileOptions::default();
        let k1 = load_or_create_key(&d, "store-kek", &opts).unwrap();
        crate::store::synced::take();
        let k2 = load_or_create_key(&d, "store-kek", &opts).unwrap();
        assert_eq!(k1.expose(), k2.expose());
        // Loaded, its directory entry is made durable all the same (an earlier run may have
        // died before its fsync).
        assert!(crate::store::synced::take().contains(&t.path().join("keys")));
        assert_eq!(
            load_key(&d, "store-kek", &opts).unwrap().expose(),
            k1.expose()
        );
        let path = t.path().join("keys/store-kek.key");
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dmode = fs::metadata(t.path().join("keys"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(dmode, 0o700);
        assert_eq!(
            fs::read_dir(t.path().join("keys")).unwrap().count(),
            1,
            "tmp left over"
        );
    }

    #[test]
    fn sealed_round_trip_and_passphrase_errors() {
        let t = tempfile::tempdir().unwrap();
        let d = crate::store::DataDir::lock(t.path()).unwrap();
        let k = load_or_create_key(&d, "k1", &sealed("correct horse battery")).unwrap();
        let raw = fs::read(t.path().join("keys/k1.key")).unwrap();
        assert!(
            !raw.windows(32).any(|w| w == k.expose()),
            "key stored in the clear"
        );
        let again = load_key(&d, "k1", &sealed("correct horse battery")).unwrap();
        assert_eq!(again.expose(), k.expose());

        let e = load_key(&d, "k1", &KeyFileOptions::default()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::StorageException);
        assert!(
            e.message()
                .contains("k1.key is sealed: KMSCKS_PASSPHRASE is not set"),
            "{e}"
        );
        let e = load_key(&d, "k1", &sealed("wrong")).unwrap_err();
        assert!(
            e.message().ends_with("k1.key: wrong passphrase or damaged"),
            "{e}"
        );
        // The name is bound: the same file under another name does not open.
        fs::copy(t.path().join("keys/k1.key"), t.path().join("keys/k2.key")).unwrap();
        let e = load_key(&d, "k2", &sealed("correct horse battery")).unwrap_err();
        assert!(e.message().contains("wrong passphrase or damaged"), "{e}");
    }

    #[test]
    fn group_or_world_accessible_file_is_refused() {
        let t = tempfile::tempdir().unwrap();
        let d = crate::store::DataDir::lock(t.path()).unwrap();
        let opts = KeyFileOptions::default();
        load_or_create_key(&d, "k", &opts).unwrap();
        let path = t.path().join("keys/k.key");
        for mode in [0o644, 0o640, 0o602] {
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
            let e = load_key(&d, "k", &opts).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::StorageException);
            assert!(e.message().contains(&format!("has mode {mode:04o}")), "{e}");
            assert!(load_or_create_key(&d, "k", &opts).is_err());
        }
    }

    #[test]
    fn damaged_plain_file_is_detected() {
        let t = tempfile::tempdir().unwrap();
        let d = crate::store::DataDir::lock(t.path()).unwrap();
        let opts = KeyFileOptions::default();
        load_or_create_key(&d, "k", &opts).unwrap();
        let path = t.path().join("keys/k.key");
        let good = fs::read(&path).unwrap();
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x08;
            fs::write(&path, &bad).unwrap();
            let e = load_key(&d, "k", &opts).unwrap_err();
            assert!(
                e.message().contains("k.key damaged at offset"),
                "byte {i}: {e}"
            );
        }
        fs::write(&path, &good[..10]).unwrap();
        assert!(load_key(&d, "k", &opts)
            .unwrap_err()
            .message()
            .contains("10 bytes"));
    }

    #[test]
    fn names_are_validated_and_delete_is_durable() {
        let t = tempfile::tempdir().unwrap();
        let d = crate::store::DataDir::lock(t.path()).unwrap();
        let opts = KeyFileOptions::default();
        for bad in ["", "UPPER", "a/b", "..", "x.key", &"a".repeat(65)] {
            let e = load_or_create_key(&d, bad, &opts).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::ValidationException, "{bad:?}");
        }
        let k = load_or_create_key(&d, "gone", &opts).unwrap();
        delete_key(&d, "gone").unwrap();
        delete_key(&d, "gone").unwrap();
        let e = load_key(&d, "gone", &opts).unwrap_err();
        assert!(e.message().contains("does not exist"), "{e}");
        let fresh = load_or_create_key(&d, "gone", &opts).unwrap();
        assert_ne!(fresh.expose(), k.expose());
    }

    #[test]
    fn a_temporary_copy_a_crash_left_beside_its_key_file_is_removed_and_nothing_else_is() {
        let t = tempfile::tempdir().unwrap();
        let d = crate::store::DataDir::lock(t.path()).unwrap();
        let opts = KeyFileOptions::default();
        let key = load_or_create_key(&d, "k", &opts).unwrap();
        let keys = t.path().join(KEYS_DIR);
        // What a kill between the link and the removal leaves: a second name for the key file
        // (the key in the clear, without a passphrase).
        let left = temp_path(&keys, "k");
        fs::hard_link(keys.join("k.key"), &left).unwrap();
        // Not ours to remove: a temporary file with no key file beside it (perhaps the only
        // trace of its key), and names the code never makes.
        let kept = [
            keys.join(".gone.0123456789abcdef.tmp"),
            keys.join(".k.0123456789ABCDEF.tmp"),
            keys.join(".k.0123.tmp"),
            keys.join("k.0123456789abcdef.tmp"),
        ];
        for p in &kept {
            fs::write(p, b"x").unwrap();
        }
        crate::store::synced::take();
        assert_eq!(remove_stale_temps(&d).unwrap(), 1);
        assert!(!left.exists(), "the stale copy is still there");
        assert!(
            crate::store::synced::take().contains(&keys),
            "the removal was not made durable"
        );
        for p in &kept {
            assert!(p.exists(), "{} was removed", p.display());
        }
        assert_eq!(load_key(&d, "k", &opts).unwrap().expose(), key.expose());
        assert_eq!(temp_key_name(".kms-master.00000000deadbeef.tmp"), Some("kms-master"));
    }

    #[test]
    fn a_missing_key_file_is_none_without_being_created() {
        let t = tempfile::tempdir().unwrap();
        let d = crate::store::DataDir::lock(t.path()).unwrap();
        let opts = KeyFileOptions::default();
        assert!(load_key_if_present(&d, "k", &opts).unwrap().is_none());
        assert!(!t.path().join("keys/k.key").exists());
        let key = load_or_create_key(&d, "k", &opts).unwrap();
        let again = load_key_if_present(&d, "k", &opts).unwrap().expect("the key file exists");
        assert_eq!(again.expose(), key.expose());
    }

    fn iterations_in(path: &Path) -> u32 {
        let raw = fs::read(path).unwrap();
        assert_eq!(raw[5], KIND_SEALED, "not sealed");
        u32::from_le_bytes(raw[PREFIX_LEN..PREFIX_LEN + 4].try_into().unwrap())
    }

    #[test]
    fn an_old_iteration_key_file_opens_and_is_resealed_at_the_new_count() {
        let t = tempfile::tempdir().unwrap();
        let d = crate::store::DataDir::lock(t.path()).unwrap();
        let opts = sealed("an old passphrase");
        // A file as the previous build sealed it: 100,000 iterations.
        let key = KeyMaterial::generate();
        let old = NonZeroU32::new(100_000).unwrap();
        fs::create_dir(t.path().join(KEYS_DIR)).unwrap();
        fs::set_permissions(t.path().join(KEYS_DIR), fs::Permissions::from_mode(0o700)).unwrap();
        let path = t.path().join("keys/old.key");
        write_file_synced(&path, &[&encode(&key, "old", &opts, old)]).unwrap();
        assert_eq!(iterations_in(&path), 100_000);
        let before = fs::read(&path).unwrap();

        let loaded = load_key(&d, "old", &opts).unwrap();
        assert_eq!(loaded.expose(), key.expose());
        const { assert!(PBKDF2_ITERATIONS >= 600_000) };
        assert_eq!(iterations_in(&path), PBKDF2_ITERATIONS);
        let after = fs::read(&path).unwrap();
        assert_ne!(after[PREFIX_LEN + 4..SEALED_HEAD_LEN], before[PREFIX_LEN + 4..SEALED_HEAD_LEN], "fresh salt");
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(fs::read_dir(t.path().join(KEYS_DIR)).unwrap().count(), 1, "tmp left over");
        // The re-sealed file holds the same key, and is not re-sealed again.
        assert_eq!(load_key(&d, "old", &opts).unwrap().expose(), key.expose());
        assert_eq!(fs::read(&path).unwrap(), after);
        assert!(load_key(&d, "old", &sealed("wrong")).is_err());
    }

    #[test]
    fn a_plain_key_file_opened_with_a_passphrase_is_sealed() {
        let t = tempfile::tempdir().unwrap();
        let d = crate::store::DataDir::lock(t.path()).unwrap();
        let key = load_or_create_key(&d, "k", &KeyFileOptions::default()).unwrap();
        let path = t.path().join("keys/k.key");
        assert!(fs::read(&path).unwrap().windows(32).any(|w| w == key.expose()));
        let opts = sealed("later passphrase");
        assert_eq!(load_key(&d, "k", &opts).unwrap().expose(), key.expose());
        assert!(!fs::read(&path).unwrap().windows(32).any(|w| w == key.expose()));
        assert_eq!(iterations_in(&path), PBKDF2_ITERATIONS);
        let e = load_key(&d, "k", &KeyFileOptions::default()).unwrap_err();
        assert!(e.message().contains("is sealed"), "{e}");
    }

    #[test]
    fn a_passphrase_file_with_group_or_other_access_is_refused_naming_path_and_mode() {
        let t = tempfile::tempdir().unwrap();
        let path = t.path().join("pass");
        fs::write(&path, "file passphrase\n").unwrap();
        for mode in [0o640, 0o604, 0o660, 0o644] {
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
            let e = read_passphrase_file(&path).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::ValidationException);
            assert!(e.message().contains(&path.display().to_string()), "{e}");
            assert!(e.message().contains(&format!("mode {mode:04o}")), "{e}");
        }
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(read_passphrase_file(&path).unwrap().expose(), "file passphrase");
        fs::write(&path, "crlf\r\n").unwrap();
        assert_eq!(read_passphrase_file(&path).unwrap().expose(), "crlf");
        fs::write(&path, "two lines\n\n").unwrap();
        assert_eq!(read_passphrase_file(&path).unwrap().expose(), "two lines\n");
        fs::write(&path, "\n").unwrap();
        assert!(read_passphrase_file(&path).unwrap_err().message().contains("is empty"));
        fs::write(&path, vec![b'x'; PASSPHRASE_FILE_MAX as usize + 1]).unwrap();
        assert!(read_passphrase_file(&path).unwrap_err().message().contains("longer than"));
        let e = read_passphrase_file(&t.path().join("missing")).unwrap_err();
        assert!(e.message().contains("cannot be opened"), "{e}");
    }
}
