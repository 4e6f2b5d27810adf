#!/usr/bin/env python3
"""Validates custom resources (Flux, Argo CD, ...) against the openAPIV3Schema
of their CustomResourceDefinition, offline, the way the API server would.

    crd_validate.py --crds DIR [--skip-builtin] [--quiet] FILE...

(`@LIST` stands for the files named in LIST, one a line.)

Every YAML document in FILE is matched by apiVersion (group/version) and kind
to a CRD in DIR; the served version of that name gives the schema. The check
is stricter than plain JSON Schema, like the API server:

- an object schema that lists `properties` rejects any other field, unless it
  says `x-kubernetes-preserve-unknown-fields: true` or has its own
  `additionalProperties` (the API server would prune or reject such fields;
  either way the generated file is wrong);
- `nullable: true` allows null, other fields do not;
- `metadata` is checked against the Kubernetes ObjectMeta schema that
  kubernetes-validate ships (strict), when that package is installed, and
  must carry a name;
- `x-kubernetes-validations` rules are evaluated when they use only the CEL
  subset these CRDs need (has(), field access, !, &&, ||, ==, !=, ?:, string,
  integer and boolean literals); any other rule is reported as not evaluated.

With --skip-builtin, documents whose apiVersion no CRD in DIR defines and whose
group is a Kubernetes built-in one (no dot, or ending in .k8s.io) are skipped:
kubernetes-validate checks those. Without it, every document needs a CRD.

Failures name the file, the document, the object and the JSON path. Exit
status: 0 when every document is valid, 1 otherwise, 2 on a usage error.
"""

import argparse
import json
import os
import re
import sys

import jsonschema
import referencing
import referencing.jsonschema
import yaml

OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
# libyaml's parser, when PyYAML has it: the CRDs are large.
LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


# ---------------------------------------------------------------- CRD index


def load_crds(directory):
    """Returns {(group, kind): {version: version entry}} for every CRD in directory."""
    index = {}
    for name in sorted(os.listdir(directory)):
        if not name.endswith((".yaml", ".yml")):
            continue
        with open(os.path.join(directory, name)) as f:
            for doc in yaml.load_all(f, Loader=LOADER):
                if not isinstance(doc, dict) or doc.get("kind") != "CustomResourceDefinition":
                    continue
                spec = doc["spec"]
                key = (spec["group"], spec["names"]["kind"])
                index.setdefault(key, {})
                for version in spec["versions"]:
                    index[key][version["name"]] = dict(version, _file=name)
    return index


def known_kinds(index):
    """The (apiVersion, kind) pairs the CRDs serve."""
    return {
        (f"{group}/{version}", kind)
        for (group, kind), versions in index.items()
        for version, entry in versions.items()
        if entry.get("served", False)
    }


def is_builtin_group(api_version):
    group = api_version.rpartition("/")[0]
    return "." not in group or group.endswith(".k8s.io")


# ------------------------------------------------------- schema strictening


def strict_schema(node, in_junctor=False):
    """A copy of an OpenAPI v3 (structural) schema with unknown fields forbidden.

    Inside allOf/anyOf/oneOf/not the schema only adds value checks (structural
    schemas declare every field outside the junctors), so no field is
    forbidden there."""
    if isinstance(node, list):
        return [strict_schema(item, in_junctor) for item in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key == "properties":
            out[key] = {name: strict_schema(sub, in_junctor) for name, sub in value.items()}
        elif key in ("items", "additionalProperties"):
            out[key] = strict_schema(value, in_junctor)
        elif key in ("allOf", "anyOf", "oneOf", "not"):
            out[key] = strict_schema(value, True)
        else:
            out[key] = value
    if out.get("nullable") is True and "type" in out:
        types = out["type"] if isinstance(out["type"], list) else [out["type"]]
        out["type"] = types + ["null"]
    if (
        not in_junctor
        and "properties" in out
        and "additionalProperties" not in out
        and out.get("x-kubernetes-preserve-unknown-fields") is not True
    ):
        out["additionalProperties"] = False
    return out


def object_meta_registry():
    """A registry holding kubernetes-validate's strict Kubernetes definitions
    (newest version shipped) and the URI of ObjectMeta in it, or (None, None)."""
    try:
        import importlib_resources
        import kubernetes_validate.utils as kv
    except ImportError:
        return None, None
    ref = importlib_resources.files("kubernetes_validate").joinpath(
        "kubernetes-json-schema", f"v{kv.latest_version()}-local-strict", "_definitions.json"
    )
    with importlib_resources.as_file(ref) as path, open(path) as f:
        defs = json.load(f)
    uri = defs.get("$id", "urn:kubernetes-validate:definitions")
    defs["$id"] = uri
    resource = referencing.Resource.from_contents(defs, default_specification=referencing.jsonschema.DRAFT202012)
    return resource @ referencing.Registry(), f"{uri}#/$defs/{OBJECT_META}"


def root_schema(version_entry, meta_ref):
    schema = strict_schema(version_entry["schema"]["openAPIV3Schema"])
    schema["required"] = sorted(set(schema.get("required", [])) | {"apiVersion", "kind", "metadata"})
    if meta_ref is not None:
        schema.setdefault("properties", {})["metadata"] = {
            "allOf": [{"$ref": meta_ref}],
            "required": ["name"],
        }
    return schema


# ----------------------------------------------- CEL (the subset CRDs here use)


class CelUnsupported(Exception):
    pass


class CelError(Exception):
    pass


_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\")|(?P<int>\d+)"
    r"|(?P<op>&&|\|\||==|!=|[!?:().])|(?P<name>[A-Za-z_][A-Za-z0-9_]*))"
)
_MISSING = object()


