"""What `azd up` would deploy, checked without Azure: the Bicep in infra/ parses, passes checkov,
gives the function app exactly the settings the code reads under either hosting choice, holds no
secret, grants only the intended roles by identity, and declares the function app's authentication.
(test_bicep_types.py checks the same files against Azure's type definitions; test_hooks.py the
scripts azd runs.)

No Bicep compiler runs here. Structure is read with pycep (the parser checkov itself uses) and,
where a literal must be told from a reference, with tests/infra/bicep_ast.py.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator

import pytest
from pycep import BicepParser

from shared.settings import SETTING_NAMES, load_settings
from tests.infra import bicep_ast as ast

REPO = Path(__file__).resolve().parents[2]
INFRA = REPO / "infra"
BICEP_FILES = sorted(INFRA.rglob("*.bicep"))
CHECKOV_VERSION = "3.3.30"
CHECKOV_INSTALL = f"python3 -m venv .venv-checkov && .venv-checkov/bin/pip install checkov=={CHECKOV_VERSION}"

#: Settings the code reads that Azure must NOT get: connection strings carry keys and exist only
#: so the app can reach local emulators. In Azure the endpoints plus the managed identity are used.
LOCAL_ONLY_SETTINGS = frozenset({"ACS_CONNECTION_STRING", "TABLES_CONNECTION_STRING"})

#: Settings read by the Functions host itself, not by the app's code: its storage reached by
#: identity (blob for keys, timers and locks; queue for the host's queue use) and telemetry sent
#: with the identity to an Application Insights resource that refuses key-only ingestion.
#: Flex Consumption takes the runtime and version from functionAppConfig, so
#: FUNCTIONS_WORKER_RUNTIME and FUNCTIONS_EXTENSION_VERSION are not app settings there; on the
#: dedicated plan they are, with the remote build switch.
COMMON_HOST_SETTINGS = frozenset(
    {
        "AzureWebJobsStorage__credential",
        "AzureWebJobsStorage__clientId",
        "AzureWebJobsStorage__blobServiceUri",
        "AzureWebJobsStorage__queueServiceUri",
        "APPLICATIONINSIGHTS_CONNECTION_STRING",
        "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
        "PYTHON_ENABLE_OPENTELEMETRY",  # the worker's half of host.json's OpenTelemetry mode
    }
)
HOST_SETTINGS = {
    "flex": COMMON_HOST_SETTINGS,
    "dedicated": COMMON_HOST_SETTINGS | {"FUNCTIONS_EXTENSION_VERSION", "FUNCTIONS_WORKER_RUNTIME", "SCM_DO_BUILD_DURING_DEPLOYMENT"},
}
#: The module that hosts the function app for each value of main.bicep's `hosting` parameter.
HOSTING_MODULES = {"dedicated": "app/api-dedicated.bicep", "flex": "app/api-flex.bicep"}

#: The only built-in roles the deployment may grant (ids from the Azure built-in roles list).
GRANTABLE_ROLES = {
    "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3": "Storage Table Data Contributor",
    "b7e6dc6d-f1e8-4753-8033-0f276bb0955b": "Storage Blob Data Owner",
    "974c5e8b-45b9-4653-ba55-5f855dd0fb88": "Storage Queue Data Contributor",
    "3913510d-42f4-4e42-8a64-420c390055eb": "Monitoring Metrics Publisher",
    "b24988ac-6180-42a0-ab88-20f7382dd24c": "Contributor (on the ACS resource only)",
}


@lru_cache(maxsize=None)
def bicep(path: Path) -> dict[str, Any]:
    return BicepParser().parse(file_path=path)


def infra_file(relative: str) -> dict[str, Any]:
    return bicep(INFRA / relative)


def body(resource: dict[str, Any]) -> dict[str, Any]:
    """A resource's declared body; pycep nests it one level deeper under `if (...)`."""
    config = resource["config"]
    return config["config"] if "condition" in config else config


