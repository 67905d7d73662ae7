"""Checks JSON answers against an OpenAPI 3.0 document's schemas, and drives a running emulator.

Only the standard library: the conformance step runs with the system's Python.

A value is checked the way the API's published schema describes it: `$ref`, `anyOf`, `oneOf`
(exactly one branch), `allOf` (the parts folded into one schema), `nullable`, `type`, `enum`,
`maxLength`, `items`, object `properties` and `required`, and `additionalProperties` (a schema for a
map's values, or `false`). Beyond JSON Schema, an
object may carry no field its schema does not name, since a field the API does not have is a
fidelity bug as much as a missing one, unless the schema says it lists only some fields
(`x-subset-partial`) or is not written out at all (`x-subset-stub`). Checking stops at the first
problem under each field and reports its path (`data[0].amount.monetary.currency`).
"""

import json
import urllib.error
import urllib.request


class Spec:
    """An OpenAPI document, and the problems found checking values against it."""

    def __init__(self, path):
        with open(path, encoding="utf-8") as f:
            self.doc = json.load(f)
        self.problems = []

    def resolve(self, schema):
        """Follows `$ref`s to the schema they name."""
        seen = 0
        while "$ref" in schema:
            ref = schema["$ref"]
            if not ref.startswith("#/"):
                raise ValueError(f"external reference {ref}")
            node = self.doc
            for part in ref[2:].split("/"):
                node = node[part.replace("~1", "/").replace("~0", "~")]
            schema = node
            seen += 1
            if seen > 64:
                raise ValueError(f"reference loop at {ref}")
        return schema

    def operation(self, method, path):
        """The operation object for `method` on the templated `path`."""
        return self.doc["paths"][path][method.lower()]

    def response_schema(self, method, path, status):
        """The schema of the answer to `method` `path` with `status` (or the default answer)."""
        responses = self.operation(method, path)["responses"]
        answer = responses.get(str(status)) or responses.get("default")
        if answer is None:
            return None
        content = answer.get("content", {}).get("application/json")
        return content and content.get("schema")

    def errors(self, value, schema, where="$"):
        """Every way `value` departs from `schema`, as `path: problem` lines (empty when none)."""
        out = []
        self._check(value, schema, where, out)
        return out

    def merged(self, schema):
        """`schema` with its `allOf` parts folded in: one object schema whose properties and
        required fields are all the parts' (checking each part alone would refuse the others'
        properties)."""
        schema = self.resolve(schema)
        if "allOf" not in schema:
            return schema
        out = {k: v for k, v in schema.items() if k != "allOf"}
        props = dict(out.get("properties", {}))
        required = list(out.get("required", []))
        for part in schema["allOf"]:
            part = self.merged(part)
            for k, v in part.items():
                if k == "properties":
                    props.update(v)
                elif k == "required":
                    required += [r for r in v if r not in required]
                elif k not in out:
                    out[k] = v
        if props:
            out["properties"] = props
        if required:
            out["required"] = required
        return out

    def _check(self, value, schema, where, out):
        schema = self.merged(schema)
        if schema.get("x-subset-stub"):
            return
        branches_key = "anyOf" if "anyOf" in schema else "oneOf" if "oneOf" in schema else None
        constrained = branches_key or any(
            k in schema for k in ("type", "properties", "enum", "items", "additionalProperties"))
        if value is None:
            # Null is allowed by `nullable`, by a branch that allows it, or by a schema that
            # constrains nothing (any value).
            if schema.get("nullable") or not constrained:
                return
            if branches_key and any(self.merged(b).get("nullable") for b in schema[branches_key]):
                return
            out.append(f"{where}: null where the schema has no nullable")
            return
        if branches_key:
            results = []
            for b in schema[branches_key]:
                e = []
                self._check(value, b, where, e)
                results.append(e)
            matched = sum(1 for e in results if not e)
            if matched == 0:
                best = min(results, key=len)
                out.append(f"{where}: matches none of {branches_key} ({best[0]})")
                return
            if branches_key == "oneOf" and matched > 1:
                out.append(f"{where}: matches {matched} branches of oneOf, not exactly one")
                return
            # Keys beside the branches (a `type`, an `enum`) still apply.
            if not any(k in schema for k in ("type", "properties", "enum", "items")):
                return
        kind = schema.get("type")
        if kind is None and "properties" in schema:
            kind = "object"
        if kind == "object":
            if not isinstance(value, dict):
                out.append(f"{where}: expected an object, got {type(value).__name__}")
                return
            props = schema.get("properties", {})
            for name in schema.get("required", []):
                if name not in value:
                    out.append(f"{where}: required field `{name}` missing")
            extra = schema.get("additionalProperties")
            for name, v in value.items():
                if name in props:
                    self._check(v, props[name], f"{where}.{name}", out)
                elif isinstance(extra, dict):
                    self._check(v, extra, f"{where}.{name}", out)
                elif extra is True or schema.get("x-subset-partial"):
                    continue
                elif props or extra is False:
                    out.append(f"{where}: field `{name}` is not in the schema")
        elif kind == "array":
            if not isinstance(value, list):
                out.append(f"{where}: expected an array, got {type(value).__name__}")
                return
            items = schema.get("items")
            if items:
                for i, v in enumerate(value):
                    self._check(v, items, f"{where}[{i}]", out)
        elif kind == "string":
            if not isinstance(value, str):
                out.append(f"{where}: expected a string, got {json.dumps(value)}")
                return
            limit = schema.get("maxLength")
            if limit is not None and len(value) > limit:
                out.append(f"{where}: longer than maxLength {limit}")
        elif kind == "integer":
            if not isinstance(value, int) or isinstance(value, bool):
                out.append(f"{where}: expected an integer, got {json.dumps(value)}")
                return
        elif kind == "number":
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                out.append(f"{where}: expected a number, got {json.dumps(value)}")
                return
        elif kind == "boolean":
            if not isinstance(value, bool):
                out.append(f"{where}: expected a boolean, got {json.dumps(value)}")
                return
        enum = schema.get("enum")
        if enum is not None and value not in enum and not schema.get("x-stripeBypassValidation"):
            out.append(f"{where}: {json.dumps(value)} is not one of {enum}")


class Answer:
    """An HTTP answer: status, headers (lower-case names), and the body as JSON when it is."""

    def __init__(self, status, headers, text):
        self.status = status
        self.headers = headers
        self.text = text
        try:
            self.body = json.loads(text) if text else None
        except ValueError:
            self.body = None


def call(base, method, path, body=None, headers=None):
    """Sends one request to the emulator at `base` and returns its [`Answer`]."""
    if isinstance(body, (dict, list)):
        body = json.dumps(body)
    data = body.encode() if isinstance(body, str) else body
    req = urllib.request.Request(base + path, data=data, method=method)
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return Answer(r.status, {k.lower(): v for k, v in r.headers.items()}, r.read().decode())
    except urllib.error.HTTPError as e:
        return Answer(e.code, {k.lower(): v for k, v in e.headers.items()}, e.read().decode())


class Report:
    """What a conformance run found: checks made, operations answered 200, and failures."""

    def __init__(self, name):
        self.name = name
        self.checks = 0
        self.failures = []
        self.answered = set()

    def fail(self, what):
        self.checks += 1
        self.failures.append(what)
        print(f"FAIL {what}")

    def expect(self, ok, what):
        if ok:
            self.checks += 1
        else:
            self.fail(what)

    def summary(self):
        print(f"{self.name}: {self.checks} checks, {len(self.failures)} failed")
        return not self.failures
