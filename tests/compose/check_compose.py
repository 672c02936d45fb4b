#!/usr/bin/python3
"""tests/compose/check_compose.py — the docker compose files, checked offline (no docker
engine runs here).

  /usr/bin/python3 tests/compose/check_compose.py [SOURCE_DIR]

- compose/docker-compose.yml validates against the Compose Specification's JSON schema
  (tests/compose/compose-spec.json, vendored; see compose-spec.NOTICE), after the same
  ${VAR:-default} interpolation docker compose does (with every variable unset), and its
  services agree with each other (URLs, credentials, ports, mounts, health checks).
- Every RATCHET_* variable that docker-compose.yml or the Dockerfile sets is a setting the
  binary knows: engine/core/config.c's settings table, an RT_*_ENV name in engine/*/*.h, or a
  RATCHET_SECRET_* secret (engine/lang/expr.c).
- compose/Dockerfile runs the cmake commands `scripts/dev.sh up` runs (parsed from both
  files and compared token by token), installs packages only through scripts/lib/deps.sh
  (its list, its installer), and its runtime extras are on that list.
- compose/prometheus-rules.yml has the structure Prometheus loads (groups, rules, alert,
  expr, for, labels, annotations), names only metric families of engine/core/metrics.c and run
  statuses of the name table (engine/lang/run_status.c), and covers the alerts DESIGN §8 and issue 7 ask for.
- The checker checks itself: broken inputs (a schema violation, a changed cmake flag, an
  unknown setting, a rule on a metric that does not exist) must be caught.

Prints one line per check and ends with "N passed, N failed"; exits 1 on any failure.
"""

import copy
import json
import os
import re
import shlex
import sys

import jsonschema
import yaml

ROOT = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", ".."))
HERE = os.path.join(ROOT, "tests", "compose")
COMPOSE_DIR = os.path.join(ROOT, "compose")

passed = 0
failed = 0


def report(ok, name, detail=""):
    global passed, failed
    if ok:
        passed += 1
        print(f"ok - {name}")
    else:
        failed += 1
        print(f"FAIL - {name}" + (f": {detail}" if detail else ""))
    return ok


def read(rel):
    with open(os.path.join(ROOT, rel), encoding="utf-8") as f:
        return f.read()


class CheckError(Exception):
    pass


# --- YAML ----------------------------------------------------------------------------------

class StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate mapping keys (PyYAML keeps the last one silently)."""


def _mapping(loader, node, deep=False):
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def load_yaml(text):
    return yaml.load(text, Loader=StrictLoader)


# --- compose interpolation (https://github.com/compose-spec/compose-spec/blob/master/spec.md#interpolation)

_VAR = re.compile(r"\$(?:(\$)|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?-)([^}]*)|(:?\?)([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))")


def interpolate(value, env, where="$"):
    """Resolves ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?err}, $VAR and $$ in every
    string of a loaded compose document, as docker compose does before validating."""
    if isinstance(value, dict):
        return {k: interpolate(v, env, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env, f"{where}[{i}]") for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def sub(m):
        dollar, name, dash, default, qmark, errmsg, bare = m.groups()
        if dollar:
            return "$"
        name = name or bare
        val = env.get(name)
        if dash:
            if val is None or (dash == ":-" and val == ""):
                return default
            return val
        if qmark:
            if val is None or (qmark == ":?" and val == ""):
                raise CheckError(f"{where}: ${{{name}}} is required: {errmsg}")
            return val
        if val is None:
            raise CheckError(f"{where}: ${{{name}}} has no default and is not set")
        return val

    out = _VAR.sub(sub, value)
    if "${" in out.replace("$$", ""):
        raise CheckError(f"{where}: malformed interpolation in {value!r}")
    return out


# --- the compose schema ----------------------------------------------------------------------

_GO_DURATION = re.compile(r"^(?:\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h))+$")


def compose_validator():
    with open(os.path.join(HERE, "compose-spec.json"), encoding="utf-8") as f:
        schema = json.load(f)
    cls = jsonschema.Draft201909Validator  # the schema's own "$schema"
    cls.check_schema(schema)
    # Compose durations are Go durations ("10s", "1m30s"); only that format is asserted.
    fc = jsonschema.FormatChecker(formats=())
    fc.checks("duration", raises=())(lambda s: not isinstance(s, str) or bool(_GO_DURATION.match(s)))
    return cls(schema, format_checker=fc)


def schema_errors(validator, doc):
    return sorted(
        ("/".join(str(p) for p in e.absolute_path) or "(root)") + ": " + e.message
        for e in validator.iter_errors(doc)
    )


# --- what the binary knows -------------------------------------------------------------------

def known_settings():
    """(names, prefixes): engine/core/config.c's table, RT_*_ENV names in engine/*/*.h, and the
    RATCHET_SECRET_ prefix expr.c reads secrets from."""
    src = read("engine/core/config.c")
    m = re.search(r"static const setting settings\[\]\s*=\s*\{(.*?)\n\};", src, re.S)
    if not m:
        raise CheckError("engine/core/config.c: no `static const setting settings[] = {...};` table")
    names = set(re.findall(r'\{\s*"(RATCHET_[A-Z0-9_]+)"\s*,\s*"--', m.group(1)))
    if len(names) < 5:
        raise CheckError(f"engine/core/config.c: only {len(names)} settings parsed from the table")
    for dirpath, _, files in sorted(os.walk(os.path.join(ROOT, "engine"))):
        for h in sorted(files):
            if h.endswith(".h"):
                rel = os.path.relpath(os.path.join(dirpath, h), ROOT)
                names |= set(re.findall(r'#define\s+RT_\w+_ENV\s+"(RATCHET_[A-Z0-9_]+)"', read(rel)))
    prefixes = set()
    if re.search(r'"RATCHET_SECRET_%', read("engine/lang/expr.c")):
        prefixes.add("RATCHET_SECRET_")
    return names, prefixes


def unknown_settings(keys, known):
    names, prefixes = known
    return sorted(k for k in keys if k not in names and not any(k.startswith(p) and len(k) > len(p) for p in prefixes))


# --- scripts/dev.sh and scripts/lib/deps.sh ----------------------------------------------------

def shell_function(src, name, path):
    m = re.search(r"^" + re.escape(name) + r"\(\)\s*\{(.*?)^\}", src, re.S | re.M)
    if not m:
        raise CheckError(f"{path}: no function {name}()")
    return m.group(1)


def devsh_up_cmake():
    """The cmake commands `scripts/dev.sh up` runs, with $ROOT as <ROOT> and $JOBS as <JOBS>."""
    src = read("scripts/dev.sh")
    if not re.search(r"^JOBS=\$\(nproc\b", src, re.M):
        raise CheckError("scripts/dev.sh: JOBS is no longer $(nproc ...): update the Dockerfile's -j and this check")
    body = shell_function(src, "configure_and_build", "scripts/dev.sh")
    up = shell_function(src, "cmd_up", "scripts/dev.sh")
    calls = [ln.strip() for ln in up.splitlines() if ln.strip().startswith("configure_and_build ")]
    if len(calls) != 1:
        raise CheckError(f"scripts/dev.sh cmd_up: expected one configure_and_build call, found {len(calls)}")
    call = shlex.split(calls[0])
    dirname, args = call[1], call[2:]
    if "rt_deps_install" not in up:
        raise CheckError("scripts/dev.sh cmd_up no longer calls rt_deps_install")
    cmds = []
    for ln in body.splitlines():
        ln = ln.strip()
        if not ln.startswith("cmake "):
            continue
        ln = re.sub(r"\s*2>&1\s*\|\s*prefix\s*$", "", ln)
        toks = []
        for t in shlex.split(ln):
            if t == "$@":
                toks.extend(args)
                continue
            t = t.replace("$ROOT", "<ROOT>").replace("$dir", dirname).replace("$JOBS", "<JOBS>")
            if "$" in t:
                raise CheckError(f"scripts/dev.sh configure_and_build: cannot resolve {t!r} in: {ln}")
            toks.append(t)
        cmds.append(toks)
    if not cmds:
        raise CheckError("scripts/dev.sh configure_and_build runs no cmake command")
    return cmds


def deps_packages():
    src = read("scripts/lib/deps.sh")
    m = re.search(r"^RT_DEPS_PACKAGES=\((.*?)^\)", src, re.S | re.M)
    if not m:
        raise CheckError("scripts/lib/deps.sh: no RT_DEPS_PACKAGES=( ... ) list")
    text = re.sub(r"#[^\n]*", "", m.group(1))
    pkgs = text.split()
    if len(pkgs) < 5:
        raise CheckError(f"scripts/lib/deps.sh: only {len(pkgs)} packages parsed")
    return pkgs


# --- the Dockerfile ----------------------------------------------------------------------------

def dockerfile_instructions(text):
    """[(INSTRUCTION, arguments, stage index)] with continuations joined and comments dropped."""
    out, buf, stage = [], "", -1
    for raw in text.splitlines():
        s = raw.strip()
        if not buf and (not s or s.startswith("#")):
            continue
        if buf and s.startswith("#"):
            continue  # a comment line inside a continued instruction
        if s.endswith("\\"):
            buf += s[:-1] + " "
            continue
        buf += s
        word, _, rest = buf.partition(" ")
        word = word.upper()
        if word == "FROM":
            stage += 1
        out.append((word, rest.strip(), stage))
        buf = ""
    if buf:
        raise CheckError("compose/Dockerfile: the last instruction ends in a continuation")
    return out


def dockerfile_cmake(instrs, root):
    """The cmake commands of the build stage's RUN instructions, with ROOT and nproc normalised."""
    cmds = []
    for word, rest, _ in instrs:
        if word != "RUN":
            continue
        for part in re.split(r"&&|;", rest):
            part = part.strip()
            if not part.startswith("cmake "):
                continue
            toks = []
            for t in shlex.split(part):
                if t == root or t.startswith(root + "/"):
                    t = "<ROOT>" + t[len(root):]
                t = t.replace("$(nproc)", "<JOBS>")
                if "$" in t:
                    raise CheckError(f"compose/Dockerfile: unresolved {t!r} in: {part}")
                toks.append(t)
            cmds.append(toks)
    return cmds