def resources_of_type(resource_type: str) -> Iterator[tuple[Path, str, dict[str, Any]]]:
    """(file, symbolic name, resource with its body under "config") for every declared one."""
    for path in BICEP_FILES:
        for name, resource in bicep(path).get("resources", {}).items():
            if resource["type"].lower() == resource_type.lower() and not resource["existing"]:
                yield path, name, {**resource, "config": body(resource)}


def one_resource(resource_type: str) -> dict[str, Any]:
    found = list(resources_of_type(resource_type))
    assert len(found) == 1, f"expected one {resource_type}, found {[(str(p), n) for p, n, _ in found]}"
    return found[0][2]


def function_app(hosting: str) -> dict[str, Any]:
    found = [r for p, _, r in resources_of_type("Microsoft.Web/sites") if p == INFRA / HOSTING_MODULES[hosting]]
    assert len(found) == 1
    return found[0]


@lru_cache(maxsize=None)
def tree(relative: str) -> ast.BicepFile:
    """The file as tests/infra/bicep_ast.py reads it (literals and references kept apart)."""
    return ast.parse_file(INFRA / relative)


def settings_list(node: Any, file: ast.BicepFile) -> list[ast.Obj]:
    """The {name, value} objects of an appSettings expression: literal lists, variables and concat()."""
    if isinstance(node, ast.Ref) and node.name in file.variables:
        return settings_list(file.variables[node.name].value, file)
    if isinstance(node, ast.Ref) and node.name == "appSettings" and node.name in file.params:
        return settings_list(tree("main.bicep").variables["appSettings"].value, tree("main.bicep"))
    if isinstance(node, ast.Call) and node.name == "concat":
        return [item for arg in node.args for item in settings_list(arg, file)]
    assert isinstance(node, ast.Arr), f"unexpected appSettings expression {node!r}"
    return list(node.items)


def app_settings(hosting: str) -> dict[str, Any]:
    """name -> value expression of every app setting the function app gets under `hosting`."""
    file = tree(HOSTING_MODULES[hosting])
    site = next(d for d in file.resources.values() if d.type.startswith("Microsoft.Web/sites@"))
    items = settings_list(site.body.get("properties").get("siteConfig").get("appSettings"), file)
    names = [item.get("name").value for item in items]
    assert len(names) == len(set(names)), f"a setting is set twice: {names}"
    return {item.get("name").value: item.get("value") for item in items}


def accessor(value: Any) -> tuple[str, Any] | None:
    """(`a`, `b`) for a Bicep `a.b` expression as pycep renders it, else None."""
    if isinstance(value, dict) and value.get("operator", {}).get("type") == "property_accessor":
        operands = value["operator"]["operands"]
        return operands["operand_1"], operands["operand_2"]
    return None


# --- the files parse -------------------------------------------------------------------------


def test_infra_has_the_entry_point_and_modules() -> None:
    names = {p.relative_to(INFRA).as_posix() for p in BICEP_FILES}
    assert {"main.bicep", "app/api-dedicated.bicep", "app/api-flex.bicep", "app/api-auth.bicep", "app/link.bicep",
            "app/rbac.bicep", "app/storage.bicep", "app/acs.bicep", "app/monitoring.bicep", "app/web.bicep"} <= names


@pytest.mark.parametrize("path", BICEP_FILES, ids=lambda p: p.relative_to(INFRA).as_posix())
def test_every_bicep_file_parses(path: Path) -> None:
    parsed = bicep(path)
    assert parsed.get("resources") or parsed.get("modules"), f"{path} declares nothing"


def test_modules_are_local_files_not_registry_modules() -> None:
    for path in BICEP_FILES:
        for name, module in bicep(path).get("modules", {}).items():
            assert module["type"] == "local", f"{path}: module {name} comes from a registry"
            assert (path.parent / module["detail"]["path"]).is_file(), f"{path}: module {name} file is missing"


# --- checkov ---------------------------------------------------------------------------------


def checkov_binary() -> Path:
    return Path(os.environ.get("CHECKOV_BIN") or REPO / ".venv-checkov" / "bin" / "checkov")


