#!/usr/bin/env python3
"""Generates the known-key tables of the component config checker.

Writes src/config/keys/{pd,tikv,tidb}.txt from the upstream copies in the
shared reference folder (default ../shared/reference, or --reference DIR):

- the config templates (TiKV's etc/config-template.toml of release-8.5 and of
  master, PD's conf/config.toml, TiDB's pkg/config/config.toml.example), where
  most keys are commented out as `# key = value` under `[section]` or
  `# [section]` headers: a key counts as known whether commented or not;
- the key lists extracted from the configuration-file pages of the TiDB
  documentation (config-keys/{pd,tikv,tidb}.tsv).

Each table starts with one comment line naming the upstream files and their
commits (read from the reference READMEs, so they cannot drift apart), then
holds one full dotted key per line, sorted. A line ending in `.*` names a
map-valued key: any key below it is accepted (see MAP_VALUED).

With --check nothing is written; the exit code is 1 when a committed table
differs from what would be generated. Python 3.11 standard library only.
"""

from __future__ import annotations

import argparse
import csv
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
DEFAULT_REFERENCE = ROOT.parent / "shared" / "reference"
OUT = ROOT / "src" / "config" / "keys"

# The inputs of each component, as paths inside the reference folder.
TEMPLATES = {
    "pd": ["pd/config.toml"],
    "tikv": ["tikv/config-template-release-8.5.toml", "tikv/config-template.toml"],
    "tidb": ["tidb/config.toml.example"],
}
DOC_LISTS = {
    "pd": "config-keys/pd.tsv",
    "tikv": "config-keys/tikv.tsv",
    "tidb": "config-keys/tidb.tsv",
}

# Keys whose value is a table with keys the references cannot list. A key
# below one of them is accepted as known. The generator also marks every key
# a template shows with an inline-table value (TiKV's `server.labels = {}`: a
# map of store labels chosen by the user).
#
# The encryption master keys are listed by hand: their fields depend on their
# `type` (plaintext, file, kms, and the cloud vendors' KMS flavours), and the
# templates show them only inside prose examples (`##     key-id = ...`),
# which the parser rightly does not read as keys.
#
# Sections with a fixed set of keys stay checked even when they look like
# families: TiKV's `readpool.unified`, `readpool.storage` and
# `readpool.coprocessor` are fixed structs whose keys the template and the
# documentation list completely, so a typo there is worth an error.
MAP_VALUED = {
    "pd": ["security.encryption.master-key"],
    "tikv": ["security.encryption.master-key", "security.encryption.previous-master-key"],
    "tidb": [],
}

KEY = r"[A-Za-z0-9_-]+"
# `[section]`, or `# [section]` for a section the template leaves commented
# out. Prose lines start with `##` in the TiKV and PD templates and are never
# headers, so `## [b,c), [c,d)` or an indented `##     [example]` is skipped.
SECTION = re.compile(r"^(?:# ?)?\[\s*(" + KEY + r"(?:\." + KEY + r")*)\s*\]\s*(?:#.*)?$")
ARRAY_SECTION = re.compile(r"^(?:# ?)?\[\[\s*(" + KEY + r"(?:\." + KEY + r")*)\s*\]\]\s*(?:#.*)?$")
# `key = value`, `# key = value` (commented out) and `## key = value` (a key
# the template documents as off by default, such as TiKV's
# `## ribbon-filter-above-level = 0`). Exactly one space after the hashes:
# indented prose examples (`##     type = "kms"`) belong to the master-key
# examples, handled by MAP_VALUED. A key has a letter, and `=` is not the
# start of `=>`: prose tables such as `## 1      =>  12.50 %` are not keys.
ASSIGNMENT = re.compile(r"^(?:#{1,2} )?(" + KEY + r")\s*=(?!>)\s*(.*)$")


