"""Calls a kmscks operation that botocore's models do not have, the way botocore calls one.

Activation of a cluster and its users are CloudHSM CLI's on AWS (a program on an instance in
the cluster's VPC, not the CloudHSM API); kmscks serves them as the extra operations
`BaldrApiService.ActivateCluster`, `BaldrApiService.CreateUser`... `call` sends one: an AWS
JSON 1.1 POST to the client's endpoint, SigV4-signed with the session's credentials for the
client's signing name and Region. An error answer is raised as the client's exception class
for its code (botocore's `ClientError` when the model has none).

As a command, for the shell test: `python3 extension.py ENDPOINT CLIENT TARGET JSON_BODY`
prints the answer's JSON (credentials and Region from the environment, as for `aws`).
"""

import json
import sys

import boto3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.httpsession import URLLib3Session


def call(client, target, body):
    """Sends `body` (a dict) as `X-Amz-Target: target`; returns the answer's JSON."""
    model = client.meta.service_model
    request = AWSRequest(
        method="POST",
        url=client.meta.endpoint_url + "/",
        data=json.dumps(body).encode(),
        headers={
            "X-Amz-Target": target,
            "Content-Type": "application/x-amz-json-1.1",
        },
    )
    credentials = boto3.Session().get_credentials()
    SigV4Auth(credentials, model.signing_name, client.meta.region_name).add_auth(request)
    answer = URLLib3Session().send(request.prepare())
    data = json.loads(answer.content) if answer.content.strip() else {}
    if answer.status_code >= 300:
        code = data.get("__type", "").split("#")[-1]
        error = {
            "Error": {"Code": code, "Message": data.get("message", "")},
            "ResponseMetadata": {"HTTPStatusCode": answer.status_code},
        }
        raise client.exceptions.from_code(code)(error, target.split(".")[-1])
    return data


if __name__ == "__main__":
    endpoint, client_name, target, body = sys.argv[1:5]
    client = boto3.client(client_name, endpoint_url=endpoint)
    print(json.dumps(call(client, target, json.loads(body))))
