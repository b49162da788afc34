//! The cryptographic operations (spec §4.4) and how their binary members are serialised.

use super::*;

/// Serde for binary members: standard base64 (with padding) in JSON, as AWS writes blobs; raw
/// bytes in binary encodings.
pub mod blob {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine as _;
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serializer};

    /// Serialises bytes.
    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&STANDARD.encode(bytes))
        } else {
            s.serialize_bytes(bytes)
        }
    }

    /// Deserialises bytes.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        if d.is_human_readable() {
            let text = String::deserialize(d)?;
            STANDARD
                .decode(text.as_bytes())
                .map_err(|e| D::Error::custom(format!("invalid base64: {e}")))
        } else {
            serde_bytes_vec(d)
        }
    }

    fn serde_bytes_vec<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Vec<u8>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
                Ok(v.to_vec())
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
                Ok(v)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Vec<u8>, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 16));
                while let Some(b) = seq.next_element::<u8>()? {
                    out.push(b);
                }
                Ok(out)
            }
        }
        d.deserialize_byte_buf(V)
    }

    /// The same, for secret bytes (plaintexts, data keys).
    pub mod secret {
        use base64::engine::general_purpose::STANDARD;
        use base64::Engine as _;
        use serde::de::Error as _;
        use serde::{Deserialize, Deserializer, Serializer};

        use crate::secret::SecretBytes;

        /// Serialises secret bytes; in JSON, through a base64 text wiped once written.
        pub fn serialize<S: Serializer>(bytes: &SecretBytes, s: S) -> Result<S::Ok, S::Error> {
            if s.is_human_readable() {
                let text = zeroize::Zeroizing::new(STANDARD.encode(bytes.expose()));
                s.serialize_str(&text)
            } else {
                s.serialize_bytes(bytes.expose())
            }
        }

        /// Deserialises secret bytes; in JSON, the base64 text is wiped once decoded, and
        /// decoded straight into the secret's own buffer.
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SecretBytes, D::Error> {
            if !d.is_human_readable() {
                return super::serde_bytes_vec(d).map(SecretBytes::new);
            }
            let text = zeroize::Zeroizing::new(String::deserialize(d)?);
            let mut out = SecretBytes::zeroed(base64::decoded_len_estimate(text.len()));
            // The error names no character nor its offset: both are the secret's.
            let n = STANDARD
                .decode_slice(text.as_bytes(), out.expose_mut())
                .map_err(|_| D::Error::custom("invalid base64 (not shown: the value is secret)"))?;
            out.truncate(n);
            Ok(out)
        }

        /// For optional secret members.
        pub mod option {
            use serde::{Deserialize, Deserializer, Serialize, Serializer};

            use crate::secret::SecretBytes;

            #[derive(Serialize, Deserialize, bincode::Encode, bincode::Decode)]
            struct Wrap(#[serde(with = "super")] SecretBytes);

            /// Serialises optional secret bytes.
            pub fn serialize<S: Serializer>(
                bytes: &Option<SecretBytes>,
                s: S,
            ) -> Result<S::Ok, S::Error> {
                match bytes {
                    Some(b) => s.serialize_some(&WrapRef(b)),
                    None => s.serialize_none(),
                }
            }

            struct WrapRef<'a>(&'a SecretBytes);
            impl Serialize for WrapRef<'_> {
                fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                    super::serialize(self.0, s)
                }
            }

            /// Deserialises optional secret bytes.
            pub fn deserialize<'de, D: Deserializer<'de>>(
                d: D,
            ) -> Result<Option<SecretBytes>, D::Error> {
                Ok(Option::<Wrap>::deserialize(d)?.map(|w| w.0))
            }
        }
    }
}

pub use crate::types::EncryptionContext;

/// Encrypt.
#[derive(Debug, Default, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
#[serde(rename_all = "PascalCase", default)]
pub struct EncryptRequest {
    /// Key id, key ARN, alias name or alias ARN.
    pub key_id: String,
    /// [`PLAINTEXT_LEN`](crate::types::limits::PLAINTEXT_LEN) bytes.
    #[serde(with = "blob::secret")]
    pub plaintext: crate::secret::SecretBytes,
    /// Bound to the ciphertext as AAD.
    #[serde(skip_serializing_if = "EncryptionContext::is_empty")]
    pub encryption_context: EncryptionContext,
    /// Grant tokens (shape-checked).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub grant_tokens: Vec<String>,
    /// Only SYMMETRIC_DEFAULT.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encryption_algorithm: Option<EncryptionAlgorithm>,
    /// Check access and parameters without encrypting.
    pub dry_run: bool,
}

/// Encrypt response.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
#[serde(rename_all = "PascalCase")]
pub struct EncryptResponse {
    /// The ciphertext blob.
    #[serde(with = "blob")]
    pub ciphertext_blob: Vec<u8>,
    /// Key ARN.
    pub key_id: std::sync::Arc<str>,
    /// SYMMETRIC_DEFAULT.
    pub encryption_algorithm: EncryptionAlgorithm,
}

