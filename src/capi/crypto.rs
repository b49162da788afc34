//! The cryptographic operations through the C API — Encrypt, Decrypt, ReEncrypt,
//! GenerateDataKey (with and without plaintext), GenerateRandom — and their batch forms, which
//! reach the engine's batched path (one call, many items, a result code per item).
//!
//! These are the hot calls, and they go through the backend's borrowed methods
//! (`Backend::encrypt_borrowed` …): the request lends C's own memory (key id, plaintext,
//! blob), so nothing is copied in; in embedded mode the service answers it directly, with no
//! owned request or `Request`/`Response` envelope (in daemon mode the client builds the owned
//! request it sends). Answers reach C in the allocation the service filled when it is exactly
//! sized; a batch's answers, lent item by item, are copied once, into the buffer C gets.
//! Nothing is formatted unless a call fails.

use std::ffi::c_char;

use super::boundary::{
    array, bytes, client, context, distinct, guard, lent_context, out, put, text, CResult, Context,
    Out,
};
use super::handle::{expect_response, kmscks_client};
use super::memory::{c_string, kmscks_buffer, kmscks_context_entry};
use super::result::{kmscks_result, Failure};
use crate::api::kms::{
    DecryptRequestRef, EncryptRequestRef, GenerateDataKeyRequestRef, GenerateDataKeyResponse,
    GenerateRandomRequest, ReEncryptRequest,
};
use crate::ops::Request;
use crate::KmsError;

/// Encrypts `pt_len` bytes under `key_id` (key id, key ARN, alias name or alias ARN) with the
/// encryption context `ctx` (`ctx_len` pairs; NULL when `ctx_len` is 0) and writes the
/// ciphertext blob to `*ciphertext`.
///
/// # Safety
/// `c` is a live handle; `key_id` is NUL-terminated; `pt` is readable for `pt_len` bytes (NULL
/// allowed when 0); `ctx` holds `ctx_len` entries of NUL-terminated strings; `ciphertext` is
/// valid for a write.
#[no_mangle]
pub unsafe extern "C" fn kmscks_encrypt(
    c: *const kmscks_client,
    key_id: *const c_char,
    pt: *const u8,
    pt_len: usize,
    ctx: *const kmscks_context_entry,
    ctx_len: usize,
    ciphertext: *mut kmscks_buffer,
) -> kmscks_result {
    guard(|| {
        // SAFETY: caller's contract (each argument below likewise).
        let c = unsafe { client(c) }?;
        let args = unsafe { encrypt_args(key_id, pt, pt_len, ctx, ctx_len) }?;
        let out = out(ciphertext, "ciphertext")?;
        let r = c.backend().encrypt_borrowed(&args.request())?;
        // SAFETY: checked non-NULL, writable by the caller's contract.
        unsafe { put(out, kmscks_buffer::from_vec(r.ciphertext_blob)) };
        Ok(())
    })
}