def dockerfile_args(instrs):
    args = {}
    for word, rest, _ in instrs:
        if word == "ARG" and "=" in rest:
            k, _, v = rest.partition("=")
            args[k.strip()] = v.strip()
    return args


def check_dockerfile(text, dev_cmds, pkgs, known):
    """Returns a list of problems (empty: fine)."""
    problems = []
    instrs = dockerfile_instructions(text)
    args = dockerfile_args(instrs)
    froms = [(rest, st) for w, rest, st in instrs if w == "FROM"]
    if len(froms) < 2:
        problems.append(f"not multi-stage: {len(froms)} FROM")
    for rest, _ in froms:
        image = rest.split()[0]
        image = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), image)
        if not re.fullmatch(r"debian:bookworm(-slim)?", image):
            problems.append(f"FROM {image}: not Debian bookworm")
    last = len(froms) - 1

    workdirs = [rest for w, rest, st in instrs if w == "WORKDIR" and st == 0]
    if not workdirs:
        problems.append("the build stage has no WORKDIR (the source root)")
        return problems
    root = workdirs[0]
    got = dockerfile_cmake([i for i in instrs if i[2] == 0], root)
    if got != dev_cmds:
        problems.append(f"cmake commands differ from scripts/dev.sh up:\n    dev.sh:     {dev_cmds}\n    Dockerfile: {got}")

    runs = [(rest, st) for w, rest, st in instrs if w == "RUN"]
    all_runs = " ".join(r for r, _ in runs)
    if re.search(r"\bapt(-get)?\s+install\b|\bdpkg\s+-i\b", all_runs):
        problems.append("a RUN installs packages itself: only scripts/lib/deps.sh's rt_deps_install may")
    for stage in range(len(froms)):
        srun = [r for r, st in runs if st == stage]
        copies = [rest for w, rest, st in instrs if w == "COPY" and st == stage]
        if not any(re.match(r"scripts/lib/deps\.sh\s", c) for c in copies):
            problems.append(f"stage {stage} does not COPY scripts/lib/deps.sh")
        calls = [r for r in srun if "rt_deps_install" in r]
        if len(calls) != 1 or not re.search(r"\bsource\s+\S*deps\.sh\b", calls[0]):
            problems.append(f"stage {stage}: expected one RUN that sources deps.sh and calls rt_deps_install")
            continue
        call = re.search(r"rt_deps_install([^&;|]*)", calls[0]).group(1)
        words = shlex.split(call)
        if stage == 0 and words:
            problems.append(f"the build stage must install deps.sh's whole list (rt_deps_install without arguments), not {words}")
        for w in words:
            if w.startswith('"${') or w.startswith("${") or w.startswith("$"):
                continue  # the derived runtime library packages
            if w not in pkgs:
                problems.append(f"runtime package {w!r} is not on scripts/lib/deps.sh's RT_DEPS_PACKAGES")

    final = [(w, rest) for w, rest, st in instrs if st == last]
    users = [rest for w, rest in final if w == "USER"]
    if not users or users[-1].split(":")[0] in ("root", "0"):
        problems.append("the runtime stage does not switch to a non-root USER")
    hc = [rest for w, rest in final if w == "HEALTHCHECK"]
    if not hc or not re.search(r'"?curl"?.*http://127\.0\.0\.1:(\d+)/healthz', hc[0]):
        problems.append("no HEALTHCHECK with curl on http://127.0.0.1:PORT/healthz")
    ep = " ".join(rest for w, rest in final if w in ("ENTRYPOINT", "CMD"))
    if "ratchet" not in ep or '"serve"' not in ep:
        problems.append("the runtime stage does not run `ratchet serve`")
    if not any(w == "COPY" and rest.startswith("--from=") and "ratchet" in rest for w, rest in final):
        problems.append("the runtime stage does not copy the built binary from the build stage")
    envs = set()
    for w, rest, _ in instrs:
        if w == "ENV":
            envs |= set(re.findall(r"(?:^|\s)([A-Z_][A-Z0-9_]*)=", rest))
    bad = unknown_settings([e for e in envs if e.startswith("RATCHET_")], known)
    if bad:
        problems.append(f"ENV sets settings the binary does not know: {bad}")
    return problems