def template_keys(text: str) -> tuple[set[str], set[str]]:
    """The dotted keys a template shows, and those with inline-table values."""
    keys: set[str] = set()
    maps: set[str] = set()
    section: list[str] = []
    for line in text.splitlines():
        line = line.rstrip()
        header = SECTION.match(line) or ARRAY_SECTION.match(line)
        if header:
            section = header.group(1).split(".")
            continue
        assignment = ASSIGNMENT.match(line)
        if not assignment or not re.search("[A-Za-z]", assignment.group(1)):
            continue
        key = ".".join(section + [assignment.group(1)])
        keys.add(key)
        if assignment.group(2).startswith("{"):
            maps.add(key)
    return keys, maps


def doc_keys(path: pathlib.Path) -> set[str]:
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f, delimiter="\t"))
    if not rows or rows[0][:1] != ["key"]:
        sys.exit(f"{path}: expected a header line starting with `key`")
    return {row[0] for row in rows[1:] if row and row[0]}


def readme_commits(reference: pathlib.Path) -> dict[str, str]:
    """Maps each reference file to `repo path@commit`, from the READMEs."""
    out: dict[str, str] = {}
    readme = (reference / "README.md").read_text(encoding="utf-8")
    # | `tikv/config-template.toml` | [tikv/tikv](https://...) | `etc/config-template.toml` | `8e96...` (master) | ...
    row = re.compile(
        r"^\| `([^`]+)` \| \[([^\]]+)\]\([^)]*\) \| `([^`]+)` \| `([0-9a-f]{40})`( \([^)]*\))? \|"
    )
    for line in readme.splitlines():
        m = row.match(line)
        if m:
            local, repo, upstream, commit, branch = m.groups()
            out[local] = f"{repo} {upstream}@{commit}{branch or ''}"
    keys_readme = (reference / "config-keys" / "README.md").read_text(encoding="utf-8")
    # | `tikv.tsv` | `pingcap/docs` / `tikv-configuration-file.md` / `f758...` | 277 |
    row = re.compile(r"^\| `([a-z]+\.tsv)`\s*\| `([^`]+)` / `([^`]+)` / `([0-9a-f]{40})`\s*\|")
    for line in keys_readme.splitlines():
        m = row.match(line)
        if m:
            name, repo, upstream, commit = m.groups()
            out[f"config-keys/{name}"] = f"{repo} {upstream}@{commit}"
    return out


def generate(reference: pathlib.Path) -> dict[str, str]:
    commits = readme_commits(reference)
    tables: dict[str, str] = {}
    for component, templates in TEMPLATES.items():
        keys: set[str] = set()
        maps: set[str] = set()
        sources = templates + [DOC_LISTS[component]]
        for name in templates:
            found, found_maps = template_keys((reference / name).read_text(encoding="utf-8"))
            keys |= found
            maps |= found_maps
        keys |= doc_keys(reference / DOC_LISTS[component])
        for prefix in MAP_VALUED[component]:
            # A hand-listed map that the references no longer show is stale.
            if prefix not in keys and not any(k.startswith(prefix + ".") for k in keys):
                sys.exit(f"{component}: map-valued key `{prefix}` is not in the references")
            keys.add(prefix)
            maps.add(prefix)
        missing = [name for name in sources if name not in commits]
        if missing:
            sys.exit(f"no commit for {missing} in the reference READMEs")
        header = (
            "# Generated by scripts/gen-config-keys.py from "
            + "; ".join(commits[name] for name in sources)
            + ". Do not edit."
        )
        lines = sorted(keys | {m + ".*" for m in maps})
        tables[component] = header + "\n" + "\n".join(lines) + "\n"
    return tables


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reference", type=pathlib.Path, default=DEFAULT_REFERENCE)
    parser.add_argument("--check", action="store_true", help="compare, do not write")
    parser.add_argument("--out", type=pathlib.Path, default=OUT, help="the tables' folder")
    args = parser.parse_args()
    if not args.reference.is_dir():
        print(f"reference folder {args.reference} not found (use --reference DIR)", file=sys.stderr)
        return 2
    tables = generate(args.reference)
    stale = []
    for component, text in tables.items():
        path = args.out / f"{component}.txt"
        if args.check:
            current = path.read_text(encoding="utf-8") if path.exists() else None
            if current != text:
                stale.append(str(path))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    if stale:
        print(
            f"{', '.join(stale)} differ from the references; run `python3 scripts/gen-config-keys.py`",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