/// Decrypts a ciphertext blob (the key is the one it names) with the encryption context it
/// was made with, writes the plaintext to `*plaintext` and, when `key_id_or_null` is not NULL,
/// the key's ARN to `*key_id_or_null`. A damaged blob or a different context:
/// `KMSCKS_INVALID_CIPHERTEXT`.
///
/// # Safety
/// `c` is a live handle; `ct` is readable for `ct_len` bytes; `ctx` as in `kmscks_encrypt`;
/// `plaintext` is valid for a write; `key_id_or_null` is NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn kmscks_decrypt(
    c: *const kmscks_client,
    ct: *const u8,
    ct_len: usize,
    ctx: *const kmscks_context_entry,
    ctx_len: usize,
    plaintext: *mut kmscks_buffer,
    key_id_or_null: *mut *mut c_char,
) -> kmscks_result {
    guard(|| {
        // SAFETY: caller's contract (each argument below likewise).
        let c = unsafe { client(c) }?;
        let blob = unsafe { bytes(ct, ct_len, "ct") }?;
        let encryption_context = unsafe { lent_context(ctx, ctx_len, "ctx") }?;
        let out = out(plaintext, "plaintext")?;
        let key_out = super::boundary::optional_out(key_id_or_null);
        if let Some(k) = &key_out {
            distinct(&[out.named("plaintext"), k.named("key_id_or_null")])?;
        }
        let r = c.backend().decrypt_borrowed(&DecryptRequestRef {
            ciphertext_blob: blob,
            encryption_context: &encryption_context,
            grant_tokens: &[],
            key_id: None,
            encryption_algorithm: None,
            dry_run: false,
        })?;
        let arn = key_out.map(|o| Ok::<_, Failure>((o, c_string(&r.key_id)?)));
        let arn = arn.transpose()?;
        // SAFETY: checked non-NULL, writable by the caller's contract.
        unsafe { put(out, kmscks_buffer::from_secret(r.plaintext)) };
        if let Some((o, arn)) = arn {
            // SAFETY: as above.
            unsafe { put(o, arn) };
        }
        Ok(())
    })
}

/// Decrypts a ciphertext blob with its context `src_ctx` and encrypts the plaintext under
/// `dest_key_id` with `dest_ctx`, inside kmscks (the plaintext never reaches the caller);
/// writes the new blob to `*ciphertext`.
///
/// # Safety
/// As `kmscks_decrypt` and `kmscks_encrypt` for the matching arguments.
#[no_mangle]
pub unsafe extern "C" fn kmscks_re_encrypt(
    c: *const kmscks_client,
    ct: *const u8,
    ct_len: usize,
    src_ctx: *const kmscks_context_entry,
    src_ctx_len: usize,
    dest_key_id: *const c_char,
    dest_ctx: *const kmscks_context_entry,
    dest_ctx_len: usize,
    ciphertext: *mut kmscks_buffer,
) -> kmscks_result {
    guard(|| {
        // SAFETY: caller's contract (each argument below likewise).
        let c = unsafe { client(c) }?;
        let blob = unsafe { bytes(ct, ct_len, "ct") }?;
        let source_context = unsafe { context(src_ctx, src_ctx_len, "src_ctx") }?;
        let dest_key_id = unsafe { text(dest_key_id, "dest_key_id") }?;
        let dest_context = unsafe { context(dest_ctx, dest_ctx_len, "dest_ctx") }?;
        let out = out(ciphertext, "ciphertext")?;
        let request = Request::ReEncrypt(ReEncryptRequest {
            ciphertext_blob: blob.to_vec(),
            source_encryption_context: source_context,
            destination_key_id: dest_key_id.to_owned(),
            destination_encryption_context: dest_context,
            ..Default::default()
        });
        let r = expect_response!(c.call(&request)?, ReEncrypt)?;
        // SAFETY: checked non-NULL, writable by the caller's contract.
        unsafe { put(out, kmscks_buffer::from_vec(r.ciphertext_blob)) };
        Ok(())
    })
}

/// Makes a data key of `number_of_bytes` bytes (1 to 1024; 32 for AES-256) and writes it in
/// the clear to `*plaintext` and encrypted under `key_id` (with `ctx`) to `*ciphertext`.
///
/// # Safety
/// As `kmscks_encrypt`; `plaintext` and `ciphertext` are valid for a write.
#[no_mangle]
pub unsafe extern "C" fn kmscks_generate_data_key(
    c: *const kmscks_client,
    key_id: *const c_char,
    number_of_bytes: usize,
    ctx: *const kmscks_context_entry,
    ctx_len: usize,
    plaintext: *mut kmscks_buffer,
    ciphertext: *mut kmscks_buffer,
) -> kmscks_result {
    guard(|| {
        let plain_out = out(plaintext, "plaintext")?;
        let cipher_out = out(ciphertext, "ciphertext")?;
        distinct(&[plain_out.named("plaintext"), cipher_out.named("ciphertext")])?;
        // SAFETY: forwarded contract (each argument below likewise).
        let c = unsafe { client(c) }?;
        let args = unsafe { data_key_args(key_id, number_of_bytes, ctx, ctx_len) }?;
        let r = c
            .backend()
            .generate_data_key_borrowed(&args.request(), true)?;
        // SAFETY: checked non-NULL, writable by the caller's contract.
        unsafe { put_data_key(r, Some(plain_out), cipher_out) }
    })
}

