//! Batches (beyond AWS: many requests of one operation in one call, each answered on its
//! own) and errors as the wire carries them.

use super::*;

/// A batch request (beyond AWS): many requests of one operation in one call.
#[derive(Debug, Default, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
#[serde(rename_all = "PascalCase")]
pub struct BatchRequest<T> {
    /// The requests, answered in order.
    pub items: Vec<T>,
}

/// One answer of a batch: the response, or the error for that item alone.
#[derive(Debug, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
pub enum BatchItem<T> {
    /// The item succeeded.
    Ok(T),
    /// The item failed.
    Err(ErrorBody),
}

/// An error as the wire carries it: the AWS exception name and message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
pub struct ErrorBody {
    /// AWS exception name.
    #[serde(rename = "__type")]
    pub kind: String,
    /// Message.
    pub message: String,
}

impl From<&crate::KmsError> for ErrorBody {
    fn from(e: &crate::KmsError) -> ErrorBody {
        ErrorBody {
            kind: e.aws_name().to_owned(),
            message: e.message().to_owned(),
        }
    }
}

impl From<ErrorBody> for crate::KmsError {
    fn from(b: ErrorBody) -> crate::KmsError {
        let kind = crate::ErrorKind::from_aws_name(&b.kind)
            .unwrap_or(crate::ErrorKind::KMSInternalException);
        crate::KmsError::new(kind, b.message)
    }
}

/// A batch response.
#[derive(Debug, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
#[serde(rename_all = "PascalCase")]
pub struct BatchResponse<T> {
    /// One answer per request, in order.
    pub results: Vec<BatchItem<T>>,
}

impl<T> BatchResponse<T> {
    /// Builds a batch response from per-item results.
    pub fn from_results(results: Vec<crate::Result<T>>) -> BatchResponse<T> {
        BatchResponse {
            results: results
                .into_iter()
                .map(|r| match r {
                    Ok(v) => BatchItem::Ok(v),
                    Err(e) => BatchItem::Err(ErrorBody::from(&e)),
                })
                .collect(),
        }
    }
}