@pytest.mark.timeout(900)
def test_checkov_finds_nothing_unexplained() -> None:
    """Every failed checkov check is either fixed or skipped beside the resource with a reason
    (`// checkov:skip=CKV_...: reason`), and checkov parsed every file (it exits 0 even when a
    file fails to parse, so the summary is what tells)."""
    binary = checkov_binary()
    if not binary.is_file():
        pytest.fail(f"checkov is not installed at {binary}. Install it (it pins its own pycep, hence its "
                    f"own venv): {CHECKOV_INSTALL}   (or point CHECKOV_BIN at a checkov executable)")
    run = subprocess.run(
        [str(binary), "-d", str(INFRA), "--framework", "bicep", "--skip-download", "-o", "json"],
        cwd=REPO, capture_output=True, text=True, timeout=840,
    )
    try:
        report = json.loads(run.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"checkov printed no JSON (exit {run.returncode}): {run.stderr[-2000:]}")
    reports = report if isinstance(report, list) else [report]
    bicep_reports = [r for r in reports if r.get("check_type") == "bicep"]
    assert bicep_reports, f"checkov scanned no Bicep: {run.stdout[-1000:]}"
    summary = bicep_reports[0]["summary"]
    results = bicep_reports[0]["results"]
    assert summary["parsing_errors"] == 0, f"checkov could not parse: {results.get('parsing_errors')}"
    assert summary["resource_count"] > 0
    # checkov drops a file it cannot make sense of without counting a parsing error, so make
    # sure the resources its Bicep checks apply to were all seen.
    seen = {c["resource"] for key in ("passed_checks", "failed_checks", "skipped_checks") for c in results[key]}
    assert {"Microsoft.Storage/storageAccounts.storage", "Microsoft.Web/sites.functionApp",
            "Microsoft.Web/serverfarms.plan", "Microsoft.Web/sites/config.authentication"} <= seen, f"checkov did not see every resource: {sorted(seen)}"
    failed = [f"{c['check_id']} {c['resource']} ({c['file_path']}): {c['check_name']}" for c in results["failed_checks"]]
    assert not failed, "fix these or skip them beside the resource with a reason:\n" + "\n".join(failed)
    unexplained = [
        f"{c['check_id']} {c['resource']}"
        for c in results["skipped_checks"]
        if len(c["check_result"].get("suppress_comment", "").strip()) < 20
        or c["check_result"]["suppress_comment"] == "No comment provided"
    ]
    assert not unexplained, f"skips need a reason: {unexplained}"


CHECKOV_PARSE_SCRIPT = """
import sys
from pathlib import Path
from pycep import BicepParser
parser = BicepParser()
for name in sys.argv[1:]:
    try:
        parser.parse(file_path=Path(name))
    except Exception as error:
        print(f"{name}: {type(error).__name__}: {str(error)[:300]}")
"""