def dockerfile_port(text):
    m = re.search(r"HEALTHCHECK.*?http://127\.0\.0\.1:(\d+)/healthz", text, re.S)
    return int(m.group(1)) if m else None


# --- compose semantics ---------------------------------------------------------------------

def env_dict(env):
    if isinstance(env, list):
        out = {}
        for item in env:
            k, _, v = item.partition("=")
            out[k] = v
        return out
    return {k: ("" if v is None else str(v)) for k, v in (env or {}).items()}


def mounts(svc):
    """[(source, target, read_only)] for the long and the short volume syntax."""
    out = []
    for v in svc.get("volumes", []):
        if isinstance(v, dict):
            out.append((v.get("source"), v.get("target"), bool(v.get("read_only")), v))
        else:
            parts = v.split(":")
            out.append((parts[0], parts[1], len(parts) > 2 and "ro" in parts[2].split(","), None))
    return out


def container_ports(svc):
    ports = set()
    for p in svc.get("ports", []):
        if isinstance(p, dict):
            ports.add(int(p["target"]))
        else:
            ports.add(int(str(p).split(":")[-1].split("/")[0]))
    return ports


def check_compose_semantics(doc, known, df_port):
    problems = []
    svcs = doc.get("services", {})
    for name in ("postgres", "rabbitmq", "nats", "ratchet"):
        if name not in svcs:
            problems.append(f"no service {name}")
    if problems:
        return problems
    for name in ("postgres", "rabbitmq", "nats"):
        if "healthcheck" not in svcs[name]:
            problems.append(f"{name} has no healthcheck")
    want_img = {"postgres": r"postgres:15(\b|$)", "rabbitmq": r"rabbitmq:3\.10(\b|$)", "nats": r"nats:2\.9(\b|$)"}
    for name, pat in want_img.items():
        if not re.match(pat, svcs[name].get("image", "")):
            problems.append(f"{name}: image {svcs[name].get('image')!r} is not {pat}")
    if "pg_isready" not in " ".join(svcs["postgres"]["healthcheck"].get("test", [])):
        problems.append("postgres healthcheck does not use pg_isready")
    if "rabbitmq-diagnostics" not in " ".join(svcs["rabbitmq"]["healthcheck"].get("test", [])):
        problems.append("rabbitmq healthcheck does not use rabbitmq-diagnostics")

    r = svcs["ratchet"]
    build = r.get("build", {})
    ctx = os.path.normpath(os.path.join(COMPOSE_DIR, build.get("context", ".")))
    if ctx != os.path.normpath(ROOT):
        problems.append(f"ratchet build context {build.get('context')!r} is not the repository root")
    if not os.path.isfile(os.path.join(ctx, build.get("dockerfile", "Dockerfile"))):
        problems.append(f"ratchet build dockerfile {build.get('dockerfile')!r} does not exist in the context")
    if not os.path.isfile(os.path.join(ctx, build.get("dockerfile", "Dockerfile") + ".dockerignore")):
        problems.append("no <Dockerfile>.dockerignore: the build trees would be sent as context")
    else:
        ign = open(os.path.join(ctx, build["dockerfile"] + ".dockerignore"), encoding="utf-8").read().split()
        for want in ("build", "build-*", ".git"):
            if want not in ign:
                problems.append(f"{build['dockerfile']}.dockerignore does not leave out {want}")

    env = env_dict(r.get("environment"))
    bad = unknown_settings(env.keys(), known)
    if bad:
        problems.append(f"ratchet sets variables the binary does not know: {bad}")
    for k in ("RATCHET_DATABASE_URL", "RATCHET_AMQP_URL", "RATCHET_NATS_URL", "RATCHET_WORKFLOWS",
              "RATCHET_HTTP_ADDR", "RATCHET_TOKENS"):
        if k not in env:
            problems.append(f"ratchet does not set {k}")
    for name, svc in svcs.items():
        if name != "ratchet":
            stray = [k for k in env_dict(svc.get("environment")) if k.startswith("RATCHET_")]
            if stray:
                problems.append(f"{name} sets {stray}: ratchet settings belong to the ratchet service")
    if problems:
        return problems

    dep = r.get("depends_on", {})
    for name in ("postgres", "rabbitmq", "nats"):
        cond = dep.get(name, {}).get("condition") if isinstance(dep, dict) else None
        if cond != "service_healthy":
            problems.append(f"ratchet does not wait for {name} with condition service_healthy")

    pg = env_dict(svcs["postgres"].get("environment"))
    m = re.fullmatch(r"postgres(?:ql)?://([^:@/]+):([^@/]*)@([^:/]+):(\d+)/(\w+)", env["RATCHET_DATABASE_URL"])
    if not m or (m.group(1), m.group(2), m.group(3), m.group(5)) != (
            pg.get("POSTGRES_USER"), pg.get("POSTGRES_PASSWORD"), "postgres", pg.get("POSTGRES_DB")):
        problems.append("RATCHET_DATABASE_URL does not match the postgres service's user, password and database")
    elif int(m.group(4)) not in container_ports(svcs["postgres"]):
        problems.append("RATCHET_DATABASE_URL's port is not the postgres port")
    rq = env_dict(svcs["rabbitmq"].get("environment"))
    m = re.fullmatch(r"amqp://([^:@/]+):([^@/]*)@([^:/]+):(\d+)/.*", env["RATCHET_AMQP_URL"])
    if not m or (m.group(1), m.group(2), m.group(3)) != (
            rq.get("RABBITMQ_DEFAULT_USER"), rq.get("RABBITMQ_DEFAULT_PASS"), "rabbitmq"):
        problems.append("RATCHET_AMQP_URL does not match the rabbitmq service's user and password")
    elif int(m.group(4)) not in container_ports(svcs["rabbitmq"]):
        problems.append("RATCHET_AMQP_URL's port is not published by rabbitmq")
    nats_cmd = svcs["nats"].get("command", [])
    nats_cmd = shlex.split(nats_cmd) if isinstance(nats_cmd, str) else nats_cmd
    if "-js" not in nats_cmd and "--jetstream" not in nats_cmd:
        problems.append("nats runs without JetStream (-js)")
    m = re.fullmatch(r"nats://nats:(\d+)", env["RATCHET_NATS_URL"])
    if not m or int(m.group(1)) not in container_ports(svcs["nats"]):
        problems.append("RATCHET_NATS_URL is not nats://nats:<published client port>")
    mon = nats_cmd[nats_cmd.index("-m") + 1] if "-m" in nats_cmd else None
    hc = " ".join(svcs["nats"]["healthcheck"].get("test", []))
    if not mon or f"127.0.0.1:{mon}/" not in hc:
        problems.append("the nats healthcheck does not probe the monitoring port given with -m")

    ms = mounts(r)
    wf = [x for x in ms if os.path.normpath(os.path.join(COMPOSE_DIR, x[0] or "")) == os.path.join(ROOT, "workflows")]
    if not wf or not wf[0][2] or wf[0][1].rstrip("/") != env["RATCHET_WORKFLOWS"].rstrip("/"):
        problems.append("../workflows is not mounted read-only at RATCHET_WORKFLOWS")
    tok = [x for x in ms if x[1] == env["RATCHET_TOKENS"]]
    if not tok or not tok[0][2]:
        problems.append("RATCHET_TOKENS is not a read-only mounted file")
    addr = env["RATCHET_HTTP_ADDR"]
    port = int(addr.rsplit(":", 1)[1])
    if not addr.startswith("0.0.0.0:"):
        problems.append("RATCHET_HTTP_ADDR does not listen on all of the container's addresses")
    if port not in container_ports(r):
        problems.append(f"ratchet's HTTP port {port} is not published")
    if df_port != port:
        problems.append(f"the Dockerfile HEALTHCHECK probes port {df_port}, RATCHET_HTTP_ADDR says {port}")

    # Files the compose file mounts from the repository must exist (user-made secrets excepted:
    # those say create_host_path: false, so a missing one fails loudly instead of becoming a dir).
    for name, svc in svcs.items():
        for src, tgt, _, long in mounts(svc):
            if not src or not (src.startswith(".") or src.startswith("/")):
                continue  # a named volume
            user_made = long is not None and long.get("bind", {}).get("create_host_path") is False
            if not user_made and not os.path.exists(os.path.join(COMPOSE_DIR, src)):
                problems.append(f"{name} mounts {src}, which does not exist")
    return problems


