#!/usr/bin/env python3
"""Checks that the Helm chart agrees with the services' clap settings (make settings-check).

Usage: check-settings.py SETTINGS_MD CHART_DIR

SETTINGS_MD holds the settings tables as scripts/settings-docs.sh generates them from the clap
definitions (one "## <binary>" section per binary, rows "| `VAR` | default | description |"; a
default in backticks is clap's own, a plain-text one the `[default: …]` the help documents).

1. Names: every env var the chart sets for a component must be a setting of that component's
   binary (bridge: sck-bridge, decoder: sck-decoder, forwarder: sck-forwarder), unless NOT_CLAP
   says why not. The chart
   sets: the data keys of each ConfigMap in templates/configmap.yaml (with the lines of the
   helpers it includes, e.g. sck-ingest.kafkaSettings), the `- name: VAR` and
   `"name" "VAR"` env entries of templates/<component>/*.yaml, and the keys of values.yaml
   `<component>.env`.

2. Defaults. Mapping rule: a ConfigMap line `VAR: {{ EXPR | quote }}` maps VAR to a values.yaml
   key when EXPR is a values path (`.Values.a.b`, or `$x.a.b` with `$x := .Values.c` assigned
   in the same file or helper), optionally as `required "…" PATH` or `printf "…%v…" PATH` (the
   value is put in place of %v). An env entry `"name" "VAR" "key" .Values.auth.keys.K` maps VAR
   to the auth value templates/secret.yaml stores under key K. Any other line (a literal, a
   value inside a longer string such as a mount path) maps to no values key and is checked by
   name only. Where values.yaml gives a mapped VAR a non-empty default (rendered as the chart
   renders it: booleans lower-case), it must equal clap's default; when clap has none, the
   documented default's first clause (before `;`) if that is a single word. An empty values
   default means the operator must give it (the chart `required`s it or leaves it unset) and is
   not compared; nor are secrets. INTENTIONAL lists the differences on purpose, each with its
   reason; an entry that no longer differs is reported too, so the list stays true.
"""

import re
import sys
from pathlib import Path

import yaml

COMPONENTS = {"bridge": "sck-bridge", "decoder": "sck-decoder", "forwarder": "sck-forwarder"}

# (component, VAR) -> why the chart's default differs from the binary's.
INTENTIONAL = {
    ("bridge", "LOG_FORMAT"): "in a cluster, logs are JSON lines for the log pipeline; text is for a terminal",
    ("decoder", "LOG_FORMAT"): "in a cluster, logs are JSON lines for the log pipeline; text is for a terminal",
    ("forwarder", "LOG_FORMAT"): "in a cluster, logs are JSON lines for the log pipeline; text is for a terminal",
    ("bridge", "KAFKA_BROKERS"): "the binary defaults to the local stack, the chart to an in-cluster bootstrap Service",
    ("decoder", "KAFKA_BROKERS"): "the binary defaults to the local stack, the chart to an in-cluster bootstrap Service",
    ("forwarder", "KAFKA_BROKERS"): "the binary defaults to the local stack, the chart to an in-cluster bootstrap Service",
    ("decoder", "CLICKHOUSE_URL"): "the binary defaults to the local stack, the chart to an in-cluster ClickHouse Service",
}

# Env vars the chart sets that are not clap settings, and who reads them.
NOT_CLAP = {
    "RUST_LOG": "the log filter, read by tracing-subscriber's EnvFilter (see LOG_FORMAT's help)",
}

ENV_LINE = re.compile(r"^\s*([A-Z][A-Z0-9_]*):\s*(.*?)\s*$")
ASSIGN = re.compile(r"\{\{-?\s*\$(\w+)\s*:=\s*\.Values\.([\w.]+)\s*-?\}\}")
INCLUDE = re.compile(r'include\s+"([\w.-]+)"')
ACTION = re.compile(r"^\{\{-?\s*(.*?)\s*-?\}\}$")
LIST_ENV = re.compile(r"^\s*-\s*name:\s*([A-Z][A-Z0-9_]*)\s*$")
SECRET_ENV = re.compile(r'"name"\s+"([A-Z][A-Z0-9_]*)"(?:\s+"key"\s+\.Values\.auth\.keys\.(\w+))?')
SECRET_PAIR = re.compile(r"\(list\s+\$(\w+)\.keys\.(\w+)\s+\$(\w+)\.([\w.]+)\)")
BLOCK = re.compile(r"\{\{-?\s*(if|range|with|define|end)\b")


def read_tables(path):
    """{binary: {VAR: (default cell, clap default or None)}} from the generated Markdown."""
    tables, current = {}, None
    for line in Path(path).read_text().splitlines():
        if line.startswith("## "):
            current = tables.setdefault(line[3:].strip(), {})
        elif current is not None and line.startswith("| `"):
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
            var, default = cells[0].strip("`"), cells[1]
            clap = default[1:-1] if default.startswith("`") and default.endswith("`") else None
            current[var] = (default, clap)
    return tables


def defines(helpers_text):
    """{name: body} of the `define` blocks of a helpers file (nested blocks kept)."""
    out = {}
    for m in re.finditer(r'\{\{-?\s*define\s+"([\w.-]+)"\s*-?\}\}', helpers_text):
        depth, pos = 1, m.end()
        for b in BLOCK.finditer(helpers_text, m.end()):
            depth += -1 if b.group(1) == "end" else 1
            if depth == 0:
                out[m.group(1)] = helpers_text[pos : b.start()]
                break
    return out


