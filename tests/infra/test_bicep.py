"""The Bicep under infra/ parses, wires its modules correctly, and deploys what the README's "Deploy to Azure" promises:
exactly the settings galsync reads, keyless access, least-privilege roles, the azd service and outputs."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from bench.bicep_values import FleetSettings
from sync_core.settings import SETTING_NAMES, SPECS, spec
from tests.infra.bicep_tree import BICEP_FILES, INFRA, ROOT, body, key_name, parse, strings

# App settings the platform reads, not galsync: each is in Bicep for the reason given.
PLATFORM_SETTINGS = {
    "AzureWebJobsStorage__credential": "host storage with the identity, not a connection string",
    "AzureWebJobsStorage__clientId": "which identity: the user-assigned one",
    "AzureWebJobsStorage__blobServiceUri": "host keys and timer leases live in blob storage",
    "AzureWebJobsStorage__queueServiceUri": "the sync-source and push-targets queue triggers",
    "AzureWebJobsStorage__tableServiceUri": "table endpoint of the identity-based host connection",
    "APPLICATIONINSIGHTS_CONNECTION_STRING": "where telemetry goes; no secret with local auth off",
    "APPLICATIONINSIGHTS_AUTHENTICATION_STRING": "telemetry sent with the identity's Entra token",
    "PYTHON_THREADPOOL_THREAD_COUNT": "a thread for every queue message an instance holds (host.json)",
}

# galsync settings Bicep derives from the deployment instead of taking them as parameters. (The client
# secret and certificate are parameters, but their values go to Key Vault: the settings are references.)
DERIVED_SETTINGS = {
    "GALSYNC_WEBHOOK_KEY": "a Key Vault reference to the key the postdeploy hook stores",
    "GALSYNC_MANAGED_IDENTITY_CLIENT_ID": "the deployed user-assigned identity",
    "GALSYNC_STATE": "always table: in Azure",
    "GALSYNC_TABLES_URI": "the deployed storage account",
    "GALSYNC_STORAGE_CONNECTION_STRING": "always empty: keyless",
    "GALSYNC_GRAPH_CA_BUNDLE": "always empty: only the local emulator needs it",
    "GALSYNC_WEBHOOK_BASE_URL": "the function app's host name",
    "GALSYNC_MAX_CONCURRENCY": "the fleet's budget of calls in flight shared among its instances",
    "GALSYNC_TARGETS_PER_MESSAGE": "an instance's calls shared among the messages it runs at once",
    "GALSYNC_WRITES_PER_MESSAGE": "3,000 writes for each mailbox of a message",
}

# azd variables named GALSYNC_* that feed the deployment only: galsync never reads them (not app settings).
DEPLOYMENT_VARIABLES = {
    "GALSYNC_ALERT_EMAIL": "where the alerts go (infra/monitoring/alerts.bicep)",
    "GALSYNC_NO_SYNC_ALERT_MINUTES": "the no-sync alert's threshold",
    "GALSYNC_FLEET_CALLS_IN_FLIGHT": "Graph calls in flight for all instances together (docs/performance.md)",
}

ROLE_IDS = {
    "b7e6dc6d-f1e8-4753-8033-0f276bb0955b": "Storage Blob Data Owner",
    "974c5e8b-45b9-4653-ba55-5f855dd0fb88": "Storage Queue Data Contributor",
    "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3": "Storage Table Data Contributor",
    "3913510d-42f4-4e42-8a64-420c390055eb": "Monitoring Metrics Publisher",
    "4633458b-17de-408a-b874-0445c86b69e6": "Key Vault Secrets User",
    "b86a8fe4-44ce-4948-aee5-eccb2c155cd7": "Key Vault Secrets Officer",
}

KEY_VAULT_REFERENCE = re.compile(r"^@Microsoft\.KeyVault\(SecretUri=\$\{secretsUri\}/[a-z-]+/\)$")
PARAMETER_FROM_ENV = re.compile(r"^\$\{([A-Z_]+)(?:=(.*))?\}$")


def resources(bicep: dict[str, dict[str, Any]], resource_type: str) -> list[tuple[str, str, dict[str, Any]]]:
    """(file, symbolic name, body) of every declared (not `existing`) resource of one type."""
    return [
        (file, name, body(resource))
        for file, tree in bicep.items()
        for name, resource in tree.get("resources", {}).items()
        if resource["type"] == resource_type and not resource["existing"]
    ]


def app_settings(bicep: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The one app settings declaration (a sites/config 'appsettings' resource) as name -> expression."""
    declared = [b for _, _, b in resources(bicep, "Microsoft.Web/sites/config") if b["name"] == "appsettings"]
    inline = [
        b for _, _, b in resources(bicep, "Microsoft.Web/sites")
        if "appSettings" in b.get("properties", {}).get("siteConfig", {})
    ]
    assert len(declared) == 1 and not inline, "app settings must be declared once, in a sites/config resource"
    return {key_name(k): v for k, v in declared[0]["properties"].items()}