# --- Prometheus rules ------------------------------------------------------------------------

_PROM_DURATION = re.compile(r"^(?:\d+(?:ms|s|m|h|d|w|y))+$")
RULE_KEYS = {"alert", "expr", "for", "keep_firing_for", "labels", "annotations"}
REQUIRED_EVENTS = {"ratchet.alert.failure_rate_high", "ratchet.alert.queue_backlog", "ratchet.alert.execution_timeout"}


def metric_families():
    src = read("engine/core/metrics.c")
    fams = dict(re.findall(r'\.name\s*=\s*"(ratchet_[a-z0-9_]+)"\s*,\s*\.type\s*=\s*RT_METRIC_(\w+)', src))
    if len(fams) < 5:
        raise CheckError(f"engine/core/metrics.c: only {len(fams)} families parsed")
    return fams


def series_names(fams):
    names = set()
    for n, t in fams.items():
        names.add(n)
        if t == "HISTOGRAM":
            names |= {n + "_bucket", n + "_sum", n + "_count"}
    return names


def check_rules(doc, fams, status_src):
    problems = []
    if not isinstance(doc, dict) or set(doc) != {"groups"} or not isinstance(doc["groups"], list):
        return ["the top level must be exactly {groups: [...]}"]
    names = series_names(fams)
    seen_groups, seen_alerts, events, used = set(), set(), set(), set()
    for gi, g in enumerate(doc["groups"]):
        where = f"groups[{gi}]"
        if not isinstance(g, dict) or not isinstance(g.get("name"), str) or not isinstance(g.get("rules"), list):
            problems.append(f"{where}: needs name (string) and rules (list)")
            continue
        extra = set(g) - {"name", "rules", "interval", "limit"}
        if extra:
            problems.append(f"{where}: unknown keys {sorted(extra)}")
        if g["name"] in seen_groups:
            problems.append(f"{where}: duplicate group name {g['name']!r}")
        seen_groups.add(g["name"])
        if not g["rules"]:
            problems.append(f"{where}: no rules")
        for ri, r in enumerate(g["rules"]):
            w = f"{where}.rules[{ri}]"
            if not isinstance(r, dict):
                problems.append(f"{w}: not a mapping")
                continue
            extra = set(r) - RULE_KEYS
            if extra:
                problems.append(f"{w}: unknown keys {sorted(extra)}")
            a = r.get("alert")
            if not isinstance(a, str) or not re.fullmatch(r"[A-Z][A-Za-z0-9]*", a):
                problems.append(f"{w}: alert must be a CamelCase name, got {a!r}")
                continue
            w = f"alert {a}"
            if a in seen_alerts:
                problems.append(f"{w}: defined twice")
            seen_alerts.add(a)
            expr = r.get("expr")
            if not isinstance(expr, str) or not expr.strip():
                problems.append(f"{w}: expr must be a non-empty string")
                continue
            depth = 0
            for ch in expr:
                depth += {"(": 1, ")": -1}.get(ch, 0)
                if depth < 0:
                    break
            if depth != 0 or expr.count("{") != expr.count("}") or expr.count("[") != expr.count("]"):
                problems.append(f"{w}: unbalanced brackets in expr")
            for metric in re.findall(r"\b(ratchet_[a-z0-9_]+)", expr):
                used.add(metric)
                if metric not in names:
                    problems.append(f"{w}: {metric} is not a metric of engine/core/metrics.c")
            for matcher in re.findall(r'\bstatus\s*=~?\s*"([^"]*)"', expr):
                for status in matcher.split("|"):
                    if f'"{status}"' not in status_src:
                        problems.append(f"{w}: status {status!r} is not a run status (engine/lang/run_status.c)")
            for_ = r.get("for")
            if not isinstance(for_, str) or not _PROM_DURATION.match(for_):
                problems.append(f"{w}: for must be a Prometheus duration, got {for_!r}")
            labels = r.get("labels")
            if not isinstance(labels, dict) or labels.get("severity") not in ("critical", "warning", "info"):
                problems.append(f"{w}: labels.severity must be critical, warning or info")
            elif not all(isinstance(k, str) and re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_]*", k) and isinstance(v, str)
                         for k, v in labels.items()):
                problems.append(f"{w}: label names must be identifiers and values strings")
            else:
                if "event" in labels:
                    events.add(labels["event"])
            ann = r.get("annotations")
            if not isinstance(ann, dict) or not all(isinstance(ann.get(k), str) and ann[k] for k in ("summary", "description")):
                problems.append(f"{w}: annotations need summary and description")
            else:
                for k, v in ann.items():
                    if v.count("{{") != v.count("}}"):
                        problems.append(f"{w}: annotations.{k} has unbalanced {{{{ }}}}")
    missing = REQUIRED_EVENTS - events
    if missing:
        problems.append(f"no rule carries event label(s) {sorted(missing)}")
    for want in ("ratchet_runs_finished_total", "ratchet_oldest_runnable_age_seconds", "ratchet_db_up",
                 "ratchet_broker_up"):
        if want not in used:
            problems.append(f"no rule uses {want}")
    return problems


