//! `--endpoint-url http://HOST:PORT`: the command line's requests sent to an AWS JSON 1.1
//! endpoint (`kmscksd --http`, or any AWS-JSON KMS endpoint) instead of the daemon's socket.
//!
//! Nothing is written twice: the request line and the answer framing are the HTTP load
//! generator's ([`Endpoint`]), the bodies the library's AWS JSON codec
//! ([`kmscks::protocol::aws_json`]), which is generated from the op table like the server's
//! side. Requests are not signed: kmscksd takes an unsigned request from its own uid as the
//! account root (a daemon verifying signatures, `--http-credentials`, answers
//! `MissingAuthenticationTokenException`, as AWS would).

use kmscks::ops::{Backend, Request, Response};
use kmscks::protocol::aws_json;
use kmscks::{ErrorKind, KmsError};

use crate::loadgen_http::Endpoint;

/// An AWS JSON endpoint as a [`Backend`].
pub(crate) struct HttpBackend {
    endpoint: Endpoint,
    url: String,
}

impl HttpBackend {
    /// The endpoint at `url` (`http://HOST[:PORT][/]`).
    pub(crate) fn new(url: &str) -> Result<HttpBackend, String> {
        let endpoint =
            Endpoint::parse(url).map_err(|e| e.replacen("--http: ", "--endpoint-url: ", 1))?;
        Ok(HttpBackend {
            endpoint,
            url: url.to_owned(),
        })
    }
}

impl Backend for HttpBackend {
    fn call(&self, request: &Request) -> kmscks::error::Result<Response> {
        let (target, body) = aws_json::encode_request(request);
        let bytes = zeroize::Zeroizing::new(self.endpoint.request_for(&target, &body, None));
        let (status, answer) = self.endpoint.exchange(&bytes).map_err(|e| {
            // The AWS CLI's words for an endpoint it cannot reach.
            KmsError::transport(
                ErrorKind::KMSInternalException,
                format!(
                    "Could not connect to the endpoint URL: \"{}\" ({e})",
                    self.url
                ),
            )
        })?;
        let answer = zeroize::Zeroizing::new(answer);
        if status == 200 {
            aws_json::decode_response(request.op(), &answer)
        } else {
            Err(aws_json::decode_error(status, &answer))
        }
    }
}
