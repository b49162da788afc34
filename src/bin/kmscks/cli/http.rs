//! `--endpoint-url http://HOST:PORT`: the command line's requests sent to an AWS JSON 1.1
//! endpoint (`kmscksd --http`, or any AWS-JSON KMS endpoint) instead of the daemon's socket.
//!
//! Nothing is written twice: the request line and the answer framing are the HTTP load
//! generator's ([`Endpoint`]), the bodies the library's AWS JSON codec
//! ([`kmscks::protocol::aws_json`]), which is generated from the op table like the server's
//! side. With `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` in the environment the requests
//! are signed (SigV4, the daemon's own signer, scoped to the Region of `--region`, else
//! `AWS_REGION`, else `AWS_DEFAULT_REGION`, else kmscks's default), as an AWS SDK signs them, so a
//! daemon verifying signatures (`--http-credentials`) checks them and refuses another Region
//! as AWS does; without them they are not signed, and kmscksd takes an unsigned request from
//! its own uid as the account root.

use kmscks::ops::{Backend, Request, Response};
use kmscks::protocol::aws_json;
use kmscks::{ErrorKind, KmsError};

use std::time::Duration;

use zeroize::Zeroizing;

use crate::loadgen_http::{Auth, Endpoint, HttpFailure};

/// An AWS JSON endpoint as a [`Backend`].
pub(crate) struct HttpBackend {
    endpoint: Endpoint,
    url: String,
    /// The access key id and secret to sign with, if the environment has them.
    key: Option<(String, Zeroizing<String>)>,
    /// The Region of the signatures' scope.
    region: String,
}

impl HttpBackend {
    /// The endpoint at `url` (`http://HOST[:PORT][/]`); `region`: `--region`, if given;
    /// `read_timeout`: how long a call waits for the endpoint (`--cli-read-timeout`).
    pub(crate) fn new(
        url: &str,
        region: Option<&str>,
        read_timeout: Option<Duration>,
    ) -> Result<HttpBackend, String> {
        let endpoint = Endpoint::parse(url)
            .map_err(|e| e.replacen("--http: ", "--endpoint-url: ", 1))?
            .with_timeout(read_timeout);
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let key = match (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
            (Some(id), Some(secret)) => Some((id, Zeroizing::new(secret))),
            _ => None,
        };
        let region = region
            .map(str::to_owned)
            .or_else(|| env("AWS_REGION"))
            .or_else(|| env("AWS_DEFAULT_REGION"))
            .unwrap_or_else(|| kmscks::types::Scope::default().region);
        Ok(HttpBackend {
            endpoint,
            url: url.to_owned(),
            key,
            region,
        })
    }
}

impl Backend for HttpBackend {
    fn call(&self, request: &Request) -> kmscks::error::Result<Response> {
        let (target, body) = aws_json::encode_request(request);
        let auth = match &self.key {
            Some((key_id, secret)) => Auth::Sign {
                key_id,
                secret,
                region: &self.region,
            },
            None => Auth::None,
        };
        let bytes = self
            .endpoint
            .request_for(&target, &body, &auth)
            .map(Zeroizing::new)
            .map_err(|e| KmsError::new(ErrorKind::IncompleteSignatureException, e))?;
        let (status, answer) = self.endpoint.exchange(&bytes).map_err(|e| match e {
            // The AWS CLI's words for an endpoint that does not answer in time, and for one
            // it cannot reach.
            HttpFailure::TimedOut(e) => KmsError::transport(
                ErrorKind::DependencyTimeoutException,
                format!("Read timeout on endpoint URL: \"{}\" ({e})", self.url),
            ),
            HttpFailure::Other(e) => KmsError::transport(
                ErrorKind::KMSInternalException,
                format!(
                    "Could not connect to the endpoint URL: \"{}\" ({e})",
                    self.url
                ),
            ),
        })?;
        let answer = Zeroizing::new(answer);
        if status == 200 {
            aws_json::decode_response(request.op(), &answer)
        } else {
            Err(aws_json::decode_error(status, &answer))
        }
    }
}