def check_prometheus_config(cfg, compose_doc):
    problems = []
    prom = compose_doc["services"].get("prometheus")
    if prom is None:
        return problems
    ms = {os.path.normpath(os.path.join(COMPOSE_DIR, s)) if s and s.startswith(".") else s: t
          for s, t, _, _ in mounts(prom)}
    rules_target = ms.get(os.path.join(COMPOSE_DIR, "prometheus-rules.yml"))
    if not rules_target:
        problems.append("the prometheus service does not mount prometheus-rules.yml")
    else:
        import fnmatch
        if not any(fnmatch.fnmatch(rules_target, pat) for pat in cfg.get("rule_files", [])):
            problems.append(f"prometheus.yml rule_files do not match {rules_target}")
    r = compose_doc["services"]["ratchet"]
    port = int(env_dict(r["environment"])["RATCHET_HTTP_ADDR"].rsplit(":", 1)[1])
    jobs = cfg.get("scrape_configs", [])
    targets = [t for j in jobs for sc in j.get("static_configs", []) for t in sc.get("targets", [])]
    if f"ratchet:{port}" not in targets:
        problems.append(f"prometheus.yml does not scrape ratchet:{port}")
    for j in jobs:
        cred = j.get("authorization", {}).get("credentials_file")
        if cred and cred not in ms.values():
            problems.append(f"prometheus.yml credentials_file {cred} is not mounted")
        if not cred:
            problems.append(f"scrape job {j.get('job_name')}: /metrics needs a bearer token (authorization.credentials_file)")
    return problems


