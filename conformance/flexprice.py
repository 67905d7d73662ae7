#!/usr/bin/env python3
"""Black-box conformance of the native credit-grant API against Flexprice's published subset.

Usage: python3 conformance/flexprice.py BASE_URL SHARED_DIR

BASE_URL is a running emulator (http://127.0.0.1:PORT); SHARED_DIR holds
`flexprice/openapi-creditgrants.json` (the OpenAPI 3.0 subset) and
`reference/flexprice-creditgrants.md` (its prose reference, quoted below as "reference §N").

What is checked:
1. every operation of the document is answered with its documented success status at least once,
   and every successful body matches the documented response schema;
2. every error provoked (missing and invalid fields, unknown ids, bad list parameters) matches the
   documented error schema for its status, and the status, code and message the reference states;
3. every property of CreateCreditGrantRequest and UpdateCreditGrantRequest is sent in at least one
   successful request, and every query parameter of GET /creditgrants is sent in a successful
   request whose effect on the answer is asserted.

The setup (customers, plans, subscriptions) goes through the emulator's own native routes, in a
world of its own: a fresh random API key per run. Exit status 0 when every check passes.
"""

import json
import os
import re
import secrets
import sys
import urllib.parse
from datetime import datetime, timezone

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from schema import Report, Spec, call  # noqa: E402

GRANTS = "/creditgrants"
GRANT = "/creditgrants/{id}"
PLAN_GRANTS = "/plans/{id}/creditgrants"
ADDON_GRANTS = "/addons/{id}/creditgrants"
SUBSCRIPTION_UPCOMING = "/subscriptions/{id}/grants/upcoming"
CUSTOMER_UPCOMING = "/customers/{id}/grants/upcoming"

DAY_NS = 86_400 * 10**9

# The reference's texts (flexprice-creditgrants.md), quoted by the checks that rely on them.
MSG_BINDING = "Invalid request format"
MSG_SCOPE_ENUM = "Credit grant scope must be one of: [PLAN SUBSCRIPTION ADDON]"
MSG_CADENCE_ENUM = "Credit grant cadence must be one of: [ONETIME RECURRING]"
MSG_EXPIRY_ENUM = "Credit grant expiry type must be one of: [NEVER DURATION BILLING_CYCLE]"
MSG_PERIOD_ENUM = (
    "Credit grant period must be one of: [DAILY WEEKLY MONTHLY ANNUAL QUARTERLY HALF_YEARLY]"
)
MSG_UNIT_ENUM = "Credit grant expiry duration unit must be one of: [DAY WEEK MONTH YEAR]"
MSG_CREDITS = "Please provide a positive credits"
MSG_PLAN_ID = "Please provide a valid plan ID"
MSG_PLAN_DATES = "Start date and end date are not allowed for PLAN-scoped grants"
MSG_SUBSCRIPTION_START = "Please provide a start date for the credit grant"
MSG_BEFORE_SUBSCRIPTION = "Credit grant start date cannot be before subscription start date"
MSG_SUBSCRIPTION_MISSING = "Subscription not found"
MSG_GRANT_MISSING = "Credit grant not found"
MSG_ARCHIVED = "Credit grant is already archived"
MSG_NAME = "Please provide a name for the credit grant"
MSG_END_DATE = "Please provide a valid end date"
MSG_BAD_FILTER = "Invalid filter parameters"
MSG_UPCOMING_MISSING = "Please verify the subscription ID is correct"
MSG_DELETED = "credit grant deleted successfully"

# reference §7.1: the status each sentinel answers with, and its code.
CODE_OF_STATUS = {400: "validation_error", 404: "not_found", 500: "database_error"}


# ---------------------------------------------------------------------------------------------
# Times: RFC 3339 strings compared exactly, to the nanosecond.


def to_ns(text):
    """Nanoseconds since the epoch of an RFC 3339 time, or None when `text` is not one."""
    if not isinstance(text, str):
        return None
    m = re.fullmatch(
        r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)", text
    )
    if not m:
        return None
    whole = datetime.strptime(m[1], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc)
    ns = int(whole.timestamp()) * 10**9 + int((m[2] or "").ljust(9, "0"))
    if m[3] != "Z":
        sign = 1 if m[3][0] == "+" else -1
        ns -= sign * (int(m[3][1:3]) * 3600 + int(m[3][4:6]) * 60) * 10**9
    return ns


