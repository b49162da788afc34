"""What the boto3 scripts expect of a call that must fail: one definition for all of them.

`fails(exception, call, *args, **kwargs)` runs the call and returns the error when it raises
`exception` (a botocore exception class, e.g. `kms.exceptions.NotFoundException`); any other
outcome fails the script.
"""


def fails(exception, call, *args, **kwargs):
    """Asserts that `call` raises `exception` (a botocore class); returns the error."""
    try:
        call(*args, **kwargs)
    except exception as e:
        return e
    raise AssertionError(f"{call.__name__} did not raise {exception.__name__}")
