"""The alert rules and the workbook query what galsync emits, and nothing else: the galsync.run and
galsync.subscription records' names and fields (sync_core/service/telemetry.py), their kinds, outcomes and
resource kinds, the log lines they match, and the function names the requests carry. A record renamed in
the code fails here instead of silencing an alert or emptying a tile."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any

import pytest

from sync_core.service.telemetry import (
    OUTCOMES,
    RECORD_FIELDS,
    RESOURCE_KINDS,
    RUN_KINDS,
    RUN_RECORD,
    SUBSCRIPTION_FIELDS,
    SUBSCRIPTION_RECORD,
)
from tests.infra.bicep_tree import INFRA, ROOT, body

MONITORING = INFRA / "monitoring"
QUERY_FILES = sorted((MONITORING / "queries").glob("*.kql"))
WORKBOOK = json.loads((MONITORING / "workbook.json").read_text())


def workbook_queries() -> dict[str, str]:
    return {item["name"]: item["content"]["query"] for item in WORKBOOK["items"] if item["type"] == 3}


def all_queries() -> dict[str, str]:
    return {**{p.name: p.read_text() for p in QUERY_FILES}, **workbook_queries()}


def function_names() -> set[str]:
    tree = ast.parse((ROOT / "function_app.py").read_text())
    return {d.args[0].value for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)
            for d in node.decorator_list if isinstance(d, ast.Call) and getattr(d.func, "attr", "") == "function_name"
            and isinstance(d.args[0], ast.Constant)}


def log_formats() -> list[str]:
    """Every format string of a log call in the deployed code, its %-placeholders cut out."""
    found: list[str] = []
    for path in [ROOT / "function_app.py", *(ROOT / "sync_core").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Call) and getattr(node.func, "attr", "") in ("info", "warning", "error")
                    and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
                found.append(node.args[0].value)
    return found


@pytest.mark.parametrize("name", sorted(all_queries()))
def test_queries_read_the_run_record_as_the_code_writes_it(name: str) -> None:
    query = all_queries()[name]
    if "galsync.run" not in query:
        return
    assert f'message startswith "{RUN_RECORD} "' in query
    assert f"parse_json(substring(message, {len(RUN_RECORD) + 1}))" in query
    fields = set(re.findall(r"\brun\.(\w+)", query))
    unknown = fields - set(RECORD_FIELDS)
    assert fields and not unknown, f"{name}: fields the record does not have: {unknown}"
    for column, allowed in (("kind", RUN_KINDS), ("outcome", OUTCOMES)):
        for match in re.finditer(rf"\b{column}\s*(?:==\s*\"(\w+)\"|in\s*\(([^)]*)\))", query):
            values = [match.group(1)] if match.group(1) else re.findall(r'"(\w+)"', match.group(2))
            assert set(values) <= set(allowed), f"{name}: {column} {values} is not one galsync writes"


@pytest.mark.parametrize("name", sorted(all_queries()))
def test_queries_read_the_subscription_record_as_the_code_writes_it(name: str) -> None:
    query = all_queries()[name]
    if SUBSCRIPTION_RECORD not in query:
        return
    assert f'message startswith "{SUBSCRIPTION_RECORD} "' in query
    assert f"parse_json(substring(message, {len(SUBSCRIPTION_RECORD) + 1}))" in query
    fields = set(re.findall(r"\bsub\.(\w+)", query))
    unknown = fields - set(SUBSCRIPTION_FIELDS)
    assert fields and not unknown, f"{name}: fields the record does not have: {unknown}"
    for match in re.finditer(r'\bresource_kind\s*(?:==\s*"([\w-]+)"|in\s*\(([^)]*)\))', query):
        values = [match.group(1)] if match.group(1) else re.findall(r'"([\w-]+)"', match.group(2))
        assert set(values) <= set(RESOURCE_KINDS), f"{name}: resource kind {values} is not one galsync writes"


@pytest.mark.parametrize("name", sorted(all_queries()))
def test_log_lines_and_function_names_the_queries_match_are_emitted(name: str) -> None:
    query = all_queries()[name]
    formats = log_formats()
    for phrase in re.findall(r'message (?:startswith|has) "([^"]+)"', query):
        if phrase in (RUN_RECORD + " ", SUBSCRIPTION_RECORD + " "):
            continue
        assert any(phrase in f for f in formats), f"{name}: no log call writes {phrase!r}"
    for match in re.finditer(r"operation_Name in \(([^)]*)\)", query):
        names = set(re.findall(r'"(\w+)"', match.group(1)))
        assert names and names <= function_names(), f"{name}: no such function: {names - function_names()}"


def test_every_alert_query_is_used_and_says_what_to_do(bicep: dict[str, dict[str, Any]]) -> None:
    rules = bicep["monitoring/alerts.bicep"]["variables"]["rules"]["value"]
    used = {json.dumps(rule["query"]) for rule in rules}
    assert {p.name for p in QUERY_FILES} == {p.name for p in QUERY_FILES if any(p.name in u for u in used)}
    assert {rule["name"] for rule in rules} == {"failed-runs", "no-sync", "poison", "subscriptions", "webhook",
                                               "resyncs"}
    looks = bicep["monitoring/alerts.bicep"]["variables"]["look"]["value"]
    for rule in rules:
        text = rule["text"].replace("${look}", looks)
        assert "galsync doctor" in text or "workbook" in text, rule["name"]


def test_alerts_are_on_and_mail_the_admin(bicep: dict[str, dict[str, Any]]) -> None:
    tree = bicep["monitoring/alerts.bicep"]
    group = body(tree["resources"]["actionGroup"])
    assert group["properties"]["emailReceivers"][0]["emailAddress"] == "alertEmail"
    alert = body(tree["resources"]["alerts"])
    assert alert["properties"]["enabled"] is True
    [group_id] = alert["properties"]["actions"]["actionGroups"]
    assert group_id["operator"]["operands"] == {"operand_1": "actionGroup", "operand_2": "id"}
    main = bicep["main.bicep"]
    assert main["parameters"]["alertEmail"].get("default") is None, "azd asks for it when it is not set"
    assert body(main["modules"]["alerts"])["params"]["alertEmail"] == "alertEmail"


def test_the_workbook_is_deployed_with_the_app_and_its_json_parses(bicep: dict[str, dict[str, Any]]) -> None:
    assert WORKBOOK["version"] == "Notebook/1.0"
    assert set(workbook_queries()) >= {"runs-by-outcome", "writes-per-run", "failing-mailboxes", "throttling",
                                       "subscriptions", "webhook", "propagation", "propagation-last-day",
                                       "subscription-expiry"}
    assert any(i["type"] == 10 and "QueueMessageCount" in i["content"]["metrics"][0]["metric"]
               for i in WORKBOOK["items"])
    workbook = body(bicep["monitoring/workbook.bicep"]["resources"]["workbook"])
    assert workbook["kind"] == "shared"
    assert "workbook" in bicep["main.bicep"]["modules"]


def test_traces_are_not_sampled_so_alerts_see_every_record() -> None:
    host = json.loads((ROOT / "host.json").read_text())
    excluded = host["logging"]["applicationInsights"]["samplingSettings"]["excludedTypes"].split(";")
    assert {"Trace", "Request"} <= set(excluded)


def test_the_no_sync_threshold_is_filled_in(bicep: dict[str, dict[str, Any]]) -> None:
    [rule] = [r for r in bicep["monitoring/alerts.bicep"]["variables"]["rules"]["value"] if r["name"] == "no-sync"]
    assert rule["query"]["function"]["parameters"]["old_string"] == "{minutes}"
    assert "{minutes}" in Path(MONITORING / "queries" / "no-sync.kql").read_text()


def test_the_propagation_tiles_read_the_measurement_the_last_push_of_a_notified_sync_carries() -> None:
    for name in ("propagation", "propagation-last-day"):
        query = workbook_queries()[name]
        assert 'kind == "push"' in query and "isnotnull(run.propagation_ms)" in query
        assert "percentile(toint(run.propagation_ms), 50)" in query
        assert "percentile(toint(run.propagation_ms), 95)" in query


def test_the_expiry_tile_shows_each_profiles_soonest_expiry_from_the_latest_subscriptions_run() -> None:
    query = workbook_queries()["subscription-expiry"]
    assert "where run_id == latest" in query  # a subscription deleted since does not linger
    assert "mv-expand profile = sub.profiles" in query
    assert "arg_min(expires_at, " in query and "by profile" in query