def _tokens(rule):
    pos, out = 0, []
    rule = rule.strip()
    while pos < len(rule):
        m = _TOKEN.match(rule, pos)
        if not m or m.end() == pos:
            raise CelUnsupported(f"cannot read {rule[pos:]!r}")
        pos = m.end()
        kind = m.lastgroup
        text = m.group(kind)
        if kind == "str":
            text = text[1:-1].encode().decode("unicode_escape")
        elif kind == "int":
            text = int(text)
        out.append((kind, text))
    return out


class _Cel:
    """Recursive-descent evaluator: ternary > || > && > equality > unary > primary."""

    def __init__(self, rule, self_value):
        self.toks = _tokens(rule)
        self.i = 0
        self.self_value = self_value

    def peek(self):
        return self.toks[self.i] if self.i < len(self.toks) else (None, None)

    def take(self, text=None):
        tok = self.peek()
        if tok[0] is None or (text is not None and tok[1] != text):
            raise CelUnsupported(f"expected {text!r}")
        self.i += 1
        return tok

    def run(self):
        value = self.ternary()
        if self.i != len(self.toks):
            raise CelUnsupported("trailing tokens")
        return value

    def ternary(self):
        cond = self.logic_or()
        if self.peek() == ("op", "?"):
            self.take("?")
            yes = self.ternary()
            self.take(":")
            no = self.ternary()
            return yes if self._bool(cond) else no
        return cond

    def _bool(self, value):
        if isinstance(value, Exception):
            raise value
        if not isinstance(value, bool):
            raise CelError("no matching overload: not a bool")
        return value

    def _binary(self, sub, op, short):
        left = sub()
        while self.peek() == ("op", op):
            self.take(op)
            right = sub()
            # CEL's logical operators are commutative about errors: the
            # deciding value wins, whichever side it is on.
            values = [left, right]
            if any(v is short for v in values):
                left = short
            else:
                for v in values:
                    if isinstance(v, Exception) or not isinstance(v, bool):
                        left = v if isinstance(v, Exception) else CelError("not a bool")
                        break
                else:
                    left = not short
        return left

    def logic_or(self):
        return self._binary(self.logic_and, "||", True)

    def logic_and(self):
        return self._binary(self.equality, "&&", False)

    def equality(self):
        left = self.unary()
        while self.peek() in (("op", "=="), ("op", "!=")):
            op = self.take()[1]
            right = self.unary()
            if isinstance(left, Exception) or isinstance(right, Exception):
                left = left if isinstance(left, Exception) else right
            else:
                left = (left == right) if op == "==" else (left != right)
        return left

    def unary(self):
        if self.peek() == ("op", "!"):
            self.take("!")
            value = self.unary()
            if isinstance(value, Exception):
                return value
            if not isinstance(value, bool):
                return CelError("! of a non-bool")
            return not value
        return self.primary()

    def primary(self):
        kind, text = self.peek()
        if kind in ("str", "int"):
            self.take()
            return text
        if (kind, text) == ("op", "("):
            self.take("(")
            value = self.ternary()
            self.take(")")
            return value
        if kind == "name" and text in ("true", "false"):
            self.take()
            return text == "true"
        if (kind, text) == ("name", "has"):
            self.take()
            self.take("(")
            path = self.path()
            self.take(")")
            if len(path) < 1:
                raise CelUnsupported("has() needs a field selection")
            parent = self.lookup(path[:-1])
            if isinstance(parent, Exception):
                return parent
            if not isinstance(parent, dict):
                return CelError("has() on a non-object")
            return path[-1] in parent
        if (kind, text) == ("name", "self"):
            value = self.lookup(self.path())
            return value
        raise CelUnsupported(f"unsupported token {text!r}")

    def path(self):
        self.take("self")
        fields = []
        while self.peek() == ("op", "."):
            self.take(".")
            kind, text = self.take()
            if kind != "name":
                raise CelUnsupported("field name expected")
            fields.append(text)
        if self.peek() == ("op", "("):
            raise CelUnsupported("method calls")
        return fields

    def lookup(self, fields):
        value = self.self_value
        for field in fields:
            if not isinstance(value, dict) or field not in value:
                return CelError(f"no such key: {field}")
            value = value[field]
        return value


