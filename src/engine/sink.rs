//! Where the engine writes what a batch answers: one growing buffer of blobs and one of
//! secrets (data keys, plaintexts), owned by the caller and reused from batch to batch.
//!
//! Why: a reply's blob `Vec` and data-key `SecretBytes` were two allocations per request on
//! the daemon's hot path. A caller that reuses a [`Sink`] lets the shards write every answer
//! of a batch in place (the answers then name ranges of the sink), and encodes the replies
//! straight from it. The secrets buffer is wiped whenever it is cleared or dropped, and only
//! grows through [`crate::secret::reserve_wiping`], so no data key or plaintext is left behind
//! in it or in memory it gave back. Answers computed on another shard's thread (a batch split
//! across cores, a queued request) come back owned, as before.

use std::fmt;
use std::ops::Range;
use std::sync::{Arc, LazyLock};

use super::shard::{Req, Resp, RunShape};
use super::{DataKeyView, DecryptView, EncryptView};
use crate::error::{KmsError, Result};
use crate::secret::SecretBytes;

/// The reusable output buffers of batch calls (see the module doc).
#[derive(Default)]
pub struct Sink {
    blobs: Vec<u8>,
    secrets: Vec<u8>,
}

impl Sink {
    /// An empty sink (it allocates as it is first written).
    pub fn new() -> Sink {
        Sink::default()
    }

    /// Forgets every answer, wiping the secrets; the buffers keep their capacity.
    pub fn clear(&mut self) {
        self.blobs.clear();
        crate::secret::wipe(&mut self.secrets);
        self.secrets.clear();
    }

    /// Both buffers, to write a blob sealed from a secret of the same sink.
    pub(crate) fn areas_mut(&mut self) -> (&mut Vec<u8>, &mut Vec<u8>) {
        (&mut self.blobs, &mut self.secrets)
    }

    /// The bytes of a blob answer.
    pub(crate) fn blob<'s>(&'s self, out: &'s Out) -> &'s [u8] {
        match out {
            Out::At(r) => &self.blobs[r.clone()],
            Out::Blob(v) => v,
            Out::Secret(s) => s.expose(),
        }
    }

    /// The bytes of a secret answer (a data key, a plaintext).
    pub(crate) fn secret<'s>(&'s self, out: &'s Out) -> &'s [u8] {
        match out {
            Out::At(r) => &self.secrets[r.clone()],
            Out::Blob(v) => v,
            Out::Secret(s) => s.expose(),
        }
    }

    /// A blob answer as its own vector: the whole buffer when it holds only this answer (a
    /// sink used for one request), else a copy.
    pub(crate) fn take_blob(&mut self, out: Out) -> Vec<u8> {
        match out {
            Out::At(r) if r.start == 0 && r.end == self.blobs.len() => {
                std::mem::take(&mut self.blobs)
            }
            Out::At(r) => self.blobs[r].to_vec(),
            Out::Blob(v) => v,
            Out::Secret(s) => s.expose().to_vec(),
        }
    }

    /// A secret answer as its own [`SecretBytes`], as [`Sink::take_blob`] does.
    pub(crate) fn take_secret(&mut self, out: Out) -> SecretBytes {
        match out {
            Out::At(r) if r.start == 0 && r.end == self.secrets.len() => {
                SecretBytes::new(std::mem::take(&mut self.secrets))
            }
            Out::At(r) => SecretBytes::from_slice(&self.secrets[r]),
            Out::Blob(v) => SecretBytes::new(v),
            Out::Secret(s) => s,
        }
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        crate::secret::wipe(&mut self.secrets);
    }
}

impl fmt::Debug for Sink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sink")
            .field("blob_bytes", &self.blobs.len())
            .field("secrets", &"<redacted>")
            .finish()
    }
}

/// The reusable state of batch calls ([`super::Engine::encrypt_batch_into`] …): the answers
/// of the last batch, one per item, their outputs in its [`Sink`]; and the spare capacity of
/// the vectors a batch needs, so that a warm batch allocates nothing.
#[derive(Default)]
pub struct BatchOut {
    pub(super) sink: Sink,
    /// One per item of the last batch (None: lost on the way, not reached).
    pub(super) results: Vec<Option<Result<Resp>>>,
    /// The engine's answers to the valid items when some were refused first (then moved into
    /// `results` around the refusals); else always empty.
    pub(super) answers: Vec<Option<Result<Resp>>>,
    /// Items refused before they reached a shard, by index (usually none).
    pub(super) errors: Vec<(usize, KmsError)>,
    /// Always empty: the allocation the next batch's requests are built in.
    pub(super) reqs: Vec<Req<'static>>,
    /// The answers to the items of run requests that were sent again, one request each
    /// (a run answered only in part; usually none): `again_at` says from where in `again`
    /// each such run's items are, as (the run's request, the index of its first item sent
    /// again).
    pub(super) again: Vec<Option<Result<Resp>>>,
    pub(super) again_at: Vec<(usize, usize)>,
    /// Batches stay on the caller's shard ([`BatchOut::keep_home`]).
    pub(super) home_only: bool,
}

