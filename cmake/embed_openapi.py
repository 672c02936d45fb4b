#!/usr/bin/env python3
"""Generates a C file holding schemas/openapi.yaml as compact JSON, so the binary serves
GET /api/v1/openapi.json without reading files. Fails the build when the YAML does not
parse or is not an OpenAPI 3.1 document.
Run as: python3 cmake/embed_openapi.py schemas/openapi.yaml OUT.c"""
import json
import os
import sys

import yaml

src, out = sys.argv[1], sys.argv[2]
with open(src, encoding="utf-8") as f:
    doc = yaml.safe_load(f)
if not isinstance(doc, dict) or not str(doc.get("openapi", "")).startswith("3.1"):
    sys.exit(f"{src}: not an OpenAPI 3.1 document")
text = json.dumps(doc, separators=(",", ":"), ensure_ascii=False, sort_keys=False).encode("utf-8")
body = ["/* Generated from schemas/openapi.yaml by cmake/embed_openapi.py. Do not edit. */\n",
        "const char rt_openapi_json[] = {"]
for i in range(0, len(text), 24):
    body.append("".join(f"0x{b:02x}," for b in text[i:i + 24]) + "\n")
body.append("0};\n")
data = "".join(body)
try:
    with open(out, encoding="utf-8") as f:
        if f.read() == data:
            sys.exit(0)
except FileNotFoundError:
    pass
with open(out + ".tmp", "w", encoding="utf-8") as f:
    f.write(data)
os.replace(out + ".tmp", out)
