"""Prints, as one JSON object, the input members botocore's models give every operation of
the services kmscks serves: {"TrentService.Encrypt": ["KeyId", ...], "BaldrApiService...": ...}.

Why: the Rust side holds each operation's request type to AWS's published model, so that a
member AWS defines is either decoded or refused by name, never dropped without a word.
"""

import json
import sys

try:
    import botocore.session
except ImportError:
    print("botocore is not installed (pip install boto3)", file=sys.stderr)
    sys.exit(3)

PREFIXES = {"kms": "TrentService", "cloudhsmv2": "BaldrApiService"}

session = botocore.session.get_session()
out = {}
for service, prefix in PREFIXES.items():
    model = session.get_service_model(service)
    for name in model.operation_names:
        shape = model.operation_model(name).input_shape
        out[f"{prefix}.{name}"] = list(shape.members) if shape else []
print(json.dumps(out))