impl fmt::Debug for BatchOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BatchOut")
            .field("items", &self.results.len())
            .field("home_only", &self.home_only)
            .field("sink", &self.sink)
            .finish()
    }
}

impl BatchOut {
    /// Empty, without capacity.
    pub fn new() -> BatchOut {
        BatchOut::default()
    }

    /// Items answered by the last batch.
    pub fn len(&self) -> usize {
        self.results.len()
    }

    /// Whether the last batch had no items.
    pub fn is_empty(&self) -> bool {
        self.results.is_empty()
    }

    /// The spare allocation to build a batch's requests in, for
    /// [`super::Engine::dispatch_reqs_into`] (which gives it back).
    pub(crate) fn spare_reqs<'a>(&mut self) -> Vec<Req<'a>> {
        reuse_vec(std::mem::take(&mut self.reqs))
    }

    /// Makes the batches answered here stay on the caller's shard: never split with an idle
    /// one (items whose key lives only on another shard still go there). For callers that copy
    /// every answer out afterwards, the owned batch calls: a part split off comes back in
    /// buffers of its own, allocated on the other core and freed on this one, and the copying
    /// out is serial, so for one caller splitting cost more than it saved
    /// (docs/performance-history.md, 2026-12-06, night). The setting stays through
    /// [`BatchOut::clear`]: it belongs to the caller, not to a batch.
    pub(crate) fn keep_home(&mut self) {
        self.home_only = true;
    }

    /// Forgets the last batch's answers (wiping its data keys and plaintexts).
    pub fn clear(&mut self) {
        self.results.clear();
        self.answers.clear();
        self.errors.clear();
        self.again.clear();
        self.again_at.clear();
        self.sink.clear();
    }

    /// The successful answer to item `i` of the last batch, or why it failed.
    fn result(&self, i: usize) -> std::result::Result<&Resp, &KmsError> {
        answer_in(&self.results, i)
    }

    /// The answer to item `i` of the last batch, an Encrypt batch. Panics when `i` is out of
    /// range.
    pub fn encrypt(&self, i: usize) -> std::result::Result<EncryptView<'_>, &KmsError> {
        match self.result(i)? {
            Resp::Blob(b, arn) => Ok(EncryptView {
                ciphertext_blob: self.sink.blob(b),
                key_arn: arn,
            }),
            _ => Err(&MISMATCH),
        }
    }

    /// The answer to item `i` of the last batch, a Decrypt batch. Panics when `i` is out of
    /// range.
    pub fn decrypt(&self, i: usize) -> std::result::Result<DecryptView<'_>, &KmsError> {
        match self.result(i)? {
            Resp::Plain(p, arn) => Ok(DecryptView {
                plaintext: self.sink.secret(p),
                key_arn: arn,
            }),
            _ => Err(&MISMATCH),
        }
    }

    /// The answer to item `i` of the last batch, a GenerateDataKey(WithoutPlaintext) batch.
    /// Panics when `i` is out of range.
    pub fn data_key(&self, i: usize) -> std::result::Result<DataKeyView<'_>, &KmsError> {
        self.data_key_view(self.result(i)?)
    }

    fn data_key_view<'s>(
        &'s self,
        resp: &'s Resp,
    ) -> std::result::Result<DataKeyView<'s>, &'s KmsError> {
        match resp {
            Resp::DataKey(b, p, arn) => Ok(DataKeyView {
                ciphertext_blob: self.sink.blob(b),
                plaintext: p.as_ref().map(|p| self.sink.secret(p)),
                key_arn: arn,
            }),
            _ => Err(&MISMATCH),
        }
    }

    /// The answer to item `item` of request `j` of the last batch, a run of data keys
    /// ([`super::data_key_run_req`]; item 0 of any other request is its only item), whether
    /// the run answered it or it was sent again.
    #[inline]
    pub(crate) fn data_key_item(
        &self,
        j: usize,
        item: u32,
    ) -> std::result::Result<DataKeyView<'_>, &KmsError> {
        match self.data_key_run(j) {
            Some(run) if (item as usize) < run.len() => Ok(run.item(item as usize)),
            _ if item == 0 => self.data_key(j),
            _ => self.data_key_sent_again(j, item),
        }
    }

    /// The items request `j` of the last batch answered as a run, when it is a run of data
    /// keys ([`super::data_key_run_req`]) that answered more than one of its items.
    #[inline]
    pub(crate) fn data_key_run(&self, j: usize) -> Option<DataKeyRun<'_>> {
        match self.result(j) {
            Ok(Resp::DataKeys(b, p, arn, shape)) => Some(DataKeyRun {
                blobs: self.sink.blob(b),
                keys: p.as_ref().map(|p| self.sink.secret(p)),
                arn,
                shape: *shape,
            }),
            _ => None,
        }
    }

    /// [`BatchOut::data_key_item`] of an item its run did not reach.
    #[cold]
    fn data_key_sent_again(
        &self,
        j: usize,
        item: u32,
    ) -> std::result::Result<DataKeyView<'_>, &KmsError> {
        let answered = self.items_answered(j);
        match self.again_at.iter().find(|(run, _)| *run == j) {
            Some(&(_, at)) if item >= answered => {
                self.data_key_view(answer_in(&self.again, at + (item - answered) as usize)?)
            }
            _ => Err(&LOST),
        }
    }

    /// How many of request `j`'s items the run answered itself (see
    /// [`BatchOut::data_key_item`]).
    pub(super) fn items_answered(&self, j: usize) -> u32 {
        match self.result(j) {
            Ok(Resp::DataKeys(.., shape)) => shape.items,
            _ => 1,
        }
    }
}