/// As `kmscks_generate_data_key`, without the plaintext: only the encrypted data key is
/// written, to `*ciphertext` (decrypt it later with `kmscks_decrypt`).
///
/// # Safety
/// As `kmscks_encrypt`; `ciphertext` is valid for a write.
#[no_mangle]
pub unsafe extern "C" fn kmscks_generate_data_key_without_plaintext(
    c: *const kmscks_client,
    key_id: *const c_char,
    number_of_bytes: usize,
    ctx: *const kmscks_context_entry,
    ctx_len: usize,
    ciphertext: *mut kmscks_buffer,
) -> kmscks_result {
    guard(|| {
        let cipher_out = out(ciphertext, "ciphertext")?;
        // SAFETY: forwarded contract (each argument below likewise).
        let c = unsafe { client(c) }?;
        let args = unsafe { data_key_args(key_id, number_of_bytes, ctx, ctx_len) }?;
        let r = c
            .backend()
            .generate_data_key_borrowed(&args.request(), false)?;
        // SAFETY: checked non-NULL, writable by the caller's contract.
        unsafe { put_data_key(r, None, cipher_out) }
    })
}

/// The arguments of a GenerateDataKey (one call's, or one batch item's), checked: what its
/// borrowed request lends.
struct DataKeyArgs<'a> {
    key_id: &'a str,
    number_of_bytes: u32,
    context: Context,
}

impl DataKeyArgs<'_> {
    #[inline]
    fn request(&self) -> GenerateDataKeyRequestRef<'_> {
        GenerateDataKeyRequestRef {
            key_id: self.key_id,
            key_spec: None,
            number_of_bytes: Some(self.number_of_bytes),
            encryption_context: &self.context,
            grant_tokens: &[],
            dry_run: false,
        }
    }
}

/// Reads and checks a GenerateDataKey's arguments.
///
/// # Safety
/// As `kmscks_generate_data_key`'s arguments.
#[inline(always)]
unsafe fn data_key_args<'a>(
    key_id: *const c_char,
    number_of_bytes: usize,
    ctx: *const kmscks_context_entry,
    ctx_len: usize,
) -> CResult<DataKeyArgs<'a>> {
    // SAFETY: forwarded contract (each argument below likewise).
    let key_id = unsafe { text(key_id, "key_id") }?;
    let context = unsafe { lent_context(ctx, ctx_len, "ctx") }?;
    Ok(DataKeyArgs {
        key_id,
        number_of_bytes: byte_count(number_of_bytes, "number_of_bytes")?,
        context,
    })
}

/// The arguments of an Encrypt (one call's, or one batch item's), checked.
struct EncryptArgs<'a> {
    key_id: &'a str,
    plaintext: &'a [u8],
    context: Context,
}

impl EncryptArgs<'_> {
    #[inline]
    fn request(&self) -> EncryptRequestRef<'_> {
        EncryptRequestRef {
            key_id: self.key_id,
            plaintext: self.plaintext,
            encryption_context: &self.context,
            grant_tokens: &[],
            encryption_algorithm: None,
            dry_run: false,
        }
    }
}