def lookup(values, dotted):
    node = values
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None, False
        node = node[part]
    return node, True


def rendered(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def values_default(expr, assigned, values):
    """(values key, rendered default) of a ConfigMap value template, or None (no mapping)."""
    m = ACTION.match(expr)
    if not m:
        return None
    inner = re.sub(r"\s*\|\s*quote$", "", m.group(1))
    fmt = None
    p = re.match(r'^printf\s+"([^"]*)"\s+(\S+)$', inner)
    if p:
        fmt, inner = p.group(1), p.group(2)
    inner = re.sub(r'^required\s+"[^"]*"\s+', "", inner)
    if inner.startswith(".Values."):
        key = inner[len(".Values.") :]
    elif inner.startswith("$") and "." in inner:
        var, rest = inner[1:].split(".", 1)
        if var not in assigned:
            return None
        key = f"{assigned[var]}.{rest}"
    else:
        return None
    value, found = lookup(values, key)
    if not found:
        raise SystemExit(f"values.yaml has no {key} (used as {expr})")
    text = rendered(value)
    return key, (fmt.replace("%v", text) if fmt is not None else text)


def chart_env(chart, values):
    """{component: {VAR: (source, values key or None, rendered default or None)}}."""
    templates = chart / "templates"
    helpers_text = (templates / "_helpers.tpl").read_text()
    helper_bodies = defines(helpers_text)
    env = {c: {} for c in COMPONENTS}

    def data_lines(text, assigned, component, source):
        assigned = {**assigned, **dict(ASSIGN.findall(text))}
        for line in text.splitlines():
            m = ENV_LINE.match(line)
            if m:
                mapped = values_default(m.group(2), assigned, values)
                key, default = mapped if mapped else (None, None)
                env[component][m.group(1)] = (source, key, default)
            for name in INCLUDE.findall(line):
                body = helper_bodies.get(name, "")
                if any(ENV_LINE.match(b) for b in body.splitlines()):
                    data_lines(body, assigned, component, f"{source} via {name}")

    configmaps = (templates / "configmap.yaml").read_text()
    file_assigned = dict(ASSIGN.findall(configmaps.split("\n---", 1)[0]))
    for doc in configmaps.split("\n---"):
        comp = re.search(r'"component"\s+"(\w+)"', doc)
        if comp and comp.group(1) in env:
            data_lines(doc, file_assigned, comp.group(1), "configmap.yaml")

    secret = (templates / "secret.yaml").read_text()
    secret_vars = dict(ASSIGN.findall(secret))
    secret_values = {}
    for var, key_name, value_var, path in SECRET_PAIR.findall(secret):
        if secret_vars.get(var) == "auth" and value_var in secret_vars:
            secret_values[key_name] = f"{secret_vars[value_var]}.{path}"
    for component in env:
        for path in sorted((templates / component).glob("*.yaml")):
            source = f"{component}/{path.name}"
            for line in path.read_text().splitlines():
                m = LIST_ENV.match(line)
                if m:
                    env[component].setdefault(m.group(1), (source, None, None))
                for name, key_name in SECRET_ENV.findall(line):
                    key = secret_values.get(key_name)
                    default = rendered(lookup(values, key)[0]) if key else None
                    env[component][name] = (f"{source} (Secret)", key, default)
        for name, value in ((values.get(component) or {}).get("env") or {}).items():
            env[component][name] = (f"values.yaml {component}.env", f"{component}.env.{name}", rendered(value))
    return env


def expected_default(default_cell, clap):
    """What an unset variable means to the binary, as comparable text, or None."""
    if default_cell == "—":
        return None
    if clap is not None:
        return clap
    first = default_cell.split(";", 1)[0].strip()
    return first if first and " " not in first else None


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__.split("\n\n")[1])
    tables = read_tables(sys.argv[1])
    chart = Path(sys.argv[2])
    values = yaml.safe_load((chart / "values.yaml").read_text())
    problems, checked = [], 0
    intentional_seen = set()
    for component, by_var in chart_env(chart, values).items():
        binary = COMPONENTS[component]
        settings = tables.get(binary)
        if not settings:
            problems.append(f"{binary}: no settings table in {sys.argv[1]}")
            continue
        for var, (source, key, default) in sorted(by_var.items()):
            if var not in settings:
                if var not in NOT_CLAP:
                    problems.append(f"{binary}: the chart sets {var} ({source}), which is not one of its settings")
                continue
            cell, clap = settings[var]
            want = expected_default(cell, clap)
            if key is None or not default or want is None:
                continue
            checked += 1
            if (component, var) in INTENTIONAL:
                intentional_seen.add((component, var))
                if default == want:
                    problems.append(
                        f"{binary}: {var} is listed as an intentional difference but values.yaml {key} "
                        f"({default!r}) equals the binary's default: remove it from INTENTIONAL"
                    )
                continue
            if default != want:
                problems.append(
                    f"{binary}: {var} defaults to {want!r} in the binary but values.yaml {key} is {default!r} ({source})"
                )
    for stale in sorted(set(INTENTIONAL) - intentional_seen):
        problems.append(f"INTENTIONAL lists {stale}, which the chart no longer maps to a compared default")
    for p in problems:
        print(f"settings-check: {p}", file=sys.stderr)
    if problems:
        return 1
    print(f"settings-check: chart and clap settings agree ({checked} defaults compared, "
          f"{len(INTENTIONAL)} intentional differences)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
