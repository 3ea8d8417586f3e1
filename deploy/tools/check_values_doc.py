#!/usr/bin/env python3
"""Keep the chart README's values table in step with values.yaml.

Every key of values.yaml that carries a `# -- description` comment (helm-docs style) is a
documented value; every leaf of values.yaml must be a documented value or sit under one. The
README holds the generated table between `<!-- values:start -->` and `<!-- values:end -->`.

  check_values_doc.py values.yaml README.md           # check (exit 1 when out of date)
  check_values_doc.py --write values.yaml README.md   # regenerate the table
"""
import json
import re
import sys

import yaml

START, END = "<!-- values:start -->", "<!-- values:end -->"
KEY = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z0-9_.\-]+):(\s|$)")


def documented_keys(text):
    """[(path, description)] in file order, from `# --` comments above keys."""
    out, stack, comment = [], [], None
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("# --"):
            comment = [stripped[4:].strip()]
            continue
        if stripped.startswith("#") and comment is not None:
            comment.append(stripped[1:].strip())
            continue
        if not stripped:
            comment = None
            continue
        m = KEY.match(line)
        if m and not stripped.startswith("-"):
            depth = len(m.group("indent")) // 2
            stack = stack[:depth] + [m.group("key")]
            if comment is not None:
                out.append((".".join(stack), " ".join(comment)))
        comment = None
    return out


def leaves(node, prefix=""):
    if isinstance(node, dict) and node:
        for k, v in node.items():
            yield from leaves(v, f"{prefix}.{k}" if prefix else k)
    else:
        yield prefix


def lookup(values, path):
    node = values
    for part in path.split("."):
        node = node[part]
    return node


def type_of(v):
    return {dict: "object", list: "list", bool: "bool", int: "int", float: "number",
            str: "string", type(None): "null"}[type(v)]


def table(values, docs):
    rows = ["| Key | Type | Default | Description |", "|---|---|---|---|"]
    for path, desc in docs:
        v = lookup(values, path)
        default = json.dumps(v, separators=(",", ":")).replace("|", "\\|")
        desc = desc.replace("|", "\\|")
        rows.append(f"| `{path}` | {type_of(v)} | `{default}` | {desc} |")
    return "\n".join(rows)


def main(argv):
    write = "--write" in argv
    args = [a for a in argv if a != "--write"]
    if len(args) != 2:
        sys.exit(__doc__)
    values_path, readme_path = args
    text = open(values_path, encoding="utf-8").read()
    values = yaml.safe_load(text)
    docs = documented_keys(text)
    documented = {p for p, _ in docs}
    errors = []
    for leaf in leaves(values):
        parts = leaf.split(".")
        if not any(".".join(parts[:i]) in documented for i in range(1, len(parts) + 1)):
            errors.append(f"{leaf}: no `# --` description on it or on a parent key in {values_path}")
    readme = open(readme_path, encoding="utf-8").read()
    if START not in readme or END not in readme:
        errors.append(f"{readme_path}: markers {START} / {END} are missing")
    else:
        head, rest = readme.split(START, 1)
        current, tail = rest.split(END, 1)
        wanted = "\n" + table(values, docs) + "\n"
        if write:
            open(readme_path, "w", encoding="utf-8").write(head + START + wanted + END + tail)
            print(f"wrote {len(docs)} values into {readme_path}")
        elif current != wanted:
            errors.append(f"{readme_path}: the values table is out of date; regenerate it with "
                          f"python3 deploy/tools/check_values_doc.py --write {values_path} {readme_path}")
    for e in errors:
        print(f"FAIL {e}")
    if not errors:
        print(f"check_values_doc: {len(docs)} documented values cover every key: ok")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