/// Reads and checks an Encrypt's arguments.
///
/// # Safety
/// As `kmscks_encrypt`'s arguments.
#[inline(always)]
unsafe fn encrypt_args<'a>(
    key_id: *const c_char,
    pt: *const u8,
    pt_len: usize,
    ctx: *const kmscks_context_entry,
    ctx_len: usize,
) -> CResult<EncryptArgs<'a>> {
    // SAFETY: forwarded contract (each argument below likewise).
    let key_id = unsafe { text(key_id, "key_id") }?;
    let plaintext = unsafe { bytes(pt, pt_len, "pt") }?;
    let context = unsafe { lent_context(ctx, ctx_len, "ctx") }?;
    Ok(EncryptArgs {
        key_id,
        plaintext,
        context,
    })
}

/// A byte count C passes as `size_t`, as the request's 32-bit member (the service checks
/// AWS's range).
#[inline]
fn byte_count(n: usize, name: &str) -> CResult<u32> {
    u32::try_from(n).map_err(|_| Failure::invalid(name, format!("{n} does not fit 32 bits")))
}

/// Writes a data key's outputs.
///
/// # Safety
/// The out-pointers are writable (checked non-NULL when made).
#[inline]
unsafe fn put_data_key(
    r: GenerateDataKeyResponse,
    plain_out: Option<Out<kmscks_buffer>>,
    cipher_out: Out<kmscks_buffer>,
) -> CResult {
    if let Some(o) = plain_out {
        let key = r
            .plaintext
            .ok_or_else(|| Failure::internal("GenerateDataKey answered without a plaintext"))?;
        // SAFETY: forwarded contract.
        unsafe { put(o, kmscks_buffer::from_secret(key)) };
    }
    // SAFETY: forwarded contract.
    unsafe { put(cipher_out, kmscks_buffer::from_vec(r.ciphertext_blob)) };
    Ok(())
}

/// Writes `n` random bytes (1 to 1024) to `*out`, from the custom key store's cluster when
/// `custom_key_store_id_or_null` names one.
///
/// # Safety
/// `c` is a live handle; the id is NULL or NUL-terminated; `out` is valid for a write.
#[no_mangle]
pub unsafe extern "C" fn kmscks_generate_random(
    c: *const kmscks_client,
    custom_key_store_id_or_null: *const c_char,
    n: usize,
    out: *mut kmscks_buffer,
) -> kmscks_result {
    guard(|| {
        // SAFETY: caller's contract (each argument below likewise).
        let c = unsafe { client(c) }?;
        let store = unsafe {
            super::boundary::optional_text(
                custom_key_store_id_or_null,
                "custom_key_store_id_or_null",
            )
        }?;
        let o = super::boundary::out(out, "out")?;
        let request = Request::GenerateRandom(GenerateRandomRequest {
            number_of_bytes: Some(byte_count(n, "n")?),
            custom_key_store_id: store.map(str::to_owned),
        });
        let r = expect_response!(c.call(&request)?, GenerateRandom)?;
        // SAFETY: checked non-NULL, writable by the caller's contract.
        unsafe { put(o, kmscks_buffer::from_secret(r.plaintext)) };
        Ok(())
    })
}

/// One item of `kmscks_generate_data_key_batch`: the arguments of `kmscks_generate_data_key`.
#[repr(C)]
#[derive(Debug)]
pub struct kmscks_data_key_request {
    /// The KMS key (id, ARN, alias name or alias ARN).
    pub key_id: *const c_char,
    /// Data key length in bytes (1 to 1024).
    pub number_of_bytes: usize,
    /// Encryption context (NULL when `ctx_len` is 0).
    pub ctx: *const kmscks_context_entry,
    /// Number of context pairs.
    pub ctx_len: usize,
}

/// One answer of `kmscks_generate_data_key_batch`: its code and, when that is `KMSCKS_OK`,
/// both buffers (free each with `kmscks_buffer_free`; they are empty otherwise).
#[repr(C)]
#[derive(Debug)]
pub struct kmscks_data_key_result {
    /// This item's outcome.
    pub result: kmscks_result,
    /// The data key in the clear.
    pub plaintext: kmscks_buffer,
    /// The data key encrypted under the KMS key.
    pub ciphertext: kmscks_buffer,
}

