"""Tests of the schema checker itself (python3 conformance/test_schema.py): a checker that passes
everything would make the conformance step pass whatever the emulator answers."""

import json
import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from schema import Spec  # noqa: E402

DOC = {
    "paths": {},
    "components": {"schemas": {
        "thing": {
            "type": "object",
            "required": ["id", "kind"],
            "properties": {
                "id": {"type": "string", "maxLength": 5},
                "kind": {"type": "string", "enum": ["a", "b"]},
                "count": {"type": "integer", "nullable": True},
                "tags": {"type": "array", "items": {"type": "string"}},
                "meta": {"type": "object", "additionalProperties": {"type": "string"}},
                "owner": {"anyOf": [{"type": "string"}, {"$ref": "#/components/schemas/owner"}],
                          "nullable": True},
                "stub": {"$ref": "#/components/schemas/stub"},
            },
        },
        "owner": {"type": "object", "properties": {"name": {"type": "string"}}},
        "stub": {"x-subset-stub": True},
        "partial": {"type": "object", "x-subset-partial": True,
                    "properties": {"id": {"type": "string"}}},
        "both": {"allOf": [{"$ref": "#/components/schemas/owner"},
                           {"type": "object", "required": ["n"],
                            "properties": {"n": {"type": "integer"}}}]},
        "one": {"oneOf": [{"type": "integer"}, {"type": "number"}]},
        "any": {"description": "no constraint"},
        "a/b": {"type": "boolean"},
    }},
}


class Checker(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump(DOC, f)
        cls.spec = Spec(f.name)
        os.unlink(f.name)

    def errors(self, value, name):
        return self.spec.errors(value, {"$ref": f"#/components/schemas/{name}"})

    def test_a_valid_object_passes(self):
        value = {"id": "x", "kind": "a", "count": None, "tags": ["t"], "meta": {"k": "v"},
                 "owner": {"name": "n"}, "stub": {"anything": 1}}
        self.assertEqual(self.errors(value, "thing"), [])
        self.assertEqual(self.errors({"id": "x", "kind": "b", "owner": "o"}, "thing"), [])

    def test_each_departure_is_reported_at_its_path(self):
        cases = [
            ({"kind": "a"}, "$: required field `id` missing"),
            ({"id": "x", "kind": "c"}, '$.kind: "c" is not one of'),
            ({"id": "toolong", "kind": "a"}, "$.id: longer than maxLength 5"),
            ({"id": "x", "kind": "a", "extra": 1}, "$: field `extra` is not in the schema"),
            ({"id": "x", "kind": "a", "count": "1"}, "$.count: expected an integer"),
            ({"id": "x", "kind": "a", "count": True}, "$.count: expected an integer"),
            ({"id": "x", "kind": "a", "tags": [1]}, "$.tags[0]: expected a string"),
            ({"id": "x", "kind": "a", "meta": {"k": 1}}, "$.meta.k: expected a string"),
            ({"id": None, "kind": "a"}, "$.id: null where the schema has no nullable"),
            ({"id": "x", "kind": "a", "owner": {"name": 1}}, "$.owner: matches none of anyOf"),
        ]
        for value, want in cases:
            with self.subTest(value=value):
                got = self.errors(value, "thing")
                self.assertTrue(any(e.startswith(want) for e in got), f"{got} lacks {want!r}")

    def test_partial_schemas_allow_unlisted_fields(self):
        self.assertEqual(self.errors({"id": "x", "more": 1}, "partial"), [])
        self.assertNotEqual(self.errors({"id": 1}, "partial"), [])

    def test_all_of_folds_its_parts(self):
        self.assertEqual(self.errors({"name": "x", "n": 1}, "both"), [])
        self.assertEqual(self.errors({"name": "x"}, "both"), ["$: required field `n` missing"])

    def test_one_of_needs_exactly_one_branch(self):
        self.assertEqual(self.errors(1.5, "one"), [])
        self.assertIn("not exactly one", self.errors(1, "one")[0])

    def test_an_unconstrained_schema_takes_anything_and_escaped_refs_resolve(self):
        self.assertEqual(self.errors(None, "any"), [])
        self.assertEqual(self.errors({"x": 1}, "any"), [])
        self.assertEqual(self.spec.errors(True, {"$ref": "#/components/schemas/a~1b"}), [])
        self.assertNotEqual(self.spec.errors(1, {"$ref": "#/components/schemas/a~1b"}), [])


if __name__ == "__main__":
    unittest.main()