def cel_check(rule, value):
    """True or False for a rule about value; raises CelUnsupported."""
    try:
        result = _Cel(rule, value).run()
    except CelError:
        return False
    if isinstance(result, Exception):
        return False
    if not isinstance(result, bool):
        raise CelUnsupported("rule does not give a bool")
    return result


def make_validator_class(unevaluated):
    def x_validations(validator, rules, instance, schema):
        for rule in rules:
            text = rule.get("rule", "")
            try:
                ok = cel_check(text, instance)
            except CelUnsupported as e:
                unevaluated.append((text, str(e)))
                continue
            if not ok:
                message = rule.get("message") or f"failed rule: {text}"
                yield jsonschema.ValidationError(f"{message} (rule: {text})")

    return jsonschema.validators.extend(
        jsonschema.Draft202012Validator, {"x-kubernetes-validations": x_validations}
    )


# ----------------------------------------------------------------- reporting


def json_path(parts):
    out = "$"
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", part):
            out += f".{part}"
        else:
            out += "[" + json.dumps(part) + "]"
    return out


def describe(error):
    """One line for a jsonschema error; for anyOf/oneOf, the closest branch."""
    if error.context:
        deepest = jsonschema.exceptions.best_match(error.context)
        return f"{json_path(deepest.absolute_path)}: {deepest.message}"
    return f"{json_path(error.absolute_path)}: {error.message}"


# ---------------------------------------------------------------------- main


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], fromfile_prefix_chars="@")
    parser.add_argument("--crds", required=True, help="folder of CustomResourceDefinition YAML files")
    parser.add_argument("--skip-builtin", action="store_true",
                        help="skip documents of built-in Kubernetes groups that no CRD defines")
    parser.add_argument("--quiet", action="store_true", help="print failures only")
    parser.add_argument("files", nargs="+")
    args = parser.parse_args(argv)

    if not os.path.isdir(args.crds):
        print(f"crd_validate: no CRD folder at {args.crds}", file=sys.stderr)
        return 2
    index = load_crds(args.crds)
    if not index:
        print(f"crd_validate: no CustomResourceDefinition in {args.crds}", file=sys.stderr)
        return 2
    registry, meta_ref = object_meta_registry()
    if registry is None:
        registry = referencing.Registry()
        print("crd_validate: kubernetes-validate is not installed; metadata is checked only as an object",
              file=sys.stderr)

    unevaluated = []
    validator_class = make_validator_class(unevaluated)
    validators = {}
    checked = skipped = failed = 0
    for path in args.files:
        try:
            with open(path) as f:
                docs = list(yaml.load_all(f, Loader=LOADER))
        except (OSError, yaml.YAMLError) as e:
            print(f"{path}: cannot read YAML: {e}")
            failed += 1
            continue
        for n, doc in enumerate(docs, 1):
            if doc is None:
                continue
            where = f"{path}: document {n}"
            if not isinstance(doc, dict):
                print(f"{where}: not a mapping")
                failed += 1
                continue
            api_version, kind = doc.get("apiVersion"), doc.get("kind")
            name = (doc.get("metadata") or {}).get("name") if isinstance(doc.get("metadata"), dict) else None
            where += f" ({kind}/{name})"
            if not isinstance(api_version, str) or not isinstance(kind, str):
                print(f"{where}: apiVersion and kind must be strings")
                failed += 1
                continue
            group, _, version = api_version.rpartition("/")
            versions = index.get((group, kind))
            if versions is None:
                if args.skip_builtin and is_builtin_group(api_version):
                    skipped += 1
                    continue
                print(f"{where}: no CRD in {args.crds} defines kind {kind} in group {group or '(core)'}")
                failed += 1
                continue
            entry = versions.get(version)
            if entry is None or not entry.get("served", False):
                served = sorted(v for v, e in versions.items() if e.get("served", False))
                print(f"{where}: {entry and entry['_file'] or 'the CRD'} does not serve {api_version} "
                      f"(served: {', '.join(group + '/' + v for v in served)})")
                failed += 1
                continue
            if entry.get("deprecated"):
                print(f"{where}: warning: {api_version} {kind} is deprecated: "
                      f"{entry.get('deprecationWarning', '')}", file=sys.stderr)
            key = (group, kind, version)
            if key not in validators:
                validators[key] = validator_class(root_schema(entry, meta_ref), registry=registry)
            before = len(unevaluated)
            errors = sorted(validators[key].iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))
            for text, why in unevaluated[before:]:
                print(f"{where}: WARNING: CEL rule not evaluated ({why}): {text}", file=sys.stderr)
            checked += 1
            if errors:
                failed += 1
                for error in errors:
                    print(f"{where}: {describe(error)}")
    if not args.quiet:
        extra = f", {skipped} built-in objects left to kubernetes-validate" if skipped else ""
        print(f"crd_validate: {checked} objects checked against CRD schemas, {failed} invalid{extra}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