/// One item of `kmscks_encrypt_batch`: the arguments of `kmscks_encrypt`.
#[repr(C)]
#[derive(Debug)]
pub struct kmscks_encrypt_request {
    /// The KMS key (id, ARN, alias name or alias ARN).
    pub key_id: *const c_char,
    /// The plaintext (NULL when `pt_len` is 0).
    pub pt: *const u8,
    /// Plaintext length in bytes.
    pub pt_len: usize,
    /// Encryption context (NULL when `ctx_len` is 0).
    pub ctx: *const kmscks_context_entry,
    /// Number of context pairs.
    pub ctx_len: usize,
}

/// One answer of `kmscks_encrypt_batch`: its code and, when that is `KMSCKS_OK`, the
/// ciphertext (free with `kmscks_buffer_free`; empty otherwise).
#[repr(C)]
#[derive(Debug)]
pub struct kmscks_encrypt_result {
    /// This item's outcome.
    pub result: kmscks_result,
    /// The ciphertext blob.
    pub ciphertext: kmscks_buffer,
}

/// GenerateDataKey for `count` items in one call, through the engine's batched path (in
/// daemon mode, one request on the socket): writes `results[i]` for every item. Returns
/// `KMSCKS_OK` when the batch ran, even if some items failed (each item's own code is in
/// `results[i].result`); any other code means no answer is yours and nothing in `results` is
/// to be read or freed: the batch did not run, and `results` is untouched
/// (`KMSCKS_INVALID_ARGUMENT` names the first bad item member, e.g. `items[3].key_id`), or,
/// after a failure partway (a bug, `KMSCKS_INTERNAL`), the slots answered before it are taken
/// back, their buffers wiped, freed and reset to `{NULL, 0}`.
///
/// # Safety
/// `c` is a live handle; `items` holds `count` requests whose pointers are valid as in
/// `kmscks_generate_data_key`; `results` is valid for writes of `count` results.
#[no_mangle]
pub unsafe extern "C" fn kmscks_generate_data_key_batch(
    c: *const kmscks_client,
    items: *const kmscks_data_key_request,
    count: usize,
    results: *mut kmscks_data_key_result,
) -> kmscks_result {
    guard(|| {
        // SAFETY: caller's contract (each argument below likewise).
        let c = unsafe { client(c) }?;
        let items = unsafe { array(items, count, "items") }?;
        let out = batch_out(results, count)?;
        let args = batch_args(items, |item| {
            // SAFETY: caller's contract for each item's pointers.
            unsafe { data_key_args(item.key_id, item.number_of_bytes, item.ctx, item.ctx_len) }
        })?;
        let requests: Vec<_> = args.iter().map(DataKeyArgs::request).collect();
        let mut written = Written::new(out, count, release_data_key);
        let ran = c
            .backend()
            .generate_data_key_batch_borrowed(&requests, true, &mut |answer| {
                written.push(|| match answer {
                    Ok(dk) => match dk.plaintext {
                        Some(key) => kmscks_data_key_result {
                            result: kmscks_result::KMSCKS_OK,
                            plaintext: kmscks_buffer::copy_of(key),
                            ciphertext: kmscks_buffer::copy_of(dk.ciphertext_blob),
                        },
                        None => failed_data_key(kmscks_result::KMSCKS_INTERNAL),
                    },
                    Err(e) => failed_data_key(item_code(e)),
                })
            });
        written.finish(ran)
    })
}