def rfc3339(ns):
    """`ns` as RFC 3339 in UTC, whole seconds (what the Python SDK sends)."""
    return datetime.fromtimestamp(ns // 10**9, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def ids_of(body):
    return [g.get("id") for g in (body or {}).get("items", [])]


# ---------------------------------------------------------------------------------------------


class Conformance:
    """One run: the document, the emulator, and what was exercised."""

    def __init__(self, base, shared):
        self.spec = Spec(os.path.join(shared, "flexprice", "openapi-creditgrants.json"))
        self.report = Report("flexprice conformance")
        self.base = base.rstrip("/")
        self.prefix = self.api_prefix()
        # A world of its own: every key is an isolated world in the emulator.
        self.key = "sk_test_conformance_" + secrets.token_hex(8)
        self.create_fields = set()  # CreateCreditGrantRequest properties sent in a 201
        self.update_fields = set()  # UpdateCreditGrantRequest properties sent in a 200
        self.list_params = set()  # GET /creditgrants parameters sent in a 200
        self.addon_refusal = None  # why no addon could be made, when none could
        self.sub_grant_start = None  # start_date of the SUBSCRIPTION grant, in nanoseconds
        self.notes = set()  # where the document and the reference differ, printed at the end

    # -- the document ---------------------------------------------------------------------

    def api_prefix(self):
        """The path every server of the document shares (`/v1`): the document's paths are relative
        to it."""
        paths = {urllib.parse.urlparse(s["url"]).path.rstrip("/") for s in self.spec.doc["servers"]}
        self.report.expect(
            len(paths) == 1,
            f"the document's servers disagree on the base path: {sorted(paths)}",
        )
        return sorted(paths)[0]

    def operations(self):
        for path, item in self.spec.doc["paths"].items():
            for method in item:
                if method in ("get", "put", "post", "delete", "patch"):
                    yield method.upper(), path

    def success_status(self, method, path):
        """The documented 2xx status of an operation."""
        responses = self.spec.operation(method, path)["responses"]
        codes = [int(c) for c in responses if c.startswith("2")]
        return codes[0] if len(codes) == 1 else None

    def schema_name(self, schema):
        ref = (schema or {}).get("$ref", "")
        return ref.rsplit("/", 1)[-1] or "inline schema"

    def component(self, name):
        return self.spec.doc["components"]["schemas"][name]

    # -- requests -------------------------------------------------------------------------

    def send(self, method, path, params=None, body=None, query=None):
        """Sends `method` to the templated document `path` under the API prefix."""
        url = self.prefix + path.replace("{id}", urllib.parse.quote(params or "", safe=""))
        if query:
            url += "?" + urllib.parse.urlencode(query)
        headers = {"x-api-key": self.key}
        data = None
        if body is not None:
            data = json.dumps(body)
            headers["content-type"] = "application/json"
        answer = call(self.base, method, url, data, headers)
        shown = f"{method} {url}" + (f" {data}" if data else "")
        return answer, shown

    def ok(self, method, path, params=None, body=None, query=None, what=""):
        """A request expected to succeed: status as documented, body as the documented schema.
        Returns the body, or None when the status is not the documented one."""
        answer, shown = self.send(method, path, params, body, query)
        status = self.success_status(method, path)
        label = f"{what} ({shown})" if what else shown
        self.report.expect(
            answer.status == status,
            f"{label}: answered {answer.status}, the document's success status is {status}: "
            f"{answer.text[:400]}",
        )
        if answer.status != status:
            return None
        self.report.answered.add((method, path))
        schema = self.spec.response_schema(method, path, status)
        self.conforms(answer.body, schema, f"{label}: {status} body vs {self.schema_name(schema)}")
        return answer.body

    def conforms(self, value, schema, label):
        problems = self.spec.errors(value, schema)
        if not problems:
            self.report.expect(True, label)
        for p in problems:
            self.report.expect(False, f"{label}: {p}")

    def own_request(self, body, schema_name, label):
        """The script's own request body must be valid per the document (only documented
        properties, right types): a failure here is a bug in this script, not in the emulator."""
        problems = self.spec.errors(body, self.component(schema_name))
        self.report.expect(
            not problems, f"{label}: this script's request is not a valid {schema_name}: {problems}"
        )

    def error(self, method, path, params=None, body=None, query=None, *, status, message, ref,
              details=None):
        """A request expected to fail as the reference says: status, code, message (and details
        when the reference gives them), and the body against the document's schema for that
        status."""
        answer, shown = self.send(method, path, params, body, query)
        expected = f'reference {ref}: {status} "{message}"'
        got = answer.body if isinstance(answer.body, dict) else {}
        self.report.expect(
            answer.status == status,
            f"{shown}: answered {answer.status} {answer.text[:300]}; expected {expected}",
        )
        self.report.expect(
            got.get("message") == message,
            f"{shown}: message {got.get('message')!r}; expected {expected}",
        )
        code = CODE_OF_STATUS.get(status)
        self.report.expect(
            got.get("code") == code and got.get("http_status_code") == status,
            f"{shown}: code {got.get('code')!r}, http_status_code {got.get('http_status_code')!r}; "
            f"reference §7.1 says {code!r} and {status} for a {status}",
        )
        if details is not None:
            self.report.expect(
                got.get("details") == details,
                f"{shown}: details {got.get('details')!r}; expected {details!r} ({expected})",
            )
        # The body is judged by the schema of the status the reference expects (a wrong status
        # has failed above already).
        schema = self.spec.response_schema(method, path, status)
        if schema is None:
            # The subset declares only 400 and 500 on these operations; the reference gives the
            # 404 (§4.2, §5.1, §5.2, §7.1). The body is still checked against the error schema.
            self.notes.add(f"{method} {path}: the document declares no {status} answer; "
                           f"the reference does ({ref})")
            schema = {"$ref": "#/components/schemas/errors.ErrorResponse"}
        self.conforms(answer.body, self.with_details(schema),
                      f"{shown}: {status} body vs {self.schema_name(schema)}")
        return got

    def with_details(self, schema):
        """The error schema with the `details` object the reference describes (§7.1: "`details`
        holds the merged 'reportable details' and is omitted when empty"; §12: the spec's
        `errors.ErrorResponse` omits it, `swaggerignore`)."""
        resolved = self.spec.resolve(schema)
        if resolved.get("type") != "object" or "details" in resolved.get("properties", {}):
            return schema
        props = dict(resolved.get("properties", {}))
        props["details"] = {"type": "object", "additionalProperties": True}
        return {**resolved, "properties": props}

    def expect_equal(self, got, want, label):
        self.report.expect(got == want, f"{label}: got {got!r}, expected {want!r}")

    def expect_time(self, got, want_ns, label):
        self.report.expect(
            to_ns(got) == want_ns, f"{label}: got {got!r}, expected {rfc3339(want_ns)}"
        )

    # -- grants ---------------------------------------------------------------------------

    def create_grant(self, body, what):
        """POST /creditgrants expected to succeed; records the properties sent and checks that the
        answer echoes them (reference §3, §4.1)."""
        self.own_request(body, "CreateCreditGrantRequest", what)
        grant = self.ok("POST", GRANTS, body=body, what=what)
        if grant is None:
            return None
        self.create_fields.update(body)
        self.report.expect(
            re.fullmatch(r"cg_[0-9A-HJKMNP-TV-Z]{26}", grant.get("id", "")) is not None,
            f"{what}: id {grant.get('id')!r} is not cg_ + a 26-character ULID (reference §8)",
        )
        self.expect_equal(grant.get("status"), "published", f"{what}: status (reference §3)")
        for field in ("name", "scope", "cadence", "expiration_type", "plan_id", "subscription_id",
                      "addon_id", "period", "period_count", "expiration_duration",
                      "expiration_duration_unit", "priority", "metadata", "credits",
                      "conversion_rate", "topup_conversion_rate"):
            if field in body and not (field == "plan_id" and body.get("scope") == "ADDON"):
                self.expect_equal(grant.get(field), body[field], f"{what}: {field} echoed")
        for field in ("start_date", "end_date"):
            if field in body:
                self.expect_time(grant.get(field), to_ns(body[field]), f"{what}: {field} echoed")
        return grant

    def grant(self, grant_id, what):
        return self.ok("GET", GRANT, grant_id, what=what)

    # -- setup through the native routes ----------------------------------------------------

    def native(self, method, path, body, what):
        """A setup request outside the document (customers, plans, subscriptions)."""
        answer = call(
            self.base, method, path, json.dumps(body),
            {"x-api-key": self.key, "content-type": "application/json"},
        )
        self.report.expect(
            answer.status == 201 and isinstance(answer.body, dict) and "id" in answer.body,
            f"setup: {what}: {method} {path} answered {answer.status} {answer.text[:300]}",
        )
        return answer.body if answer.status == 201 else None

    def make_addon(self):
        """Flexprice makes addons with POST /v1/addons. Without one, `addon_id` and the ADDON scope
        can only be refused (reference §4.1: "if sent, addon must exist (404)")."""
        body = {"name": "Conformance addon", "lookup_key": "addon-" + secrets.token_hex(4),
                "type": "onetime"}
        answer = call(self.base, "POST", self.prefix + "/addons", json.dumps(body),
                      {"x-api-key": self.key, "content-type": "application/json"})
        if answer.status == 201 and isinstance(answer.body, dict) and "id" in answer.body:
            return answer.body["id"]
        self.addon_refusal = (
            f"POST {self.prefix}/addons answered {answer.status} {answer.text[:100]!r}"
        )
        return None

    # -- the run ----------------------------------------------------------------------------

    def run(self):
        p = self.prefix
        customer = self.native("POST", p + "/customers",
                               {"external_id": "conf-" + secrets.token_hex(6), "name": "Ada"},
                               "a customer")
        plan_a = self.native("POST", p + "/plans", {"name": "Plan A"}, "plan A")
        plan_b = self.native("POST", p + "/plans", {"name": "Plan B"}, "plan B")
        # Plan C has no grants, so a subscription to it starts with none of its own.
        plan_c = self.native("POST", p + "/plans", {"name": "Plan C"}, "plan C")
        if not (customer and plan_a and plan_b and plan_c):
            return
        sub = self.native("POST", p + "/subscriptions",
                          {"customer_id": customer["id"], "plan_id": plan_c["id"],
                           "currency": "usd", "billing_period": "MONTHLY",
                           "billing_period_count": 1},
                          "a subscription to plan C")
        if not sub:
            return
        addon = self.make_addon()

        g1, g2, g3, g4 = self.check_create(plan_a, plan_b, plan_c, sub, addon)
        self.check_create_errors(plan_a, sub)
        if not (g1 and g2 and g3):
            return
        self.check_plan_and_addon_lists(plan_a, plan_b, g1, g2, addon, g4)
        self.check_upcoming(customer, sub, g3)
        self.check_update(g1, g3)
        self.check_delete(plan_b, g2, g3)
        self.check_list(plan_a, plan_b, plan_c, sub, g1, g2, g3, g4)
        self.check_unknown_ids()

    def check_create(self, plan_a, plan_b, plan_c, sub, addon):
        # A recurring PLAN grant with every optional field a plan grant may have (reference §4.1:
        # PLAN grants may not have dates).
        g1 = self.create_grant(
            {"name": "Monthly credits", "scope": "PLAN", "plan_id": plan_a["id"],
             "credits": "100", "cadence": "RECURRING", "period": "MONTHLY", "period_count": 1,
             "expiration_type": "DURATION", "expiration_duration": 2,
             "expiration_duration_unit": "MONTH", "priority": 3,
             "metadata": {"tier": "gold", "source": "conformance"},
             "conversion_rate": "2", "topup_conversion_rate": "1.5"},
            "create a recurring PLAN grant")
        # A one-time PLAN grant with the least the reference requires.
        g2 = self.create_grant(
            {"name": "Welcome credits", "scope": "PLAN", "plan_id": plan_b["id"], "credits": "10",
             "cadence": "ONETIME", "expiration_type": "NEVER"},
            "create a one-time PLAN grant")
        if g2:
            # reference §3: omitempty fields of a ONETIME grant without priority or metadata.
            for absent in ("period", "period_count", "priority", "metadata", "start_date",
                           "end_date", "subscription_id"):
                self.report.expect(absent not in g2,
                                   f"create a one-time PLAN grant: `{absent}` present "
                                   f"({g2.get(absent)!r}); reference §3 says omitempty")
        # A SUBSCRIPTION grant needs the subscription and a start date on or after its start
        # (reference §4.1); plan_id is kept as provenance. It starts tomorrow, so its first
        # application is still pending (reference §10.1 C, D).
        start = to_ns(sub["start_date"]) // 10**9 * 10**9 + DAY_NS
        self.sub_grant_start = start
        g3 = self.create_grant(
            {"name": "Subscription credits", "scope": "SUBSCRIPTION",
             "subscription_id": sub["id"], "plan_id": plan_c["id"], "credits": "12.5",
             "cadence": "RECURRING", "period": "MONTHLY", "period_count": 1,
             "expiration_type": "BILLING_CYCLE", "priority": 1,
             "start_date": rfc3339(start), "end_date": rfc3339(start + 90 * DAY_NS)},
            "create a SUBSCRIPTION grant")
        if g3:
            # reference §3: credit_grant_anchor "defaults to start_date".
            self.expect_time(g3.get("credit_grant_anchor"), start,
                             "create a SUBSCRIPTION grant: credit_grant_anchor (reference §3)")
        g4 = None
        if addon:
            g4 = self.create_grant(
                {"name": "Addon credits", "scope": "ADDON", "addon_id": addon, "credits": "5",
                 "cadence": "ONETIME", "expiration_type": "NEVER"},
                "create an ADDON grant")
        return g1, g2, g3, g4

    def check_create_errors(self, plan_a, sub):
        """reference §4.2: validation order and messages, first failure wins."""
        base = {"name": "x", "scope": "PLAN", "plan_id": plan_a["id"], "credits": "10",
                "cadence": "ONETIME", "expiration_type": "NEVER", "conversion_rate": "2",
                "topup_conversion_rate": "1.5"}

        def without(*names, **changes):
            body = {k: v for k, v in base.items() if k not in names}
            body.update(changes)
            return body

        # Missing fields the document marks required.
        self.error("POST", GRANTS, body={"scope": "PLAN", "cadence": "ONETIME"}, status=400,
                   message=MSG_BINDING, ref="§4.2 #0, §7.1 (name missing: gin binding)")
        self.error("POST", GRANTS, body=without("cadence"), status=400, message=MSG_BINDING,
                   ref="§4.2 #0 (cadence missing: gin binding)")
        self.error("POST", GRANTS, body=without("credits"), status=400, message=MSG_CREDITS,
                   ref="§4.2 #4 (credits missing becomes 0; [inferred] in §14)",
                   details={"credits": "0"})
        # Not required by the document, required in practice (reference §12).
        self.error("POST", GRANTS, body=without("expiration_type"), status=400,
                   message=MSG_EXPIRY_ENUM, ref="§4.2 #6, §7.1, §12 (expiration_type missing)")
        # Values outside the documented enums.
        self.error("POST", GRANTS, body=without(scope="GLOBAL"), status=400,
                   message=MSG_SCOPE_ENUM, ref="§4.2 #2")
        self.error("POST", GRANTS, body=without(cadence="WEEKLY"), status=400,
                   message=MSG_CADENCE_ENUM, ref="§4.2 #5")
        self.error("POST", GRANTS, body=without(expiration_type="SOMETIMES"), status=400,
                   message=MSG_EXPIRY_ENUM, ref="§4.2 #6")
        self.error("POST", GRANTS,
                   body=without(cadence="RECURRING", period="FORTNIGHTLY", period_count=1),
                   status=400, message=MSG_PERIOD_ENUM, ref="§4.2 #8")
        self.error("POST", GRANTS,
                   body=without(expiration_type="DURATION", expiration_duration=1,
                                expiration_duration_unit="HOUR"),
                   status=400, message=MSG_UNIT_ENUM, ref="§4.2 #10")
        # Scope rules.
        self.error("POST", GRANTS, body=without("plan_id"), status=400, message=MSG_PLAN_ID,
                   ref="§4.2 #3a, §7.1", details={"scope": "PLAN"})
        self.error("POST", GRANTS, body=without(start_date=rfc3339(self.sub_grant_start)),
                   status=400, message=MSG_PLAN_DATES, ref="§4.2 #3b", details={"scope": "PLAN"})
        self.error("POST", GRANTS,
                   body=without("plan_id", scope="SUBSCRIPTION", subscription_id=sub["id"]),
                   status=400, message=MSG_SUBSCRIPTION_START, ref="§4.2 #3d",
                   details={"scope": "SUBSCRIPTION"})
        # References to objects that do not exist, or dates outside the subscription.
        self.error("POST", GRANTS, body=without(plan_id="plan_01NOPE0000000000000000000"),
                   status=404, message="Plan with ID plan_01NOPE0000000000000000000 was not found",
                   ref="§4.2 #12", details={"plan_id": "plan_01NOPE0000000000000000000"})
        self.error("POST", GRANTS,
                   body=without("plan_id", scope="ADDON",
                                addon_id="addon_01NOPE000000000000000000"),
                   status=404, message="Addon with ID addon_01NOPE000000000000000000 was not found",
                   ref="§4.2 #14", details={"addon_id": "addon_01NOPE000000000000000000"})
        self.error("POST", GRANTS,
                   body=without("plan_id", "conversion_rate", "topup_conversion_rate",
                                scope="SUBSCRIPTION",
                                subscription_id="subs_01NOPE00000000000000000000",
                                start_date=rfc3339(self.sub_grant_start)),
                   status=404, message=MSG_SUBSCRIPTION_MISSING, ref="§4.2 #16")
        self.error("POST", GRANTS,
                   body=without("plan_id", "conversion_rate", "topup_conversion_rate",
                                scope="SUBSCRIPTION", subscription_id=sub["id"],
                                start_date=rfc3339(self.sub_grant_start - 30 * DAY_NS)),
                   status=400, message=MSG_BEFORE_SUBSCRIPTION, ref="§4.2 #18")

    def check_plan_and_addon_lists(self, plan_a, plan_b, g1, g2, addon, g4):
        """reference §1 notes on routes 6 and 7: published grants of that plan or addon, no
        pagination (`{total: n, limit: 0, offset: 0}`), unknown ids give 200 and no items."""
        body = self.ok("GET", PLAN_GRANTS, plan_a["id"], what="plan A's grants")
        if body:
            self.expect_equal(ids_of(body), [g1["id"]], "plan A's grants: items")
            self.expect_equal(body.get("pagination"), {"total": 1, "limit": 0, "offset": 0},
                              "plan A's grants: pagination (reference §5.3)")
        body = self.ok("GET", PLAN_GRANTS, plan_b["id"], what="plan B's grants")
        if body:
            self.expect_equal(ids_of(body), [g2["id"]], "plan B's grants: items")
        body = self.ok("GET", PLAN_GRANTS, "plan_01NOPE0000000000000000000",
                       what="an unknown plan's grants (reference §1: 200, empty)")
        if body:
            self.expect_equal(ids_of(body), [], "an unknown plan's grants: items")
        unknown = "addon_01NOPE000000000000000000"
        body = self.ok("GET", ADDON_GRANTS, unknown,
                       what="an unknown addon's grants (reference §1: 200, empty)")
        if body:
            self.expect_equal(ids_of(body), [], "an unknown addon's grants: items")
            self.expect_equal(body.get("pagination"), {"total": 0, "limit": 0, "offset": 0},
                              "an unknown addon's grants: pagination (reference §5.3)")
        if addon and g4:
            body = self.ok("GET", ADDON_GRANTS, addon, what="the addon's grants")
            if body:
                self.expect_equal(ids_of(body), [g4["id"]], "the addon's grants: items")

    def check_upcoming(self, customer, sub, g3):
        """reference §1 routes 8 and 9, §10.1 C: the SUBSCRIPTION grant's first application is
        pending until its start date."""
        start = self.sub_grant_start
        for path, owner, what in ((SUBSCRIPTION_UPCOMING, sub["id"], "subscription"),
                                  (CUSTOMER_UPCOMING, customer["id"], "customer")):
            label = f"the {what}'s upcoming applications"
            body = self.ok("GET", path, owner, what=label)
            if not body:
                continue
            items = body.get("items") or []
            self.expect_equal([a.get("credit_grant_id") for a in items], [g3["id"]],
                              f"{label}: credit_grant_id of each item")
            if not items:
                continue
            a = items[0]
            self.expect_equal(a.get("subscription_id"), sub["id"], f"{label}: subscription_id")
            self.expect_equal(a.get("application_status"), "pending",
                              f"{label}: application_status")
            self.expect_equal(a.get("credits"), "12.5", f"{label}: credits")
            self.expect_equal(a.get("application_reason"), "first_time_recurring_credit_grant",
                              f"{label}: application_reason (reference §10.1 C)")
            self.expect_time(a.get("scheduled_for"), start, f"{label}: scheduled_for")
            self.expect_time(a.get("period_start"), start, f"{label}: period_start")
            self.report.expect(str(a.get("id", "")).startswith("cga_"),
                               f"{label}: id {a.get('id')!r} is not cga_… (reference §8)")
        self.error("GET", SUBSCRIPTION_UPCOMING, "subs_01NOPE00000000000000000000", status=404,
                   message=MSG_UPCOMING_MISSING, ref="§1 (route 8)")

    def check_update(self, g1, g3):
        """reference §5.1: name, metadata (replaced whole), end_date (runs the delete logic; the
        answer is the grant as it was before that step)."""
        body = {"name": "Renamed credits", "metadata": {"tier": "platinum"}}
        self.own_request(body, "UpdateCreditGrantRequest", "rename a PLAN grant")
        got = self.ok("PUT", GRANT, g1["id"], body=body, what="rename a PLAN grant")
        if got:
            self.update_fields.update(body)
            self.expect_equal(got.get("name"), "Renamed credits", "rename a PLAN grant: name")
            self.expect_equal(got.get("metadata"), {"tier": "platinum"},
                              "rename a PLAN grant: metadata replaced whole (reference §5.1)")
            self.expect_equal(got.get("status"), "published", "rename a PLAN grant: status")
        again = self.grant(g1["id"], "read the renamed grant")
        if again:
            self.expect_equal((again.get("name"), again.get("metadata")),
                              ("Renamed credits", {"tier": "platinum"}),
                              "read the renamed grant: name and metadata kept")

        new_end = self.sub_grant_start + 60 * DAY_NS
        body = {"end_date": rfc3339(new_end)}
        self.own_request(body, "UpdateCreditGrantRequest", "end a SUBSCRIPTION grant earlier")
        got = self.ok("PUT", GRANT, g3["id"], body=body, what="end a SUBSCRIPTION grant earlier")
        if got:
            self.update_fields.update(body)
            self.expect_time(got.get("end_date"), to_ns(g3["end_date"]),
                             "end a SUBSCRIPTION grant earlier: the answer's end_date is the one "
                             "before the update (reference §5.1 quirk)")
        again = self.grant(g3["id"], "read the SUBSCRIPTION grant after PUT end_date")
        if again:
            self.expect_time(again.get("end_date"), new_end,
                             "read the SUBSCRIPTION grant after PUT end_date: end_date")
            self.expect_equal(again.get("status"), "published",
                              "read the SUBSCRIPTION grant after PUT end_date: status (§5.2)")

        self.error("PUT", GRANT, g1["id"], body={"name": ""}, status=400, message=MSG_NAME,
                   ref="§5.1")
        self.error("PUT", GRANT, g3["id"],
                   body={"end_date": rfc3339(to_ns(g3["created_at"]) - 10 * DAY_NS)},
                   status=400, message=MSG_END_DATE, ref="§5.1")

    def check_delete(self, plan_b, g2, g3):
        """reference §5.2: a PLAN grant is archived; a SUBSCRIPTION grant gets end_date :=
        effective_date and stays published; an archived grant cannot be deleted again."""
        got = self.ok("DELETE", GRANT, g2["id"], what="delete a PLAN grant")
        if got:
            self.expect_equal(got, {"message": MSG_DELETED}, "delete a PLAN grant: answer")
        again = self.grant(g2["id"], "read the deleted PLAN grant (reference §5.3: any status)")
        if again:
            self.expect_equal(again.get("status"), "archived",
                              "read the deleted PLAN grant: status (reference §5.2)")
        body = self.ok("GET", PLAN_GRANTS, plan_b["id"], what="plan B's grants after delete")
        if body:
            self.expect_equal(ids_of(body), [], "plan B's grants after delete: archived left out")
        self.error("DELETE", GRANT, g2["id"], status=400, message=MSG_ARCHIVED, ref="§5.2, §7.1",
                   details={"credit_grant_id": g2["id"], "status": "archived"})

        effective = self.sub_grant_start + 30 * DAY_NS
        body = {"effective_date": rfc3339(effective)}
        self.own_request(body, "DeleteCreditGrantRequest", "delete a SUBSCRIPTION grant")
        got = self.ok("DELETE", GRANT, g3["id"], body=body, what="delete a SUBSCRIPTION grant")
        if got:
            self.expect_equal(got, {"message": MSG_DELETED}, "delete a SUBSCRIPTION grant: answer")
        again = self.grant(g3["id"], "read the deleted SUBSCRIPTION grant")
        if again:
            self.expect_time(again.get("end_date"), effective,
                             "read the deleted SUBSCRIPTION grant: end_date = effective_date")
            self.expect_equal(again.get("status"), "published",
                              "read the deleted SUBSCRIPTION grant: status stays published")

    def list_grants(self, query, what):
        body = self.ok("GET", GRANTS, query=query, what=what)
        if body is not None:
            self.list_params.update(k for k, _ in query)
        return body

    def check_list(self, plan_a, plan_b, plan_c, sub, g1, g2, g3, g4):
        """reference §5.3. The world holds g1 (PLAN, plan A), g2 (PLAN, plan B, archived), g3
        (SUBSCRIPTION, plan C as provenance), and g4 (ADDON) when an addon could be made."""
        made = [g for g in (g1, g2, g3, g4) if g]
        newest_first = [g["id"] for g in reversed(made)]

        def expect_ids(query, want, what, ordered=False):
            body = self.list_grants(query, what)
            if body is None:
                return None
            got = ids_of(body)
            if not ordered:
                got, want = sorted(got), sorted(want)
            self.expect_equal(got, want, f"{what}: items")
            return body

        body = expect_ids([], newest_first, "list, no parameters (published + archived, newest "
                          "first: reference §5.3)", ordered=True)
        # The names as they are now (one was renamed), for the sort by name below.
        name = {g["id"]: g["name"] for g in made}
        if body:
            self.expect_equal(body.get("pagination"),
                              {"total": len(made), "limit": 50, "offset": 50},
                              "list, no parameters: pagination (offset quirk, reference §5.3)")
            name.update({g.get("id"): g.get("name") for g in body.get("items") or []})
        expect_ids([("plan_ids", plan_a["id"])], [g1["id"]], "list plan_ids=plan A")
        expect_ids([("plan_ids", plan_a["id"]), ("plan_ids", plan_b["id"])],
                   [g1["id"], g2["id"]], "list plan_ids repeated (explode: true)")
        expect_ids([("plan_ids", plan_c["id"])], [g3["id"]],
                   "list plan_ids=plan C (plan_id kept as provenance, reference §4.1)")
        expect_ids([("subscription_ids", sub["id"])], [g3["id"]], "list subscription_ids")
        expect_ids([("credit_grant_ids", g1["id"]), ("credit_grant_ids", g3["id"])],
                   [g1["id"], g3["id"]], "list credit_grant_ids")
        expect_ids([("addon_ids", "addon_01NOPE000000000000000000")], [],
                   "list addon_ids of an addon without grants")
        if g4:
            expect_ids([("addon_ids", g4["addon_id"])], [g4["id"]], "list addon_ids")
        expect_ids([("scope", "PLAN")], [g1["id"], g2["id"]], "list scope=PLAN")
        expect_ids([("scope", "SUBSCRIPTION")], [g3["id"]], "list scope=SUBSCRIPTION")
        expect_ids([("status", "archived")], [g2["id"]], "list status=archived")
        expect_ids([("status", "published")], [g["id"] for g in made if g is not g2],
                   "list status=published")
        # created_at is read back from a GET, which is what the list compares with.
        read = self.grant(g2["id"], "read g2's created_at")
        if read:
            at = read["created_at"]
            expect_ids([("start_time", at), ("end_time", at)], [g2["id"]],
                       "list start_time = end_time = g2's created_at")
            expect_ids([("start_time", at)], [g["id"] for g in made[1:]],
                       "list start_time = g2's created_at")
            expect_ids([("end_time", at)], [g1["id"], g2["id"]],
                       "list end_time = g2's created_at")
        body = expect_ids([("order", "asc"), ("limit", "1"), ("offset", "1")], [g2["id"]],
                          "list order=asc limit=1 offset=1", ordered=True)
        if body:
            self.expect_equal(body.get("pagination"),
                              {"total": len(made), "limit": 1, "offset": 2},
                              "list limit=1 offset=1: pagination (offset = offset + limit)")
        expect_ids([("sort", "name"), ("order", "asc")],
                   sorted((g["id"] for g in made), key=lambda i: name[i]),
                   "list sort=name order=asc", ordered=True)
        expect_ids([("expand", "credit_grant")], newest_first,
                   "list expand=credit_grant (accepted, unused)", ordered=True)
        body = expect_ids([("limit", "0")], newest_first,
                          "list limit=0 (no limit; reference §5.3, [inferred] in §14)",
                          ordered=True)
        if body:
            self.expect_equal(body.get("pagination"),
                              {"total": len(made), "limit": 0, "offset": 0},
                              "list limit=0: pagination")

        self.error("GET", GRANTS, query=[("limit", "ten")], status=400, message=MSG_BAD_FILTER,
                   ref="§5.3 (limit: \"A non-integer gives 400 Invalid filter parameters\")")
        self.error("GET", GRANTS, query=[("start_time", "yesterday")], status=400,
                   message=MSG_BAD_FILTER,
                   ref="§5.3 (start_time: \"bad format gives 400 Invalid filter parameters\")")
        # reference §5.3: an unknown sort column is an SQL error, "Expected result: ... 500 (not
        # run)"; the reference gives no message, so only the status and shape are checked here.
        answer, shown = self.send("GET", GRANTS, query=[("sort", "no_such_column")])
        self.report.expect(answer.status == 500,
                           f"{shown}: answered {answer.status}; reference §5.3 expects 500")
        schema = self.spec.response_schema("GET", GRANTS, 500)
        self.conforms(answer.body, schema, f"{shown}: 500 body vs {self.schema_name(schema)}")

    def check_unknown_ids(self):
        """reference §7.1, §5.1, §5.2: an unknown grant id is 404 `Credit grant not found` with
        details {id}, for GET, PUT and DELETE alike."""
        nope = "cg_01NOPE000000000000000000000"
        for method, body in (("GET", None), ("PUT", {"name": "x"}), ("DELETE", None)):
            self.error(method, GRANT, nope, body=body, status=404, message=MSG_GRANT_MISSING,
                       ref="§7.1, §5.1, §5.2", details={"id": nope})

    # -- coverage -------------------------------------------------------------------------

    def check_coverage(self):
        for method, path in self.operations():
            self.report.expect(
                (method, path) in self.report.answered,
                f"{method} {path} was never answered with its documented success status "
                f"{self.success_status(method, path)}",
            )
        for schema, sent, where in (("CreateCreditGrantRequest", self.create_fields, "201"),
                                    ("UpdateCreditGrantRequest", self.update_fields, "200")):
            for prop in self.component(schema)["properties"]:
                if prop == "addon_id" and self.addon_refusal and prop not in sent:
                    # The emulator does not model addons (README, native API choices): an
                    # `addon_id` is checked and then refused as naming no addon, which
                    # `check_create_errors` asserts.
                    self.notes.add(f"{schema}.{prop}: only its refusal is checked (it needs an "
                                   f"existing addon, reference §4.1; {self.addon_refusal})")
                    continue
                self.report.expect(prop in sent,
                                   f"{schema}.{prop} was never sent in a request answered {where}")
        for param in self.spec.operation("GET", GRANTS).get("parameters", []):
            self.report.expect(param["name"] in self.list_params,
                               f"GET {GRANTS} query parameter `{param['name']}` was never sent in "
                               f"a request answered 200")


def main(argv):
    if len(argv) != 3:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    run = Conformance(argv[1], argv[2])
    try:
        run.run()
    finally:
        run.check_coverage()
    for note in sorted(run.notes):
        print(f"note: {note}")
    return 0 if run.report.summary() else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