@pytest.mark.timeout(300)
def test_every_bicep_file_parses_with_the_parser_checkov_pins() -> None:
    """checkov carries an older pycep that rejects some newer Bicep syntax; what it cannot parse
    it does not check, so every file must parse with that version too."""
    python = checkov_binary().parent / "python"
    if not python.is_file():
        pytest.fail(f"no Python beside {checkov_binary()} to run checkov's own parser. Install: {CHECKOV_INSTALL}")
    run = subprocess.run([str(python), "-c", CHECKOV_PARSE_SCRIPT, *map(str, BICEP_FILES)],
                         capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout == "", f"checkov's pycep cannot parse:\n{run.stdout}"


# --- settings --------------------------------------------------------------------------------


@pytest.mark.parametrize("hosting", sorted(HOSTING_MODULES))
def test_function_app_gets_exactly_the_settings_the_code_and_host_read(hosting: str) -> None:
    names = set(app_settings(hosting))
    expected = (SETTING_NAMES - LOCAL_ONLY_SETTINGS) | HOST_SETTINGS[hosting]
    assert names - expected == set(), "set in Bicep but read by nothing"
    assert expected - names == set(), "read by the code or host but never set in Azure"


def test_no_app_setting_lives_outside_the_function_app_resource() -> None:
    # A Microsoft.Web/sites/config 'appsettings' (or 'web') resource would replace the whole list
    # and slip past the check above; the only config resource is the authentication.
    names = [r["config"]["name"] for _, _, r in resources_of_type("Microsoft.Web/sites/config")]
    assert names == ["authsettingsV2"]


def deployed_defaults(hosting: str) -> dict[str, str]:
    """The app settings as main.bicep's parameter defaults make them; values only known at
    deployment (endpoints, ids) become an https placeholder."""
    main = tree("main.bicep")
    env: dict[str, str] = {}
    for name, value in app_settings(hosting).items():
        if isinstance(value, ast.Call) and value.name == "string":
            value = value.args[0]
        if isinstance(value, ast.Ref) and value.name in main.params:
            value = main.params[value.name].value
        if isinstance(value, ast.Lit) and isinstance(value.value, (str, int)) and not isinstance(value.value, bool):
            env[name] = str(value.value)
        else:
            env[name] = "https://known-at-deployment.invalid"
    return env


@pytest.mark.parametrize("hosting", sorted(HOSTING_MODULES))
def test_default_deployment_settings_pass_the_apps_own_validation(hosting: str) -> None:
    env = deployed_defaults(hosting)
    settings = load_settings(env)
    assert settings.acs_endpoint and settings.tables_endpoint
    assert settings.acs_connection_string is None and settings.tables_connection_string is None
    assert settings.identity_table == "acsidentities"
    assert settings.trust_client_principal is True
    assert env["AzureWebJobsStorage__credential"] == "managedidentity"
    assert env["CLEANUP_SCHEDULE"].count(" ") == 5, "the timer needs a six-field NCRONTAB expression"


@pytest.mark.parametrize("hosting", sorted(HOSTING_MODULES))
def test_telemetry_is_sent_with_the_identity_to_a_component_that_refuses_keys(hosting: str) -> None:
    settings = app_settings(hosting)
    assert settings["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"] == ast.Interp(("ClientId=", ast.Ref("identityClientId"), ";Authorization=AAD"))
    assert settings["AzureWebJobsStorage__clientId"] == ast.Ref("identityClientId")
    # The code's AZURE_CLIENT_ID is the same identity, passed from main.bicep.
    assert settings["AZURE_CLIENT_ID"] == ast.Member(ast.Member(ast.Ref("identity"), "outputs"), "clientId")
    component = one_resource("Microsoft.Insights/components")["config"]["properties"]
    assert component["DisableLocalAuth"] is True


# --- no secrets ------------------------------------------------------------------------------

SECRET_PATTERNS = {
    r"\blist[A-Z]\w*\s*\(": "list*() functions read keys or secrets",
    r"AccountKey": "storage account keys",
    r"accesskey\s*=": "ACS access keys",
    r"SharedAccessSignature|\bsig=": "SAS tokens",
    r"@secure\s*\(": "@secure values (a secret passed through the deployment)",
    r"_CONNECTION_STRING\b(?!.*APPLICATIONINSIGHTS)": "connection strings with keys (local emulators only)",
    r"(?i)password|client_?secret": "passwords and client secrets",
}


def infra_text_files() -> list[Path]:
    files = [p for p in INFRA.rglob("*") if p.is_file()]
    return files + [REPO / "azure.yaml"]


@pytest.mark.parametrize("pattern", SECRET_PATTERNS, ids=list(SECRET_PATTERNS.values()))
def test_no_secret_is_created_stored_or_passed(pattern: str) -> None:
    hits = []
    for path in infra_text_files():
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            code = line.split("//", 1)[0] if path.suffix == ".bicep" else line
            if re.search(pattern, code) and "APPLICATIONINSIGHTS_CONNECTION_STRING" not in code:
                hits.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert not hits, f"{SECRET_PATTERNS[pattern]}:\n" + "\n".join(hits)


def test_no_output_is_secret() -> None:
    for path in BICEP_FILES:
        for name, output in bicep(path).get("outputs", {}).items():
            assert not any(d.get("type") == "secure" for d in output["decorators"]), f"{path}: @secure output {name}"
            assert not re.search(r"(?i)key|secret|password|token", name), f"{path}: output {name} looks secret"


# --- roles -----------------------------------------------------------------------------------


def role_assignments() -> list[tuple[Path, str, dict[str, Any]]]:
    return list(resources_of_type("Microsoft.Authorization/roleAssignments"))


def test_every_role_assignment_is_in_the_rbac_module() -> None:
    places = {path.relative_to(INFRA).as_posix() for path, _, _ in role_assignments()}
    assert places == {"app/rbac.bicep"}


def test_role_assignments_are_named_by_scope_principal_and_role() -> None:
    variables = infra_file("app/rbac.bicep")["variables"]
    for _, name, resource in role_assignments():
        config = resource["config"]
        role = config["properties"]["roleDefinitionId"]["function"]
        assert role["type"] == "subscription_resource_id"
        assert role["parameters"]["resource_type"] == "Microsoft.Authorization/roleDefinitions"
        guid = config["name"].get("function", {}) if isinstance(config["name"], dict) else {}
        assert guid.get("type") == "guid", f"{name}: name is not guid(...)"
        scope_id = accessor(guid["parameters"]["base_string"])
        assert scope_id == (config["scope"], "id"), f"{name}: guid() must start with the scope's id"
        assert guid["parameters"]["extra_string_1"] == config["properties"]["principalId"], f"{name}: guid() needs the principal"
        assert guid["parameters"]["extra_string_2"] == role["parameters"]["resource_name_1"], f"{name}: guid() needs the role"
        assert role["parameters"]["resource_name_1"] in variables


def test_only_the_listed_roles_are_granted_and_contributor_only_on_acs() -> None:
    rbac = infra_file("app/rbac.bicep")
    variables, resources = rbac["variables"], rbac["resources"]
    granted: dict[str, set[str]] = {}
    for _, name, resource in role_assignments():
        config = resource["config"]
        role_id = variables[config["properties"]["roleDefinitionId"]["function"]["parameters"]["resource_name_1"]]["value"]
        assert role_id in GRANTABLE_ROLES, f"{name} grants an unlisted role {role_id}"
        scope_type = resources[config["scope"]]["type"]
        granted.setdefault(role_id, set()).add(scope_type)
    assert set(granted) == set(GRANTABLE_ROLES)
    assert granted["b24988ac-6180-42a0-ab88-20f7382dd24c"] == {"Microsoft.Communication/communicationServices"}
    assert granted["0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3"] == {"Microsoft.Storage/storageAccounts/tableServices/tables"}
    assert granted["3913510d-42f4-4e42-8a64-420c390055eb"] == {"Microsoft.Insights/components"}


def test_the_apps_identity_gets_every_role_and_the_user_only_data_roles() -> None:
    rbac = infra_file("app/rbac.bicep")
    variables = rbac["variables"]
    by_principal: dict[str, set[str]] = {}
    for _, _, resource in role_assignments():
        properties = resource["config"]["properties"]
        role_id = variables[properties["roleDefinitionId"]["function"]["parameters"]["resource_name_1"]]["value"]
        by_principal.setdefault(properties["principalId"], set()).add(role_id)
        if properties["principalId"] == "appPrincipalId":
            assert properties["principalType"] == "ServicePrincipal"
    assert by_principal["appPrincipalId"] == set(GRANTABLE_ROLES)
    assert by_principal["userPrincipalId"] == {
        "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3", "b7e6dc6d-f1e8-4753-8033-0f276bb0955b", "974c5e8b-45b9-4653-ba55-5f855dd0fb88"}


# --- the resources' security posture ---------------------------------------------------------


def test_storage_refuses_shared_keys_anonymous_reads_and_old_tls() -> None:
    properties = one_resource("Microsoft.Storage/storageAccounts")["config"]["properties"]
    assert properties["allowSharedKeyAccess"] is False
    assert properties["allowBlobPublicAccess"] is False
    assert properties["minimumTlsVersion"] == "TLS1_2"
    assert properties["supportsHttpsTrafficOnly"] is True
    assert one_resource("Microsoft.Storage/storageAccounts/blobServices/containers")["config"]["properties"]["publicAccess"] == "None"


def test_identity_table_is_created_with_a_valid_default_name() -> None:
    assert one_resource("Microsoft.Storage/storageAccounts/tableServices/tables")["config"]["name"] == "tableName"
    default = infra_file("main.bicep")["parameters"]["identityTableName"]["default"]
    assert default == "acsidentities" and default.isalnum() and default[0].isalpha()


def test_communication_services_refuses_access_keys() -> None:
    acs = one_resource("Microsoft.Communication/communicationServices")
    assert acs["api_version"] == "2025-05-01"
    assert acs["config"]["properties"]["disableLocalAuth"] is True
    assert acs["config"]["properties"]["dataLocation"] == "dataLocation"
    assert infra_file("app/acs.bicep")["outputs"]["endpoint"]["value"] == "https://${communicationService.properties.hostName}"


def test_flex_function_app_runs_python_311_deployed_by_identity() -> None:
    plan = [r for p, _, r in resources_of_type("Microsoft.Web/serverfarms") if p.name == "api-flex.bicep"][0]["config"]
    assert plan["sku"] == {"name": "FC1", "tier": "FlexConsumption"}
    app = function_app("flex")["config"]
    assert app["kind"] == "functionapp,linux"
    assert app["identity"]["type"] == "UserAssigned"
    assert app["properties"]["httpsOnly"] is True
    config = app["properties"]["functionAppConfig"]
    assert config["runtime"] == {"name": "python", "version": "3.11"}
    authentication = config["deployment"]["storage"]["authentication"]
    assert authentication == {"type": "UserAssignedIdentity", "userAssignedIdentityResourceId": "identityId"}
    assert "ftpsState" not in app["properties"]["siteConfig"], "Flex Consumption refuses ftpsState (ARM error 51021)"


def test_dedicated_function_app_runs_python_311_always_on_on_linux() -> None:
    plan = [r for p, _, r in resources_of_type("Microsoft.Web/serverfarms") if p.name == "api-dedicated.bicep"][0]["config"]
    assert plan["kind"] == "linux" and plan["properties"]["reserved"] is True
    app = function_app("dedicated")["config"]
    assert app["kind"] == "functionapp,linux"
    assert app["identity"]["type"] == "UserAssigned"
    assert app["properties"]["httpsOnly"] is True
    site_config = app["properties"]["siteConfig"]
    assert site_config["linuxFxVersion"] == "Python|3.11"
    assert site_config["alwaysOn"] is True, "the cleanup timer needs the host running"
    assert site_config["ftpsState"] == "Disabled"
    assert tree("main.bicep").params["hosting"].value == ast.Lit("dedicated"), "the documented-supported plan is the default"


@pytest.mark.parametrize("module", sorted(HOSTING_MODULES.values()))
def test_basic_publishing_credentials_are_off(module: str) -> None:
    policies = {r["config"]["name"]: r["config"]["properties"]["allow"]
                for p, _, r in resources_of_type("Microsoft.Web/sites/basicPublishingCredentialsPolicies") if p == INFRA / module}
    assert policies == {"ftp": False, "scm": False}


def test_authentication_requires_the_static_web_app_and_answers_401() -> None:
    config = tree("app/api-auth.bicep").resources["authentication"]
    assert config.type == "Microsoft.Web/sites/config@2024-04-01" and config.body.get("name") == ast.Lit("authsettingsV2")
    properties = config.body.get("properties")
    assert properties.get("platform").get("enabled") == ast.Lit(True)
    validation = properties.get("globalValidation")
    assert validation.get("requireAuthentication") == ast.Lit(True)
    assert validation.get("unauthenticatedClientAction") == ast.Lit("Return401")
    providers = properties.get("identityProviders")
    assert providers.keys() == ["azureStaticWebApps"], "only the static web app's provider"
    assert providers.get("azureStaticWebApps").get("registration").get("clientId") == ast.Ref("staticWebAppHostname")
    main = tree("main.bicep").modules
    assert main["apiAuth"].body.get("params").get("staticWebAppHostname") == ast.Member(ast.Member(ast.Ref("web"), "outputs"), "defaultHostname")


def test_the_link_comes_after_the_authentication_on_every_provision() -> None:
    main = tree("main.bicep").modules
    assert main["apiAuth"].condition is None and main["link"].condition is None, "applied on every provision, either hosting"
    assert ast.Ref("apiAuth") in main["link"].body.get("dependsOn").items
    assert {ast.Ref("apiDedicated"), ast.Ref("apiFlex")} <= set(main["apiAuth"].body.get("dependsOn").items)


def test_static_web_app_fronts_the_function_app_as_its_linked_backend() -> None:
    site = one_resource("Microsoft.Web/staticSites")["config"]
    assert site["sku"]["name"] == "Standard", "linked backends need the Standard plan"
    backend = tree("app/link.bicep").resources["backend"]
    assert backend.body.get("parent") == ast.Ref("staticWebApp")
    assert backend.body.get("properties").get("backendResourceId") == ast.Ref("functionAppId")
    link = tree("main.bicep").modules["link"].body.get("params")
    assert link.get("functionAppId") == ast.Ref("apiId")
    assert tree("main.bicep").variables["apiId"].value == ast.Ternary(
        ast.Binary("==", ast.Ref("hosting"), ast.Lit("flex")),
        ast.Member(ast.Member(ast.Ref("apiFlex"), "outputs"), "id"),
        ast.Member(ast.Member(ast.Ref("apiDedicated"), "outputs"), "id"))


def test_no_cross_origin_caller_is_allowed() -> None:
    text = "\n".join(p.read_text(encoding="utf-8") for p in BICEP_FILES)
    assert "allowedOrigins" not in text and "cors" not in re.sub(r"//.*", "", text).lower()


def test_azd_finds_both_services_by_tag_and_gets_its_outputs() -> None:
    tags = {}
    for resource_type in ("Microsoft.Web/sites", "Microsoft.Web/staticSites"):
        for path, _, resource in resources_of_type(resource_type):
            union = resource["config"]["tags"]["function"]
            assert union["type"] == "union" and union["parameters"]["arg_1"] == "tags"
            tags[path.name] = union["parameters"]["arg_2"]["'azd-service-name'"]
    assert tags == {"api-flex.bicep": "api", "api-dedicated.bicep": "api", "web.bicep": "web"}
    outputs = infra_file("main.bicep")["outputs"]
    assert {"AZURE_LOCATION", "AZURE_TENANT_ID", "AZURE_RESOURCE_GROUP", "AZURE_FUNCTION_APP_NAME",
            "SERVICE_API_URI", "SERVICE_WEB_URI", "ACS_ENDPOINT", "TABLES_ENDPOINT"} <= set(outputs)


def test_parameters_file_maps_every_value_to_an_existing_parameter() -> None:
    document = json.loads((INFRA / "main.parameters.json").read_text(encoding="utf-8"))
    main_params = infra_file("main.bicep")["parameters"]
    assert set(document["parameters"]) <= set(main_params)
    for name, entry in document["parameters"].items():
        assert re.fullmatch(r"\$\{[A-Z_]+(=[^}]*)?\}", entry["value"]), f"{name} should come from the azd environment"


# --- azure.yaml ------------------------------------------------------------------------------


def azure_yaml_services() -> dict[str, dict[str, str]]:
    """The `services:` block of azure.yaml (two-level mapping of plain scalars; no YAML library)."""
    services: dict[str, dict[str, str]] = {}
    current: str | None = None
    inside = False
    for line in (REPO / "azure.yaml").read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if not line.startswith(" "):
            inside = line.rstrip() == "services:"
            continue
        if not inside:
            continue
        indent = len(line) - len(line.lstrip())
        key, _, value = line.strip().partition(":")
        if indent == 2:
            current = key
            services[current] = {}
        elif indent == 4 and current:
            services[current][key] = value.strip()
    return services


def test_azure_yaml_deploys_the_function_app_and_the_static_web_app() -> None:
    services = azure_yaml_services()
    assert services["api"] == {"project": ".", "language": "python", "host": "function", "hooks": ""}
    # No language: azd must not `npm install` (install scripts); the web service's own hook builds.
    assert services["web"] == {"project": "web", "host": "staticwebapp", "dist": "dist", "hooks": ""}
    assert set(services) == {"api", "web"}


# --- the README's figures --------------------------------------------------------------------


def deploy_section() -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    start = text.index("## Deploy to Azure")
    return text[start:text.index("\n## ", start + 1)]


def test_readme_cost_figures_are_the_arithmetic_of_the_quoted_prices() -> None:
    section = deploy_section()
    hours = 730  # hours in an average month, as the pricing pages bill
    assert f"US$0.018/hour × {hours} hours" in section and f"US${0.018 * hours:.2f} a month for B1" in section
    seconds = hours * 3600
    memory_gb = 2048 / 1024
    assert f"2 GB × {seconds:,} seconds × US$0.000004 per GB-second = US${memory_gb * seconds * 0.000004:.2f}" in section
    assert f"each always-ready instance US${memory_gb * seconds * 0.000004:.2f} a month" in section


def test_readme_deploy_figures_match_the_code() -> None:
    section = deploy_section()
    main = tree("main.bicep").params
    flex = tree("app/api-flex.bicep").params
    assert main["alwaysReadyInstanceCount"].value == ast.Lit(0) and "(default 0, at most 20)" in section
    assert main["alwaysReadyInstanceCount"].decorator("maxValue").args[0] == ast.Lit(20)
    assert main["maximumInstanceCount"].value == ast.Lit(40) and "(40 by default, 40-1000)" in section
    assert main["maximumInstanceCount"].decorator("minValue").args[0] == ast.Lit(40)
    assert main["maximumInstanceCount"].decorator("maxValue").args[0] == ast.Lit(1000)
    assert flex["instanceMemoryMB"].value == ast.Lit(2048) and "default 2,048 MB" in section
    assert main["dedicatedSku"].value == ast.Lit("B1")
    skus = [item.value for item in main["dedicatedSku"].decorator("allowed").args[0].items]
    assert f"(`DEDICATED_SKU`: {', '.join(skus)})" in section
    web = [item.value for item in main["webLocation"].decorator("allowed").args[0].items]
    assert len(web) == 5 and "one of the five Static Web Apps regions" in section
    hooks = (INFRA / "hooks")
    assert 'ROLE_WAIT_SECONDS:-600' in (hooks / "wait-for-roles.sh").read_text() and "at most 10 minutes" in section
    assert 'VERIFY_ATTEMPTS:-5' in (hooks / "verify-direct-access.sh").read_text() and "only 5xx after 5 tries" in section


@pytest.mark.parametrize("hosting", sorted(HOSTING_MODULES))
def test_infra_never_sets_the_platforms_authentication_signal(hosting: str) -> None:
    # App Service injects WEBSITE_AUTH_ENABLED itself when the authentication in api-auth.bicep is
    # on (platform.enabled); the app reads it as the platform's word, so no template may fake it.
    from shared.settings import PLATFORM_AUTH_SIGNAL

    assert PLATFORM_AUTH_SIGNAL not in app_settings(hosting)
    assert PLATFORM_AUTH_SIGNAL not in "\n".join(p.read_text(encoding="utf-8") for p in BICEP_FILES)
    auth = tree("app/api-auth.bicep").resources["authentication"].body.get("properties")
    assert auth.get("platform").get("enabled") == ast.Lit(True)