/// Encrypt for `count` items in one call, through the engine's batched path; results as for
/// `kmscks_generate_data_key_batch`.
///
/// # Safety
/// `c` is a live handle; `items` holds `count` requests whose pointers are valid as in
/// `kmscks_encrypt`; `results` is valid for writes of `count` results.
#[no_mangle]
pub unsafe extern "C" fn kmscks_encrypt_batch(
    c: *const kmscks_client,
    items: *const kmscks_encrypt_request,
    count: usize,
    results: *mut kmscks_encrypt_result,
) -> kmscks_result {
    guard(|| {
        // SAFETY: caller's contract (each argument below likewise).
        let c = unsafe { client(c) }?;
        let items = unsafe { array(items, count, "items") }?;
        let out = batch_out(results, count)?;
        let args = batch_args(items, |item| {
            // SAFETY: caller's contract for each item's pointers.
            unsafe { encrypt_args(item.key_id, item.pt, item.pt_len, item.ctx, item.ctx_len) }
        })?;
        let requests: Vec<_> = args.iter().map(EncryptArgs::request).collect();
        let mut written = Written::new(out, count, release_encrypt);
        let ran = c
            .backend()
            .encrypt_batch_borrowed(&requests, &mut |answer| {
                written.push(|| match answer {
                    Ok(e) => kmscks_encrypt_result {
                        result: kmscks_result::KMSCKS_OK,
                        ciphertext: kmscks_buffer::copy_of(e.ciphertext_blob),
                    },
                    Err(e) => kmscks_encrypt_result {
                        result: item_code(e),
                        ciphertext: kmscks_buffer::EMPTY,
                    },
                })
            });
        written.finish(ran)
    })
}

/// The checked arguments of a batch's items; a bad item member is named as
/// `items[i].<member>`.
fn batch_args<I, A>(items: &[I], mut args: impl FnMut(&I) -> CResult<A>) -> CResult<Vec<A>> {
    items
        .iter()
        .enumerate()
        .map(|(i, item)| args(item).map_err(|f| f.in_item("items", i)))
        .collect()
}

/// The results a batch writes into C's array as the backend lends its answers, in order.
///
/// Whatever ends the batch short of success releases what was written (`release`: the
/// buffers freed, data keys wiped), as the batch calls promise ("any other code means no
/// answer is yours"): a failure or a miscount at [`Written::finish`], and a panic
/// unwinding through the batch (caught at the C boundary and answered `KMSCKS_INTERNAL`) when
/// this is dropped. Without the second, a panic after some items would leave their data keys
/// in buffers C was told it does not have, never freed nor wiped.
struct Written<T> {
    results: *mut T,
    count: usize,
    /// Answers seen (more than `count` only if the backend broke its contract).
    seen: usize,
    release: fn(&mut T),
}

impl<T> Written<T> {
    fn new(results: *mut T, count: usize, release: fn(&mut T)) -> Written<T> {
        Written {
            results,
            count,
            seen: 0,
            release,
        }
    }

    /// Writes the next result (made only while there is a slot for it).
    #[inline]
    fn push(&mut self, result: impl FnOnce() -> T) {
        if self.seen < self.count {
            // SAFETY: `seen < count`, and `results` holds `count` writable slots (the batch
            // call's contract); nothing is read or dropped there.
            unsafe { self.results.add(self.seen).write(result()) };
        }
        self.seen += 1;
    }

    /// The batch's outcome: when it failed, or did not answer every item exactly once, no
    /// result stays written.
    fn finish(mut self, ran: crate::Result<()>) -> CResult {
        let failure = match ran {
            Ok(()) if self.seen == self.count => {
                // Handed over: nothing for the drop to release.
                self.seen = 0;
                return Ok(());
            }
            Ok(()) => Failure::internal(format!(
                "a batch of {} items was answered with {} results",
                self.count, self.seen
            )),
            Err(e) => Failure::from(e),
        };
        self.release_written();
        Err(failure)
    }

    /// Releases every result written, once.
    fn release_written(&mut self) {
        for i in 0..std::mem::take(&mut self.seen).min(self.count) {
            // SAFETY: slot `i` was written by `push` and not released since (`seen` is reset
            // before the first release, so a panic in one cannot release it twice).
            (self.release)(unsafe { &mut *self.results.add(i) });
        }
    }
}

