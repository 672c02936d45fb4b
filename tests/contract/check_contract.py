#!/usr/bin/env python3
"""Checks recorded API answers against schemas/openapi.yaml (OpenAPI 3.1, whose schemas
are JSON Schema 2020-12). The log (tests/integration/lib.sh rt_contract_record) has one
line per answer: METHOD, path, status, content type, and N (the body is in <log>.d/N.body).

Every answer must match a documented path and method (a literal segment beats a
parameter), a status that operation documents, the media type it documents, and for JSON
the status's schema. Answers of the router itself (404 for an undocumented path, 405 for
an undocumented method) are checked against components.schemas.Error. Prints every
mismatch and exits 1 when there is one.
Usage: check_contract.py openapi.yaml contract.log"""
import json
import os
import re
import sys

import yaml
from jsonschema import Draft202012Validator

try:  # jsonschema >= 4.18
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT202012
except ImportError:  # Debian 12's python3-jsonschema 4.10: RefResolver
    Registry = None

METHODS = ("get", "post", "put", "delete", "patch", "head", "options")


def pointer(*parts):
    return "#/" + "/".join(str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def route_table(spec):
    """[(regex, literal segment count, template)] for every documented path."""
    table = []
    for tpl in spec.get("paths", {}):
        segs = tpl.strip("/").split("/") if tpl != "/" else [""]
        rx = "^/" + "/".join("[^/]+" if re.fullmatch(r"\{[^}]+\}", s) else re.escape(s) for s in segs) + "$"
        if tpl == "/":
            rx = "^/$"
        table.append((re.compile(rx), sum(1 for s in segs if not s.startswith("{")), tpl))
    return table


def main():
    spec_path, log_path = sys.argv[1], sys.argv[2]
    with open(spec_path, encoding="utf-8") as f:
        spec = yaml.safe_load(f)
    if Registry:
        registry = Registry().with_resource("urn:openapi",
                                            Resource.from_contents(spec, default_specification=DRAFT202012))
    routes = route_table(spec)
    body_dir = log_path[:-4] + ".d" if log_path.endswith(".log") else log_path + ".d"
    failures, checked = [], 0

    def validate(ptr, body, where):
        try:
            doc = json.loads(body) if body.strip() else None
        except ValueError as e:
            failures.append(f"{where}: body is not JSON ({e}): {body[:200]!r}")
            return
        if Registry:
            v = Draft202012Validator({"$ref": "urn:openapi" + ptr}, registry=registry)
        else:
            from jsonschema import RefResolver
            v = Draft202012Validator({"$ref": ptr}, resolver=RefResolver("", spec))
        errs = sorted(v.iter_errors(doc), key=lambda e: list(e.path))
        for e in errs[:3]:
            path = "$" + "".join(f"[{p!r}]" for p in e.path)
            failures.append(f"{where}: {path}: {e.message[:300]}")

    with open(log_path, encoding="utf-8") as f:
        lines = [l.rstrip("\n") for l in f if l.strip()]
    for line in lines:
        method, path, status, ctype, n = line.split("\t")
        with open(os.path.join(body_dir, n + ".body"), encoding="utf-8", errors="replace") as bf:
            body = bf.read()
        where = f"{method} {path} -> {status}"
        checked += 1
        if not status.isdigit():
            continue  # the request never got an answer (curl failed): the test itself says so
        m = method.lower()
        cands = sorted((r for r in routes if r[0].match(path)), key=lambda r: -r[1])
        with_method = [r for r in cands if m in spec["paths"][r[2]] or (m == "head" and "get" in spec["paths"][r[2]])]
        if not with_method:
            if (not cands and status == "404") or (cands and status == "405"):
                validate(pointer("components", "schemas", "Error"), body,
                         where + " (router)")
            else:
                failures.append(f"{where}: no documented route for {method} {path}")
            continue
        tpl = with_method[0][2]
        op_key = m if m in spec["paths"][tpl] else "get"
        op = spec["paths"][tpl][op_key]
        responses = op.get("responses", {})
        if status not in responses:
            failures.append(f"{where}: status {status} is not documented for {method.upper()} {tpl} "
                            f"(documented: {', '.join(responses)})")
            continue
        resp = responses[status]
        base = ("paths", tpl, op_key, "responses", status)
        if "$ref" in resp:
            name = resp["$ref"].rsplit("/", 1)[-1]
            resp = spec["components"]["responses"][name]
            base = ("components", "responses", name)
        content = resp.get("content", {})
        if m == "head" or not content:
            if body.strip() and m != "head" and content == {} and status != "204":
                failures.append(f"{where}: a body, but the document describes none")
            continue
        media = (ctype.split(";")[0].strip().lower() or "application/json")
        if media not in content:
            failures.append(f"{where}: content type {media!r} is not documented ({', '.join(content)})")
            continue
        if media == "application/json" and "schema" in content[media]:
            validate(pointer(*base, "content", media, "schema"), body, where)
    for f in failures:
        print("contract: " + f)
    print(f"contract: {checked} answer(s) checked against {os.path.basename(spec_path)}, "
          f"{len(failures)} mismatch(es)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
