#!/usr/bin/env python3
"""Checks that schemas/openapi.yaml documents exactly the routes the server has: the route
table (the `routes[]` array of engine/api/api_routes.c, method + pattern, `{}` a
parameter) against the document's paths and operations (`{name}` a parameter). Prints
every route the document lacks and every documented operation the table lacks, and
exits 1 when there is one. ctest: contract.routes.
Usage: check_routes.py engine/api/api_routes.c schemas/openapi.yaml"""
import re
import sys

import yaml

METHODS = ("get", "put", "post", "delete", "patch", "head", "options")
ROUTE = re.compile(r'\{\s*"([A-Z]+)"\s*,\s*"([^"]*)"')


def table_routes(c_path):
    """{(METHOD, pattern)} from the routes[] initializer."""
    with open(c_path, encoding="utf-8") as f:
        src = f.read()
    m = re.search(r"\brt_api_route\s+routes\s*\[\s*\]\s*=\s*\{(.*?)\n\};", src, re.S)
    if not m:
        sys.exit(f"check_routes: no `rt_api_route routes[] = {{...}};` table in {c_path}")
    body = re.sub(r"/\*.*?\*/", "", m.group(1), flags=re.S)  # comments may name routes
    routes = {(meth, path) for meth, path in ROUTE.findall(body)}
    if not routes:
        sys.exit(f"check_routes: the route table in {c_path} has no entries I can read")
    return routes


def documented_routes(spec_path):
    """{(METHOD, pattern)} with every {name} written as {} like the table does."""
    with open(spec_path, encoding="utf-8") as f:
        spec = yaml.safe_load(f)
    out = set()
    for path, item in (spec.get("paths") or {}).items():
        pattern = re.sub(r"\{[^}/]+\}", "{}", path)
        for meth in item or {}:
            if meth in METHODS:
                out.add((meth.upper(), pattern))
    return out


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    table = table_routes(sys.argv[1])
    doc = documented_routes(sys.argv[2])
    missing = sorted(table - doc, key=lambda r: (r[1], r[0]))
    extra = sorted(doc - table, key=lambda r: (r[1], r[0]))
    for meth, path in missing:
        print(f"routes: {meth} {path} is served (api_routes.c) but not documented in openapi.yaml")
    for meth, path in extra:
        print(f"routes: {meth} {path} is documented in openapi.yaml but the route table has no such route")
    print(f"routes: {len(table)} route(s) served, {len(doc)} documented, "
          f"{len(missing)} undocumented, {len(extra)} documented but not served")
    return 1 if missing or extra else 0


if __name__ == "__main__":
    sys.exit(main())