def parameters_file() -> dict[str, str]:
    """main.parameters.json as parameter -> the azd expression that fills it."""
    document = json.loads((INFRA / "main.parameters.json").read_text())
    return {name: entry["value"] for name, entry in document["parameters"].items()}


def test_infra_has_the_entry_point_and_its_modules() -> None:
    names = {path.relative_to(INFRA).as_posix() for path in BICEP_FILES}
    assert {"main.bicep", "app/function-app.bicep", "app/rbac.bicep", "core/storage.bicep"} <= names


@pytest.mark.parametrize("path", BICEP_FILES, ids=lambda p: p.relative_to(INFRA).as_posix())
def test_every_bicep_file_parses(path: Path) -> None:
    tree = parse(path)
    assert tree.get("resources") or tree.get("modules"), f"{path} declares nothing"


def test_modules_exist_and_get_exactly_the_parameters_they_declare(bicep: dict[str, dict[str, Any]]) -> None:
    problems: list[str] = []
    for file, tree in bicep.items():
        for name, module in tree.get("modules", {}).items():
            assert module["type"] == "local", f"{file}: module {name} is not a local file (no br/public:)"
            target = (INFRA / file).parent / module["detail"]["path"]
            if not target.exists():
                problems.append(f"{file}: module {name} -> missing {target.relative_to(INFRA)}")
                continue
            declared = parse(target).get("parameters", {})
            passed = set(body(module).get("params", {}))
            required = {p for p, d in declared.items() if d.get("default") is None}
            problems += [f"{file}: module {name} passes unknown {p}" for p in sorted(passed - set(declared))]
            problems += [f"{file}: module {name} misses required {p}" for p in sorted(required - passed)]
    assert not problems, "\n".join(problems)


def test_app_settings_are_exactly_the_settings_galsync_reads_plus_the_platform_ones(
    bicep: dict[str, dict[str, Any]],
) -> None:
    declared = set(app_settings(bicep))
    expected = set(SETTING_NAMES) | set(PLATFORM_SETTINGS)
    assert sorted(expected - declared) == [], "settings galsync reads but Bicep does not set"
    assert sorted(declared - expected) == [], "settings Bicep sets but nothing reads (stale or unlisted)"


def test_secret_settings_are_key_vault_references_or_empty(bicep: dict[str, dict[str, Any]]) -> None:
    settings = app_settings(bicep)
    for s in (s for s in SPECS if s.secret):
        expression = settings[s.name]
        if isinstance(expression, dict):  # `(condition) ? reference : ''`
            operator = expression["operator"]
            assert operator["type"] == "conditional", f"{s.name} is computed, not a reference"
            values = [operator["operands"]["true_value"], operator["operands"]["false_value"]]
        else:
            values = [expression]
        for value in values:
            assert value == "" or KEY_VAULT_REFERENCE.match(value), f"{s.name} = {value!r}"
    assert KEY_VAULT_REFERENCE.match(settings["GALSYNC_WEBHOOK_KEY"]), "the webhook key is in Key Vault"


def test_the_deployment_is_keyless(bicep: dict[str, dict[str, Any]]) -> None:
    settings = app_settings(bicep)
    assert "AzureWebJobsStorage" not in settings and "APPINSIGHTS_INSTRUMENTATIONKEY" not in settings
    assert settings["AzureWebJobsStorage__credential"] == "managedidentity"
    assert settings["GALSYNC_STORAGE_CONNECTION_STRING"] == ""
    assert settings["GALSYNC_STATE"] == "table:"
    (_, _, storage), = resources(bicep, "Microsoft.Storage/storageAccounts")
    assert storage["properties"]["allowSharedKeyAccess"] is False
    assert storage["properties"]["allowBlobPublicAccess"] is False
    assert storage["properties"]["minimumTlsVersion"] == "TLS1_2"
    assert storage["properties"]["supportsHttpsTrafficOnly"] is True
    (_, _, insights), = resources(bicep, "Microsoft.Insights/components")
    assert insights["properties"]["DisableLocalAuth"] is True
    policies = resources(bicep, "Microsoft.Web/sites/basicPublishingCredentialsPolicies")
    assert {b["name"]: b["properties"]["allow"] for _, _, b in policies} == {"scm": False, "ftp": False}
    (_, _, vault), = resources(bicep, "Microsoft.KeyVault/vaults")
    assert vault["properties"]["enableRbacAuthorization"] is True
    assert vault["properties"]["enablePurgeProtection"] is True
    assert vault["properties"]["enableSoftDelete"] is True
    for file in BICEP_FILES:
        assert "listKeys(" not in file.read_text(), f"{file} reads an account key"


