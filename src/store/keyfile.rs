//! Wrapping-key files: `<data dir>/keys/<name>.key`, one 32-byte key each, mode 0600.
//!
//! Layout: an 8-byte prefix — magic "KCKK" | version u8 (1) | kind u8 | reserved u16 (0) —
//! then, for kind 0 (plain), the 32 key bytes and a crc32 of everything before; for kind 1
//! (sealed), PBKDF2 iterations u32 | salt (16) | the key wrapped by [`crate::crypto::wrap`]
//! under a key derived from the passphrase with PBKDF2-HMAC-SHA256, with AAD = everything
//! before the wrapped key followed by the key's name (so a file renamed to another name no
//! longer opens).
//!
//! Files are written atomically (temporary file, fsync, link into place, directory fsync) and
//! never replaced: a key file, once created, is the key.

use std::fs;
use std::io::{self, Read};
use std::num::NonZeroU32;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use aws_lc_rs::pbkdf2;
use zeroize::Zeroizing;

use super::{create_private_dir, io_error, sync_dir, write_file_synced, DataDir};
use crate::crypto::wrap::{self, WRAP_OVERHEAD};
use crate::error::KmsError;
use crate::secret::{KeyMaterial, Password};
use crate::{err, Result};

/// Environment variable holding the passphrase that seals key files.
pub const PASSPHRASE_ENV: &str = "KMSCKS_PASSPHRASE";
/// Subdirectory of the data directory holding key files.
pub const KEYS_DIR: &str = "keys";
/// PBKDF2-HMAC-SHA256 iterations used when sealing a new key file.
pub const PBKDF2_ITERATIONS: u32 = 100_000;
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
    /// Reads `KMSCKS_PASSPHRASE` (unset or empty: no passphrase).
    pub fn from_env() -> Result<KeyFileOptions> {
        let passphrase = match std::env::var_os(PASSPHRASE_ENV) {
            None => None,
            Some(v) if v.is_empty() => None,
            Some(v) => Some(Password::new(v.into_string().map_err(|_| {
                err!(ValidationException, "{PASSPHRASE_ENV} is not valid UTF-8")
            })?)),
        };
        Ok(KeyFileOptions { passphrase })
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

fn key_path(dir: &DataDir, name: &str) -> Result<PathBuf> {
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

/// The file image for `key` (which holds the key in the clear if there is no passphrase).
fn encode(key: &KeyMaterial, name: &str, opts: &KeyFileOptions) -> Zeroizing<Vec<u8>> {
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
            out.extend_from_slice(&PBKDF2_ITERATIONS.to_le_bytes());
            let mut salt = [0u8; SALT_LEN];
            aws_lc_rs::rand::fill(&mut salt).expect("system randomness unavailable");
            out.extend_from_slice(&salt);
            // Invariant: PBKDF2_ITERATIONS is a non-zero constant.
            let iterations = NonZeroU32::new(PBKDF2_ITERATIONS).expect("non-zero iterations");
            let kek = derive_kek(pass, &salt, iterations);
            let wrapped = wrap::wrap_key(&kek, &sealed_aad(&out, name), key);
            out.extend_from_slice(&wrapped);
        }
    }
    out
}

fn decode(path: &Path, name: &str, data: &[u8], opts: &KeyFileOptions) -> Result<KeyMaterial> {
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
            KeyMaterial::from_slice(&body[PREFIX_LEN..])
                .ok_or_else(|| damaged(PREFIX_LEN, "bad key length"))
        }
        KIND_SEALED => {
            let Some(pass) = &opts.passphrase else {
                return Err(err!(
                    StorageException,
                    "key file {} is sealed: {PASSPHRASE_ENV} is not set",
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
            wrap::unwrap_key(&kek, &sealed_aad(head, name), &data[SEALED_HEAD_LEN..]).map_err(
                |_| {
                    err!(
                        StorageException,
                        "key file {}: wrong passphrase or damaged",
                        path.display()
                    )
                },
            )
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

/// Loads the wrapping key `name`; fails if it does not exist.
pub fn load_key(dir: &DataDir, name: &str, opts: &KeyFileOptions) -> Result<KeyMaterial> {
    let path = key_path(dir, name)?;
    match read_checked(&path)? {
        Some(data) => decode(&path, name, &data, opts),
        None => Err(err!(
            StorageException,
            "key file {} does not exist",
            path.display()
        )),
    }
}

/// Loads the wrapping key `name`, creating a fresh random one (sealed if `opts` has a
/// passphrase) if there is none yet.
pub fn load_or_create_key(dir: &DataDir, name: &str, opts: &KeyFileOptions) -> Result<KeyMaterial> {
    let path = key_path(dir, name)?;
    if let Some(data) = read_checked(&path)? {
        return decode(&path, name, &data, opts);
    }
    let keys = dir.path().join(KEYS_DIR);
    if !keys.is_dir() {
        create_private_dir(&keys)?;
        sync_dir(dir.path())?;
    }
    let key = KeyMaterial::generate();
    let image = encode(&key, name, opts);
    let mut nonce = [0u8; 8];
    aws_lc_rs::rand::fill(&mut nonce).expect("system randomness unavailable");
    let tmp = keys.join(format!(".{name}.{:016x}.tmp", u64::from_le_bytes(nonce)));
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
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => load_key(dir, name, opts),
        Err(e) => Err(io_error("create key file", &path, e)),
    }
}

/// Deletes the key file `name` durably. Deleting a key that does not exist succeeds. Only
/// its test uses it: key files outlive their keys today.
#[cfg(test)]
pub fn delete_key(dir: &DataDir, name: &str) -> Result<()> {
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
        let (d, _) = DataDir::open(t.path()).unwrap();
        let opts = KeyFileOptions::default();
        let k1 = load_or_create_key(&d, "store-kek", &opts).unwrap();
        let k2 = load_or_create_key(&d, "store-kek", &opts).unwrap();
        assert_eq!(k1.expose(), k2.expose());
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
        let (d, _) = DataDir::open(t.path()).unwrap();
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
                .ends_with("k1.key is sealed: KMSCKS_PASSPHRASE is not set"),
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
        let (d, _) = DataDir::open(t.path()).unwrap();
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
        let (d, _) = DataDir::open(t.path()).unwrap();
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
        let (d, _) = DataDir::open(t.path()).unwrap();
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
}
