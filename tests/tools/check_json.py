#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Check a JSON document written by a tool: it must be strict UTF-8 (no
invalid byte, whatever the image held), parse, and follow the schema
(docs/*.schema.json, with the jsonschema module as tests/info/check_truth.py
uses it; skipped with a note when the module is missing).

Usage: check_json.py SCHEMA FILE [PYTHON-EXPR]
PYTHON-EXPR, if given, is evaluated with `d` bound to the document and
`raw(s)` giving back a string's original bytes (surrogateescape); it must
be true."""

import json
import sys


def raw(s):
    return s.encode("utf-8", "surrogateescape")


def main():
    schema_path, path = sys.argv[1], sys.argv[2]
    data = open(path, "rb").read()
    try:
        text = data.decode("utf-8", "strict")
    except UnicodeDecodeError as e:
        print(f"{path}: not valid UTF-8: {e}")
        return 1
    try:
        d = json.loads(text)
    except ValueError as e:
        print(f"{path}: not JSON: {e}")
        return 1
    try:
        import jsonschema
    except ImportError:
        print("note: no jsonschema module: the JSON schema is not checked")
        jsonschema = None
    if jsonschema is not None:
        schema = json.load(open(schema_path))
        jsonschema.Draft202012Validator.check_schema(schema)
        errs = list(jsonschema.Draft202012Validator(schema).iter_errors(d))
        if errs:
            for e in errs[:3]:
                print(f"{path}: does not follow {schema_path}: {e.message[:300]} at {list(e.path)}")
            return 1
    if len(sys.argv) > 3:
        ok = eval("(" + sys.argv[3] + ")", {"d": d, "raw": raw})  # noqa: S307 (test expressions)
        if not ok:
            print(f"{path}: {sys.argv[3]} is false")
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
