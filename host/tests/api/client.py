"""What the API test clients share: failing with the script's name, and checking answers
field by field (`requests` responses, JSON objects)."""

import sys

NAME = "client"
ROOT = None  # the server's root: no answer may show it


def setup(name, root):
    global NAME, ROOT
    NAME, ROOT = name, root


def fail(msg):
    print(f"{NAME}: {msg}", file=sys.stderr)
    sys.exit(1)


def expect(cond, msg):
    if not cond:
        fail(msg)


def fields(obj, spec, where):
    """`spec`: field -> type or tuple of types; None in the tuple allows null."""
    expect(isinstance(obj, dict), f"{where}: not an object: {obj!r}")
    for name, types in spec.items():
        expect(name in obj, f"{where}: no field `{name}` in {sorted(obj)}")
        types = types if isinstance(types, tuple) else (types,)
        value = obj[name]
        if value is None:
            expect(None in types, f"{where}: `{name}` is null")
            continue
        real = tuple(t for t in types if t is not None)
        # bool is an int in Python: a number field must not be a bool.
        ok = isinstance(value, real) and not (isinstance(value, bool) and bool not in real)
        expect(ok, f"{where}: `{name}` = {value!r} is not {real}")


def error_of(r, status, kind, where):
    """An error answer: its status, the JSON error object with `kind`, no server path."""
    expect(r.status_code == status, f"{where}: status {r.status_code}, not {status}: {r.text}")
    body = r.json()
    fields(body, {"detail": str, "error": dict}, where)
    fields(body["error"], {"kind": str, "message": str}, where)
    expect(body["error"]["kind"] == kind, f"{where}: kind {body['error']['kind']}, not {kind}")
    if ROOT:
        expect(ROOT not in r.text, f"{where}: the answer shows a server path: {r.text}")
    return body