# --- main --------------------------------------------------------------------------------------

def main():
    try:
        known = known_settings()
        report(True, f"settings the binary knows: {len(known[0])} names, prefixes {sorted(known[1])}")
    except CheckError as e:
        report(False, "settings the binary knows", str(e))
        known = (set(), set())

    # 1. docker-compose.yml against the compose specification.
    doc = None
    validator = None
    try:
        raw = load_yaml(read("compose/docker-compose.yml"))
        doc = interpolate(raw, env={})
        validator = compose_validator()
        errs = schema_errors(validator, doc)
        report(not errs, "compose/docker-compose.yml validates against the compose-spec schema", "\n  ".join(errs))
    except (CheckError, yaml.YAMLError, jsonschema.SchemaError, OSError) as e:
        report(False, "compose/docker-compose.yml validates against the compose-spec schema", str(e))

    # 2. docker-compose.yml: its services agree with each other, the binary and the Dockerfile.
    df_text = read("compose/Dockerfile")
    if doc is not None:
        probs = check_compose_semantics(doc, known, dockerfile_port(df_text))
        report(not probs, "compose services agree (settings, URLs, credentials, ports, mounts, health checks)",
               "\n  ".join(probs))

    # 3. The Dockerfile against scripts/dev.sh and scripts/lib/deps.sh.
    dev_cmds = pkgs = None
    try:
        dev_cmds = devsh_up_cmake()
        pkgs = deps_packages()
        probs = check_dockerfile(df_text, dev_cmds, pkgs, known)
        report(not probs, "compose/Dockerfile builds as `scripts/dev.sh up` does, with deps.sh's packages "
               f"({len(dev_cmds)} cmake commands, {len(pkgs)} packages)", "\n  ".join(probs))
    except CheckError as e:
        report(False, "compose/Dockerfile builds as `scripts/dev.sh up` does", str(e))

    # 4. Prometheus rules and config.
    fams = rules = None
    status_src = read("engine/lang/run_status.c")  # the run status name table
    try:
        fams = metric_families()
        rules = load_yaml(read("compose/prometheus-rules.yml"))
        probs = check_rules(rules, fams, status_src)
        n = sum(len(g.get("rules", [])) for g in rules.get("groups", [])) if isinstance(rules, dict) else 0
        report(not probs, f"compose/prometheus-rules.yml: {n} alerting rules on engine/core/metrics.c's families",
               "\n  ".join(probs))
    except (CheckError, yaml.YAMLError) as e:
        report(False, "compose/prometheus-rules.yml", str(e))
    if doc is not None:
        try:
            cfg = load_yaml(read("compose/prometheus.yml"))
            probs = check_prometheus_config(cfg, doc)
            report(not probs, "compose/prometheus.yml scrapes ratchet with a token and loads the rules",
                   "\n  ".join(probs))
        except (yaml.YAMLError, OSError, KeyError) as e:
            report(False, "compose/prometheus.yml", str(e))

    # 5. The checks catch what they are for (each broken copy must be refused).
    if validator is not None and doc is not None:
        bad = copy.deepcopy(doc)
        bad["services"]["ratchet"]["depends_on"]["postgres"]["condition"] = "service_ready"
        bad["services"]["nats"]["healthcheck"]["interval"] = "5 seconds"
        bad["services"]["postgres"]["restart_policy"] = "always"
        errs = schema_errors(validator, bad)
        report(len(errs) >= 3, "self-check: the schema refuses a bad condition, a bad duration and an unknown key",
               f"only {len(errs)} error(s): {errs}")
        try:
            interpolate({"x": "${NOPE}"}, {})
            report(False, "self-check: interpolation refuses an unset variable without default")
        except CheckError:
            report(True, "self-check: interpolation refuses an unset variable without default")
        bad = copy.deepcopy(doc)
        bad["services"]["ratchet"]["environment"]["RATCHET_NO_SUCH_SETTING"] = "1"
        probs = check_compose_semantics(bad, known, dockerfile_port(df_text))
        report(any("RATCHET_NO_SUCH_SETTING" in p for p in probs),
               "self-check: an unknown RATCHET_* setting is caught", str(probs))
    if dev_cmds is not None and pkgs is not None:
        drift = df_text.replace("-DCMAKE_BUILD_TYPE=RelWithDebInfo", "-DCMAKE_BUILD_TYPE=Release")
        probs = check_dockerfile(drift, dev_cmds, pkgs, known)
        report(any("cmake commands differ" in p for p in probs), "self-check: a changed cmake flag is caught",
               str(probs))
        drift = df_text.replace("curl ca-certificates tzdata", "curl ca-certificates tzdata busybox")
        probs = check_dockerfile(drift, dev_cmds, pkgs, known)
        report(any("busybox" in p for p in probs), "self-check: a runtime package off deps.sh's list is caught",
               str(probs))
    if fams is not None and rules is not None:
        bad = copy.deepcopy(rules)
        bad["groups"][0]["rules"][0]["expr"] = "rate(ratchet_runs_failed_total[5m]) > 0"
        bad["groups"][0]["rules"][1]["for"] = "five minutes"
        probs = check_rules(bad, fams, status_src)
        report(any("ratchet_runs_failed_total" in p for p in probs) and any("five minutes" in p for p in probs),
               "self-check: a rule on an unknown metric and a bad `for` are caught", str(probs))

    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