/// Decrypt.
#[derive(
    Clone, Debug, Default, PartialEq, Serialize, Deserialize, bincode::Encode, bincode::Decode,
)]
#[serde(rename_all = "PascalCase", default)]
pub struct DecryptRequest {
    /// The blob.
    #[serde(with = "blob")]
    pub ciphertext_blob: Vec<u8>,
    /// The context it was encrypted with.
    #[serde(skip_serializing_if = "EncryptionContext::is_empty")]
    pub encryption_context: EncryptionContext,
    /// Grant tokens.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub grant_tokens: Vec<String>,
    /// Optional: must be the blob's key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// Only SYMMETRIC_DEFAULT.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encryption_algorithm: Option<EncryptionAlgorithm>,
    /// Check access and parameters without decrypting.
    pub dry_run: bool,
}

/// Decrypt response.
#[derive(Debug, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
#[serde(rename_all = "PascalCase")]
pub struct DecryptResponse {
    /// Key ARN.
    pub key_id: std::sync::Arc<str>,
    /// The plaintext.
    #[serde(with = "blob::secret")]
    pub plaintext: crate::secret::SecretBytes,
    /// SYMMETRIC_DEFAULT.
    pub encryption_algorithm: EncryptionAlgorithm,
}

/// ReEncrypt.
#[derive(
    Clone, Debug, Default, PartialEq, Serialize, Deserialize, bincode::Encode, bincode::Decode,
)]
#[serde(rename_all = "PascalCase", default)]
pub struct ReEncryptRequest {
    /// The blob.
    #[serde(with = "blob")]
    pub ciphertext_blob: Vec<u8>,
    /// Its context.
    #[serde(skip_serializing_if = "EncryptionContext::is_empty")]
    pub source_encryption_context: EncryptionContext,
    /// Optional: must be the blob's key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_key_id: Option<String>,
    /// The key to re-encrypt under.
    pub destination_key_id: String,
    /// The new context.
    #[serde(skip_serializing_if = "EncryptionContext::is_empty")]
    pub destination_encryption_context: EncryptionContext,
    /// Only SYMMETRIC_DEFAULT.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_encryption_algorithm: Option<EncryptionAlgorithm>,
    /// Only SYMMETRIC_DEFAULT.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination_encryption_algorithm: Option<EncryptionAlgorithm>,
    /// Grant tokens.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub grant_tokens: Vec<String>,
    /// Check access and parameters without re-encrypting.
    pub dry_run: bool,
}

/// ReEncrypt response.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
#[serde(rename_all = "PascalCase")]
pub struct ReEncryptResponse {
    /// The new blob.
    #[serde(with = "blob")]
    pub ciphertext_blob: Vec<u8>,
    /// Source key ARN.
    pub source_key_id: std::sync::Arc<str>,
    /// Destination key ARN.
    pub key_id: std::sync::Arc<str>,
    /// SYMMETRIC_DEFAULT.
    pub source_encryption_algorithm: EncryptionAlgorithm,
    /// SYMMETRIC_DEFAULT.
    pub destination_encryption_algorithm: EncryptionAlgorithm,
}

/// GenerateDataKey / GenerateDataKeyWithoutPlaintext.
#[derive(
    Clone, Debug, Default, PartialEq, Serialize, Deserialize, bincode::Encode, bincode::Decode,
)]
#[serde(rename_all = "PascalCase", default)]
pub struct GenerateDataKeyRequest {
    /// Key id, key ARN, alias name or alias ARN.
    pub key_id: String,
    /// AES_256 or AES_128 (exactly one of this and NumberOfBytes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_spec: Option<crate::types::DataKeySpec>,
    /// Within [`NUMBER_OF_BYTES`](crate::types::limits::NUMBER_OF_BYTES).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub number_of_bytes: Option<u32>,
    /// Bound to the ciphertext as AAD.
    #[serde(skip_serializing_if = "EncryptionContext::is_empty")]
    pub encryption_context: EncryptionContext,
    /// Grant tokens.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub grant_tokens: Vec<String>,
    /// Check access and parameters without generating.
    pub dry_run: bool,
}

/// GenerateDataKey / GenerateDataKeyWithoutPlaintext response.
#[derive(Debug, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
#[serde(rename_all = "PascalCase")]
pub struct GenerateDataKeyResponse {
    /// The data key encrypted under the KMS key.
    #[serde(with = "blob")]
    pub ciphertext_blob: Vec<u8>,
    /// The data key (absent for WithoutPlaintext).
    #[serde(
        with = "blob::secret::option",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub plaintext: Option<crate::secret::SecretBytes>,
    /// Key ARN.
    pub key_id: std::sync::Arc<str>,
}

/// GenerateRandom.
#[derive(
    Clone, Debug, Default, PartialEq, Serialize, Deserialize, bincode::Encode, bincode::Decode,
)]
#[serde(rename_all = "PascalCase", default)]
pub struct GenerateRandomRequest {
    /// Within [`NUMBER_OF_BYTES`](crate::types::limits::NUMBER_OF_BYTES).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub number_of_bytes: Option<u32>,
    /// Draw from this store's cluster.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom_key_store_id: Option<String>,
}

/// GenerateRandom response.
#[derive(Debug, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
#[serde(rename_all = "PascalCase")]
pub struct GenerateRandomResponse {
    /// The random bytes.
    #[serde(with = "blob::secret")]
    pub plaintext: crate::secret::SecretBytes,
}