/// The items a run of data keys answered, side by side ([`BatchOut::data_key_run`]).
pub(crate) struct DataKeyRun<'a> {
    blobs: &'a [u8],
    keys: Option<&'a [u8]>,
    arn: &'a Arc<str>,
    shape: RunShape,
}

impl<'a> DataKeyRun<'a> {
    /// How many items the run answered.
    pub(crate) fn len(&self) -> usize {
        self.shape.items as usize
    }

    /// The key ARN every item of the run answers with.
    pub(crate) fn arn(&self) -> &'a Arc<str> {
        self.arn
    }

    /// The answer to the run's item `i` (below [`DataKeyRun::len`]).
    #[inline]
    pub(crate) fn item(&self, i: usize) -> DataKeyView<'a> {
        DataKeyView {
            ciphertext_blob: nth(self.blobs, self.shape.blob, i),
            plaintext: self.keys.map(|k| nth(k, self.shape.key, i)),
            key_arn: self.arn,
        }
    }
}

/// The successful answer in `answers[i]`, or why it failed.
fn answer_in(answers: &[Option<Result<Resp>>], i: usize) -> std::result::Result<&Resp, &KmsError> {
    match &answers[i] {
        Some(Ok(r)) => Ok(r),
        Some(Err(e)) => Err(e),
        None => Err(&LOST),
    }
}

/// The answer of an item lost on its way through the shards (not reached: every item gets
/// an answer or an error).
static LOST: LazyLock<KmsError> =
    LazyLock::new(|| crate::err!(KMSInternalException, "batch item lost"));

/// Output `i` of the outputs laid back to back in `all`, each `each` bytes long
/// (`Resp::DataKeys`).
#[inline]
fn nth(all: &[u8], each: u32, i: usize) -> &[u8] {
    let each = each as usize;
    &all[each * i..each * (i + 1)]
}

/// An answer of another kind than the batch's (not reached: each batch builds requests of
/// its kind, and shards answer a request with its kind).
static MISMATCH: LazyLock<KmsError> = LazyLock::new(super::internal_mismatch);

/// An empty vector of items of another lifetime, in `v`'s allocation: the batch paths keep
/// the vectors of borrowed items they build per call (whose lifetime ends with the call) as
/// such spares. No allocation: std collects a `Vec`'s `into_iter().map(..)` in place when
/// the item layouts match, which they do (one type, two lifetimes); `tests/zero_alloc.rs`
/// would see it if that stopped.
pub fn reuse_vec<T, U>(mut v: Vec<T>) -> Vec<U> {
    v.clear();
    v.into_iter()
        .map(|_| unreachable!("the vector was cleared"))
        .collect()
}

/// One output of an answer: in a [`Sink`] (the caller's, on the inline path), or owned (made
/// on another thread, or for a caller without a sink).
pub(crate) enum Out {
    /// These bytes of the sink's blobs or secrets (which one: the field it answers).
    At(Range<usize>),
    /// An owned blob.
    Blob(Vec<u8>),
    /// An owned secret.
    Secret(SecretBytes),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sink_used_for_one_answer_hands_over_its_buffers_without_a_copy() {
        let mut sink = Sink::new();
        let (blobs, secrets) = sink.areas_mut();
        blobs.extend_from_slice(b"blob");
        secrets.extend_from_slice(b"key!");
        let ptr = secrets.as_ptr();
        let key = sink.take_secret(Out::At(0..4));
        assert_eq!((key.expose(), key.expose().as_ptr()), (&b"key!"[..], ptr));
        assert_eq!(sink.take_blob(Out::At(0..4)), b"blob");

        let (_, secrets) = sink.areas_mut();
        secrets.extend_from_slice(b"another secret");
        sink.clear();
        assert!(sink.areas_mut().1.is_empty());
    }

    #[test]
    fn a_reused_vector_keeps_its_allocation_across_item_lifetimes() {
        let mut v: Vec<&'static str> = Vec::with_capacity(8);
        v.push("x");
        let at = v.as_ptr() as usize;
        let text = String::from("borrowed");
        let mut w: Vec<&str> = reuse_vec(v);
        w.push(&text);
        assert_eq!((w.as_ptr() as usize, w.capacity()), (at, 8));
        let back: Vec<&'static str> = reuse_vec(w);
        assert_eq!(back.as_ptr() as usize, at);
    }
}