def test_the_identity_holds_exactly_these_roles_each_on_one_resource(
    bicep: dict[str, dict[str, Any]],
) -> None:
    granted: set[tuple[str, str]] = set()
    for file, name, assignment in resources(bicep, "Microsoft.Authorization/roleAssignments"):
        tree = bicep[file]
        assert "scope" in assignment, f"{file}: {name} would apply to the whole resource group"
        scope_type = tree["resources"][assignment["scope"]]["type"]
        role_id = assignment["properties"]["roleDefinitionId"]["function"]["parameters"]
        role_variable = role_id["resource_name_1"]
        role = ROLE_IDS[tree["variables"][role_variable]["value"]]
        if assignment["properties"]["principalId"] == "identityPrincipalId":
            granted.add((scope_type, role))
        else:
            assert (scope_type, role) == ("Microsoft.KeyVault/vaults", "Key Vault Secrets Officer"), name
    assert granted == {
        ("Microsoft.Storage/storageAccounts", "Storage Blob Data Owner"),
        ("Microsoft.Storage/storageAccounts", "Storage Queue Data Contributor"),
        ("Microsoft.Storage/storageAccounts", "Storage Table Data Contributor"),
        ("Microsoft.Insights/components", "Monitoring Metrics Publisher"),
        ("Microsoft.KeyVault/vaults", "Key Vault Secrets User"),
    }


def test_parameters_come_from_azd_variables_named_like_the_settings(bicep: dict[str, dict[str, Any]]) -> None:
    main = bicep["main.bicep"]["parameters"]
    from_env = parameters_file()
    assert set(from_env) <= set(main), "main.parameters.json fills parameters main.bicep lacks"
    required = {p for p, d in main.items() if d.get("default") is None}
    assert required <= set(from_env), "main.bicep parameters without a default that azd does not fill"
    mapped: set[str] = set()
    for parameter, value in from_env.items():
        match = PARAMETER_FROM_ENV.match(value)
        assert match, f"{parameter}: {value!r} is not ${{VARIABLE}} or ${{VARIABLE=default}}"
        variable, default = match.groups()
        if not variable.startswith("GALSYNC_") or variable in DEPLOYMENT_VARIABLES:
            assert variable not in SETTING_NAMES, f"{variable} is a setting; it must become an app setting"
            continue
        assert variable in SETTING_NAMES, f"{parameter} reads {variable}, which galsync does not have"
        assert default == spec(variable).default, f"{variable}: default {default!r} in main.parameters.json"
        assert main[parameter]["default"] == spec(variable).default, f"{parameter}: default in main.bicep"
        mapped.add(variable)
    assert set(SETTING_NAMES) - mapped == set(DERIVED_SETTINGS)


def test_the_function_app_is_flex_consumption_python_with_the_user_assigned_identity(
    bicep: dict[str, dict[str, Any]],
) -> None:
    (_, _, plan), = resources(bicep, "Microsoft.Web/serverfarms")
    assert plan["sku"] == {"tier": "FlexConsumption", "name": "FC1"}
    assert plan["properties"]["reserved"] is True
    (_, _, site), = resources(bicep, "Microsoft.Web/sites")
    assert site["kind"] == "functionapp,linux" and site["identity"]["type"] == "UserAssigned"
    config = site["properties"]["functionAppConfig"]
    assert config["runtime"] == {"name": "python", "version": "3.11"}
    assert config["deployment"]["storage"]["authentication"]["type"] == "UserAssignedIdentity"
    assert site["properties"]["keyVaultReferenceIdentity"] == "identityId"
    assert site["properties"]["httpsOnly"] is True
    service_tag = site["tags"]["function"]["parameters"]["arg_2"]["'azd-service-name'"]
    services = yaml.safe_load((ROOT / "azure.yaml").read_text())["services"]
    assert services == {service_tag: {"project": ".", "language": "python", "host": "function"}}


def test_azd_runs_the_postdeploy_hook_that_exists() -> None:
    hooks = yaml.safe_load((ROOT / "azure.yaml").read_text())["hooks"]
    script = ROOT / hooks["postdeploy"]["posix"]["run"]
    assert script.is_file() and os.access(script, os.X_OK)