impl<T> Drop for Written<T> {
    /// Reached with results still written only when a panic unwinds through the batch.
    fn drop(&mut self) {
        self.release_written();
    }
}

/// Releases a GenerateDataKey result the batch wrote and did not hand over.
fn release_data_key(r: &mut kmscks_data_key_result) {
    // SAFETY: a result the batch wrote (`Written::push`), its buffers this library's.
    unsafe {
        super::memory::kmscks_buffer_free(&mut r.plaintext);
        super::memory::kmscks_buffer_free(&mut r.ciphertext);
    }
}

/// Releases an Encrypt result the batch wrote and did not hand over.
fn release_encrypt(r: &mut kmscks_encrypt_result) {
    // SAFETY: as for `release_data_key`.
    unsafe { super::memory::kmscks_buffer_free(&mut r.ciphertext) }
}

/// The results array of a batch (checked before the batch runs).
fn batch_out<T>(results: *mut T, count: usize) -> CResult<*mut T> {
    if count > 0 && results.is_null() {
        return Err(Failure::invalid(
            "results",
            format!("is NULL with count {count}"),
        ));
    }
    Ok(results)
}

fn failed_data_key(result: kmscks_result) -> kmscks_data_key_result {
    kmscks_data_key_result {
        result,
        plaintext: kmscks_buffer::EMPTY,
        ciphertext: kmscks_buffer::EMPTY,
    }
}

/// The code of a batch item's error.
fn item_code(e: &KmsError) -> kmscks_result {
    kmscks_result::of_kind(e.kind())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An Encrypt result holding a buffer of its own, as the batch writes it.
    fn sealed(byte: u8) -> kmscks_encrypt_result {
        kmscks_encrypt_result {
            result: kmscks_result::KMSCKS_OK,
            ciphertext: kmscks_buffer::copy_of(&[byte; 48]),
        }
    }

    fn unwritten() -> Vec<kmscks_encrypt_result> {
        (0..4)
            .map(|_| kmscks_encrypt_result {
                result: kmscks_result::KMSCKS_INTERNAL,
                ciphertext: kmscks_buffer::EMPTY,
            })
            .collect()
    }

    #[test]
    fn a_panic_partway_through_a_batch_releases_the_results_it_wrote() {
        let mut results = unwritten();
        let out = results.as_mut_ptr();
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut written = Written::new(out, 4, release_encrypt);
            written.push(|| sealed(1));
            written.push(|| sealed(2));
            panic!("an item past the second");
        }));
        assert!(caught.is_err());
        for r in &results {
            assert!(r.ciphertext.data.is_null() && r.ciphertext.len == 0);
        }
    }

    #[test]
    fn a_failed_or_miscounted_batch_releases_its_results_and_a_whole_one_hands_them_over() {
        let mut results = unwritten();
        let mut written = Written::new(results.as_mut_ptr(), 4, release_encrypt);
        written.push(|| sealed(1));
        let failed = written.finish(Err(crate::err!(KMSInternalException, "shard gone")));
        assert!(failed.is_err());
        assert!(results[0].ciphertext.data.is_null());
        let mut written = Written::new(results.as_mut_ptr(), 4, release_encrypt);
        (0..3).for_each(|i| written.push(|| sealed(i)));
        assert!(
            written.finish(Ok(())).is_err(),
            "three answers for four items"
        );
        assert!(results.iter().all(|r| r.ciphertext.data.is_null()));
        let mut written = Written::new(results.as_mut_ptr(), 4, release_encrypt);
        (0..4).for_each(|i| written.push(|| sealed(i)));
        assert!(written.finish(Ok(())).is_ok());
        for (i, r) in results.iter_mut().enumerate() {
            assert_eq!(r.ciphertext.len, 48, "result {i} handed over");
            // SAFETY: a buffer this test's batch filled, freed once.
            unsafe { crate::capi::memory::kmscks_buffer_free(&mut r.ciphertext) };
        }
    }
}
