//! Borrowed views of the three hot data-plane requests (Encrypt, Decrypt, GenerateDataKey):
//! the form the batch calls take, so that the daemon can hand over requests decoded in place
//! from its read buffer, without a copy of their key ids, plaintexts or blobs. The owned
//! request types lend the same view ([`EncryptRequest::borrowed`] …), so both reach one
//! implementation; a view becomes an owned request again with `to_request` (for a backend
//! that must send it, `ops::Backend`'s default methods).
//!
//! Two answers have a borrowed view too ([`EncryptResponseRef`], [`GenerateDataKeyResponseRef`]):
//! what a batch lends its caller item by item through `ops::Backend`, so that the C API can
//! copy each answer once, into the buffer it hands over, with no owned response in between.

use std::fmt;

use super::{
    DecryptRequest, EncryptRequest, EncryptResponse, GenerateDataKeyRequest,
    GenerateDataKeyResponse,
};
use crate::secret::SecretBytes;
use crate::types::{DataKeySpec, EncryptionAlgorithm, EncryptionContext};

/// An Encrypt request, borrowed ([`EncryptRequest`]'s members).
#[derive(Clone, Copy)]
pub struct EncryptRequestRef<'a> {
    /// Key id, key ARN, alias name or alias ARN.
    pub key_id: &'a str,
    /// The plaintext.
    pub plaintext: &'a [u8],
    /// Bound to the ciphertext as AAD.
    pub encryption_context: &'a EncryptionContext,
    /// Grant tokens (shape-checked).
    pub grant_tokens: &'a [String],
    /// Only SYMMETRIC_DEFAULT.
    pub encryption_algorithm: Option<EncryptionAlgorithm>,
    /// Check access and parameters without encrypting.
    pub dry_run: bool,
}

/// A Decrypt request, borrowed ([`DecryptRequest`]'s members).
#[derive(Clone, Copy, Debug)]
pub struct DecryptRequestRef<'a> {
    /// The blob.
    pub ciphertext_blob: &'a [u8],
    /// The context it was encrypted with.
    pub encryption_context: &'a EncryptionContext,
    /// Grant tokens.
    pub grant_tokens: &'a [String],
    /// Optional: must be the blob's key.
    pub key_id: Option<&'a str>,
    /// Only SYMMETRIC_DEFAULT.
    pub encryption_algorithm: Option<EncryptionAlgorithm>,
    /// Check access and parameters without decrypting.
    pub dry_run: bool,
}

/// A GenerateDataKey(WithoutPlaintext) request, borrowed ([`GenerateDataKeyRequest`]'s
/// members).
#[derive(Clone, Copy, Debug)]
pub struct GenerateDataKeyRequestRef<'a> {
    /// Key id, key ARN, alias name or alias ARN.
    pub key_id: &'a str,
    /// AES_256 or AES_128 (exactly one of this and NumberOfBytes).
    pub key_spec: Option<DataKeySpec>,
    /// Within [`NUMBER_OF_BYTES`](crate::types::limits::NUMBER_OF_BYTES).
    pub number_of_bytes: Option<u32>,
    /// Bound to the ciphertext as AAD.
    pub encryption_context: &'a EncryptionContext,
    /// Grant tokens.
    pub grant_tokens: &'a [String],
    /// Check access and parameters without generating.
    pub dry_run: bool,
}

impl fmt::Debug for EncryptRequestRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncryptRequestRef")
            .field("key_id", &self.key_id)
            .field("plaintext", &"<redacted>")
            .field("encryption_context", &self.encryption_context)
            .field("grant_tokens", &self.grant_tokens.len())
            .field("encryption_algorithm", &self.encryption_algorithm)
            .field("dry_run", &self.dry_run)
            .finish()
    }
}

impl EncryptRequest {
    /// This request, borrowed.
    pub fn borrowed(&self) -> EncryptRequestRef<'_> {
        EncryptRequestRef {
            key_id: &self.key_id,
            plaintext: self.plaintext.expose(),
            encryption_context: &self.encryption_context,
            grant_tokens: &self.grant_tokens,
            encryption_algorithm: self.encryption_algorithm,
            dry_run: self.dry_run,
        }
    }
}