def test_the_queues_the_function_app_reads_exist(bicep: dict[str, dict[str, Any]]) -> None:
    queues = bicep["core/storage.bicep"]["variables"]["queueNames"]["value"]
    assert sorted(queues) == ["push-targets", "push-targets-poison", "reconcile-targets", "reconcile-targets-poison",
                              "sync-source", "sync-source-poison"]


def test_outputs_name_the_app_and_its_urls_without_the_key(bicep: dict[str, dict[str, Any]]) -> None:
    outputs = bicep["main.bicep"]["outputs"]
    assert {"AZURE_FUNCTION_APP_NAME", "AZURE_STORAGE_ACCOUNT_NAME", "AZURE_KEY_VAULT_NAME",
            "AZURE_MANAGED_IDENTITY_CLIENT_ID", "AZURE_MANAGED_IDENTITY_PRINCIPAL_ID"} <= set(outputs)
    assert outputs["GALSYNC_NOTIFICATION_URL"]["value"].endswith("/api/notifications")
    assert outputs["GALSYNC_LIFECYCLE_URL"]["value"].endswith("/api/lifecycle")
    for name, output in outputs.items():
        leaves = " ".join(strings(output["value"])).lower()
        assert "code=" not in leaves and "webhookkey" not in leaves and "secret" not in leaves, name


def test_the_webhook_can_have_always_ready_instances_off_by_default(bicep: dict[str, dict[str, Any]]) -> None:
    (_, _, site), = resources(bicep, "Microsoft.Web/sites")
    scale = site["properties"]["functionAppConfig"]["scaleAndConcurrency"]
    operands = scale["alwaysReady"]["operator"]["operands"]
    assert operands["condition"]["operator"]["operands"] == {"operand_1": "httpAlwaysReadyInstances", "operand_2": 0}
    # Flex Consumption calls the group of all HTTP functions 'http'; an empty list means none always ready.
    assert operands["true_value"] == [{"name": "http", "instanceCount": "httpAlwaysReadyInstances"}]
    assert operands["false_value"] == []
    main = bicep["main.bicep"]["parameters"]["httpAlwaysReadyInstances"]
    assert main["default"] == 0, "a warm instance is billed around the clock: the admin opts in"
    assert parameters_file()["httpAlwaysReadyInstances"] == "${AZURE_HTTP_ALWAYS_READY=0}"


def test_the_instance_limit_follows_flex_consumption_limits(bicep: dict[str, dict[str, Any]]) -> None:
    limit = bicep["main.bicep"]["parameters"]["maximumInstanceCount"]
    bounds = {d["type"]: d["argument"] for d in limit["decorators"] if d["type"] in ("min_value", "max_value")}
    # 10 instances share the fleet's budget of Graph calls; more would only share the same rate.
    assert bounds == {"min_value": 1, "max_value": 1000} and limit["default"] == 10
    assert parameters_file()["maximumInstanceCount"] == "${AZURE_MAXIMUM_INSTANCE_COUNT=10}"


@pytest.mark.parametrize(("budget", "instances"), [(418, 10), (126, 10), (126, 3), (1_000, 7), (5, 10)])
def test_each_instance_gets_its_share_of_the_fleets_graph_calls(
    bicep: dict[str, dict[str, Any]], budget: int, instances: int,
) -> None:
    """However far Flex scales, instances x GALSYNC_MAX_CONCURRENCY stays within the fleet's budget: the
    per-instance cap is the budget divided (rounded down) by the most instances, never a fixed number."""
    deployed = FleetSettings({"fleetCallsInFlight": budget, "maximumInstanceCount": instances},
                             main=bicep["main.bicep"], app=bicep["app/function-app.bicep"])
    calls = deployed.setting("GALSYNC_MAX_CONCURRENCY")
    assert calls == max(1, budget // instances)
    assert calls * instances <= budget or calls == 1
    main = bicep["main.bicep"]
    assert body(main["modules"]["api"])["params"]["fleetCallsInFlight"] == "fleetCallsInFlight"
    assert parameters_file()["fleetCallsInFlight"] == "${GALSYNC_FLEET_CALLS_IN_FLIGHT=418}"
    assert main["parameters"]["fleetCallsInFlight"]["default"] == 418


def test_every_queue_message_an_instance_holds_has_a_worker_thread(bicep: dict[str, dict[str, Any]]) -> None:
    queues = json.loads((ROOT / "host.json").read_text())["extensions"]["queues"]
    deployed = FleetSettings(main=bicep["main.bicep"], app=bicep["app/function-app.bicep"])
    threads = deployed.setting("PYTHON_THREADPOOL_THREAD_COUNT")
    assert threads == queues["batchSize"] + queues["newBatchThreshold"] == deployed.variable("messagesPerInstance")