impl DecryptRequest {
    /// This request, borrowed.
    pub fn borrowed(&self) -> DecryptRequestRef<'_> {
        DecryptRequestRef {
            ciphertext_blob: &self.ciphertext_blob,
            encryption_context: &self.encryption_context,
            grant_tokens: &self.grant_tokens,
            key_id: self.key_id.as_deref(),
            encryption_algorithm: self.encryption_algorithm,
            dry_run: self.dry_run,
        }
    }
}

impl GenerateDataKeyRequest {
    /// This request, borrowed.
    pub fn borrowed(&self) -> GenerateDataKeyRequestRef<'_> {
        GenerateDataKeyRequestRef {
            key_id: &self.key_id,
            key_spec: self.key_spec,
            number_of_bytes: self.number_of_bytes,
            encryption_context: &self.encryption_context,
            grant_tokens: &self.grant_tokens,
            dry_run: self.dry_run,
        }
    }
}

impl EncryptRequestRef<'_> {
    /// The owned request (the plaintext copied into a [`SecretBytes`], wiped when it drops).
    pub fn to_request(&self) -> EncryptRequest {
        EncryptRequest {
            key_id: self.key_id.to_owned(),
            plaintext: SecretBytes::from_slice(self.plaintext),
            encryption_context: self.encryption_context.clone(),
            grant_tokens: self.grant_tokens.to_vec(),
            encryption_algorithm: self.encryption_algorithm,
            dry_run: self.dry_run,
        }
    }
}

impl DecryptRequestRef<'_> {
    /// The owned request.
    pub fn to_request(&self) -> DecryptRequest {
        DecryptRequest {
            ciphertext_blob: self.ciphertext_blob.to_vec(),
            encryption_context: self.encryption_context.clone(),
            grant_tokens: self.grant_tokens.to_vec(),
            key_id: self.key_id.map(str::to_owned),
            encryption_algorithm: self.encryption_algorithm,
            dry_run: self.dry_run,
        }
    }
}

impl GenerateDataKeyRequestRef<'_> {
    /// The owned request.
    pub fn to_request(&self) -> GenerateDataKeyRequest {
        GenerateDataKeyRequest {
            key_id: self.key_id.to_owned(),
            key_spec: self.key_spec,
            number_of_bytes: self.number_of_bytes,
            encryption_context: self.encryption_context.clone(),
            grant_tokens: self.grant_tokens.to_vec(),
            dry_run: self.dry_run,
        }
    }
}

/// An Encrypt answer, borrowed ([`EncryptResponse`]'s members; the algorithm is always
/// SYMMETRIC_DEFAULT).
#[derive(Clone, Copy, Debug)]
pub struct EncryptResponseRef<'a> {
    /// The ciphertext blob.
    pub ciphertext_blob: &'a [u8],
    /// Key ARN.
    pub key_id: &'a str,
}

/// A GenerateDataKey(WithoutPlaintext) answer, borrowed ([`GenerateDataKeyResponse`]'s
/// members).
#[derive(Clone, Copy)]
pub struct GenerateDataKeyResponseRef<'a> {
    /// The data key encrypted under the KMS key.
    pub ciphertext_blob: &'a [u8],
    /// The data key (None for WithoutPlaintext).
    pub plaintext: Option<&'a [u8]>,
    /// Key ARN.
    pub key_id: &'a str,
}

impl fmt::Debug for GenerateDataKeyResponseRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GenerateDataKeyResponseRef")
            .field("ciphertext_blob", &self.ciphertext_blob.len())
            .field("plaintext", &self.plaintext.map(|_| "<redacted>"))
            .field("key_id", &self.key_id)
            .finish()
    }
}

impl EncryptResponse {
    /// This answer, borrowed.
    pub fn borrowed(&self) -> EncryptResponseRef<'_> {
        EncryptResponseRef {
            ciphertext_blob: &self.ciphertext_blob,
            key_id: &self.key_id,
        }
    }
}

impl GenerateDataKeyResponse {
    /// This answer, borrowed.
    pub fn borrowed(&self) -> GenerateDataKeyResponseRef<'_> {
        GenerateDataKeyResponseRef {
            ciphertext_blob: &self.ciphertext_blob,
            plaintext: self.plaintext.as_ref().map(SecretBytes::expose),
            key_id: &self.key_id,
        }
    }
}
