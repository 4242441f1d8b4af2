"""Checks the Bicep in infra/ against Azure's own resource type definitions (the generated
Bicep type data of Azure/bicep-types-az, a copy of which lives in ../shared/bicep-types), plus
the platform rules those schemas cannot express.

For every resource: its type@apiVersion exists; every property path the Bicep sets exists, with
the right kind, enum value and bounds; no read-only property is set; required properties are
present. For every module: the parameters passed exist on the other side, every required one
is passed, kinds and @allowed/@minValue/@maxValue agree, and every `module.outputs.x` read is an
output the module declares. For every `resource.properties.x` read: the property exists.
Parameters are followed through modules: a module is checked with the values its caller passes,
so an `@allowed` list in main.bicep reaches the enum it ends up in.

`check(infra_dir, overrides)` returns findings as "file:line: message" strings (empty = clean).
`overrides` fixes main.bicep parameters (e.g. {"hosting": "flex"}), and modules whose `if`
condition is then false are skipped: that is how each hosting choice is checked on its own.
"""

from __future__ import annotations

import difflib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from tests.infra.bicep_ast import (
    Arr,
    BicepFile,
    Binary,
    Call,
    Decl,
    For,
    IfBody,
    Interp,
    Lit,
    Member,
    Obj,
    Ref,
    Ternary,
    Unary,
    parse_file,
    walk,
)

REPO = Path(__file__).resolve().parents[2]
TYPES_DIR = Path(os.environ.get("BICEP_TYPES_DIR") or REPO.parent / "shared" / "bicep-types")

READ_ONLY = 2
REQUIRED = 1

# --- platform rules the schemas cannot express ---------------------------------------------

FLEX_DEPRECATIONS = "https://learn.microsoft.com/azure/azure-functions/functions-app-settings#flex-consumption-plan-deprecations"
FTPS_51021 = ("ARM error 51021 'The following site configuration property (Site.SiteConfig.FtpsState) for Flex "
              "Consumption sites is invalid': Azure/azure-cli#31414, microsoft/azure-pipelines-tasks#21032, "
              "Azure/terraform-azurerm-avm-res-web-site#345")

#: siteConfig / site properties a Flex Consumption (FC1) site refuses or ignores, with why and where.
FC1_REFUSED_SITE_CONFIG: dict[str, str] = {
    "ftpsState": FTPS_51021,
    "alwaysOn": f"not valid on Flex Consumption ({FLEX_DEPRECATIONS})",
    "linuxFxVersion": f"replaced by properties.functionAppConfig.runtime ({FLEX_DEPRECATIONS})",
    "netFrameworkVersion": f"replaced by functionAppConfig.runtime.version ({FLEX_DEPRECATIONS})",
    "javaVersion": f"replaced by functionAppConfig.runtime.version ({FLEX_DEPRECATIONS})",
    "powerShellVersion": f"replaced by functionAppConfig.runtime.version ({FLEX_DEPRECATIONS})",
    "use32BitWorkerProcess": f"32-bit is not supported ({FLEX_DEPRECATIONS})",
    "functionAppScaleLimit": f"renamed functionAppConfig.scaleAndConcurrency.maximumInstanceCount ({FLEX_DEPRECATIONS})",
    "preWarmedInstanceCount": f"renamed functionAppConfig.scaleAndConcurrency.alwaysReady ({FLEX_DEPRECATIONS})",
    "minimumElasticInstanceCount": f"replaced by alwaysReady ({FLEX_DEPRECATIONS})",
}
FC1_REFUSED_SITE_PROPERTIES: dict[str, str] = {
    "containerSize": f"renamed functionAppConfig.scaleAndConcurrency.instanceMemoryMB ({FLEX_DEPRECATIONS})",
    "isXenon": f"not valid on Flex Consumption ({FLEX_DEPRECATIONS})",
    "reserved": f"not valid on a Flex Consumption site ({FLEX_DEPRECATIONS})",
    "vnetContentShareEnabled": f"not used for networking on Flex Consumption ({FLEX_DEPRECATIONS})",
    "vnetImagePullEnabled": f"not used for networking on Flex Consumption ({FLEX_DEPRECATIONS})",
    "vnetBackupRestoreEnabled": f"not used for networking on Flex Consumption ({FLEX_DEPRECATIONS})",
}
#: App settings a Flex Consumption site refuses or ignores.
FC1_REFUSED_SETTINGS: dict[str, str] = {
    name: f"{why} ({FLEX_DEPRECATIONS})"
    for name, why in {
        "FUNCTIONS_WORKER_RUNTIME": "replaced by functionAppConfig.runtime.name",
        "FUNCTIONS_WORKER_RUNTIME_VERSION": "replaced by functionAppConfig.runtime.version",
        "FUNCTIONS_EXTENSION_VERSION": "set by the platform",
        "FUNCTIONS_MAX_HTTP_CONCURRENCY": "replaced by scaleAndConcurrency.triggers.http",
        "FUNCTIONS_WORKER_PROCESS_COUNT": "not valid",
        "FUNCTIONS_WORKER_DYNAMIC_CONCURRENCY_ENABLED": "not valid",
        "SCM_DO_BUILD_DURING_DEPLOYMENT": "replaced by the remoteBuild deployment parameter",
        "ENABLE_ORYX_BUILD": "replaced by the remoteBuild deployment parameter",
        "WEBSITE_RUN_FROM_PACKAGE": "not used for deployments",
        "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING": "replaced by functionAppConfig.deployment",
        "WEBSITE_CONTENTSHARE": "replaced by functionAppConfig.deployment",
        "WEBSITE_CONTENTOVERVNET": "not used for networking",
        "WEBSITE_SKIP_CONTENTSHARE_VALIDATION": "no content share",
        "WEBSITE_MAX_DYNAMIC_APPLICATION_SCALE_OUT": "replaced by maximumInstanceCount",
        "WEBSITE_NODE_DEFAULT_VERSION": "replaced by functionAppConfig.runtime.version",
        "WEBSITE_DNS_SERVER": "DNS comes from the integrated virtual network",
        "WEBSITE_VNET_ROUTE_ALL": "not used for networking",
    }.items()
}

#: Bicep keywords of a resource body that are not properties of the resource type.
BICEP_BODY_KEYWORDS = {"parent", "scope", "dependsOn"}


# --- type data -------------------------------------------------------------------------------


@dataclass(frozen=True)
class TypeRef:
    file: str
    index: int


class Types:
    """Azure's type definitions as copied into bicep-types/ (see its README)."""

    def __init__(self, root: Path = TYPES_DIR) -> None:
        self.root = root
        index = json.loads((root / "index.json").read_text(encoding="utf-8"))
        self.resources = {key.lower(): value for key, value in index["resources"].items()}
        self.versions = {key.lower(): value for key, value in index["versions"].items()}
        self._files: dict[str, list] = {}

    def node(self, ref: TypeRef) -> dict:
        if ref.file not in self._files:
            self._files[ref.file] = json.loads((self.root / ref.file).read_text(encoding="utf-8"))
        return self._files[ref.file][ref.index]

    def follow(self, ref: TypeRef, link: dict) -> TypeRef:
        return TypeRef(ref.file, int(link["$ref"].split("/")[-1]))

    def resource_body(self, type_name: str, api_version: str) -> tuple[TypeRef | None, str | None]:
        """The body type of type@apiVersion, or (None, why not)."""
        entry = self.resources.get(f"{type_name}@{api_version}".lower())
        if entry:
            ref = TypeRef(entry["file"], entry["index"])
            return self.follow(ref, self.node(ref)["body"]), None
        known = self.versions.get(type_name.lower())
        if known is None:
            return None, f"{type_name} is not a type in the Azure type data (misspelled, or ask for it to be added to bicep-types)"
        if api_version not in known:
            newest = [v for v in known if "preview" not in v][-3:]
            return None, f"{type_name}@{api_version}: no such apiVersion (stable ones include {', '.join(newest)})"
        return None, f"{type_name}@{api_version} exists upstream but is not in bicep-types: ask for it to be added"


# --- abstract values -------------------------------------------------------------------------


@dataclass(frozen=True)
class Val:
    """What an expression can be: a literal, or a kind with what the Bicep constrains it to."""

    kind: str  # string, int, bool, object, array, null, unknown
    literal: Any = None
    is_literal: bool = False
    allowed: tuple | None = None
    low: int | None = None
    high: int | None = None
    origin: str = ""


UNKNOWN = Val("unknown")


def lit(value: Any) -> Val:
    kind = {str: "string", bool: "bool", int: "int", type(None): "null"}.get(type(value), "unknown")
    return Val(kind, value, True)


STRING_FUNCTIONS = {"string", "format", "guid", "uniqueString", "toLower", "toUpper", "replace", "substring",
                    "trim", "subscriptionResourceId", "resourceId", "tenantResourceId", "extensionResourceId",
                    "managementGroupResourceId", "base64", "uri", "join", "dataUri", "newGuid", "utcNow",
                    "padLeft", "loadTextContent", "resourceGroup().id"}
BOOL_FUNCTIONS = {"empty", "contains", "startsWith", "endsWith", "bool", "equals", "and", "or", "not"}
INT_FUNCTIONS = {"int", "length", "indexOf", "lastIndexOf", "min", "max", "add", "sub", "mul", "div", "mod"}
OBJECT_FUNCTIONS = {"tenant", "subscription", "resourceGroup", "managementGroup", "environment", "deployment",
                    "json", "reference", "items", "toObject"}


# --- scopes ----------------------------------------------------------------------------------


@dataclass
class Scope:
    file: BicepFile
    bindings: dict[str, tuple[Any, "Scope"]] = field(default_factory=dict)
    loop: frozenset = frozenset()

    @property
    def name(self) -> str:
        return self.file.path.name


class Checker:
    def __init__(self, infra: Path, types: Types | None = None) -> None:
        self.infra = infra
        self.types = types or Types()
        self.findings: list[str] = []
        self._files: dict[Path, BicepFile] = {}

    # -- plumbing

    def load(self, path: Path) -> BicepFile:
        path = path.resolve()
        if path not in self._files:
            self._files[path] = parse_file(path)
        return self._files[path]

    def where(self, scope: Scope, line: int) -> str:
        try:
            shown = scope.file.path.resolve().relative_to(self.infra.resolve()).as_posix()
        except ValueError:
            shown = scope.file.path.name
        return f"{shown}:{line}"

    def add(self, scope: Scope, line: int, message: str) -> None:
        finding = f"{self.where(scope, line)}: {message}"
        if finding not in self.findings:
            self.findings.append(finding)

    # -- evaluation

    def param_val(self, decl: Decl) -> Val:
        allowed = decl.decorator("allowed")
        low = decl.decorator("minValue")
        high = decl.decorator("maxValue")
        kind = decl.type.rstrip("?").replace("[]", "")
        kind = {"string": "string", "int": "int", "bool": "bool", "object": "object", "array": "array"}.get(kind, "unknown")
        values = None
        if allowed and allowed.args and isinstance(allowed.args[0], Arr):
            values = tuple(item.value for item in allowed.args[0].items if isinstance(item, Lit))
        return Val(kind, allowed=values,
                   low=low.args[0].value if low and isinstance(low.args[0], Lit) else None,
                   high=high.args[0].value if high and isinstance(high.args[0], Lit) else None,
                   origin=f"parameter {decl.name}")

    def resolve_ref(self, node: Any, scope: Scope, depth: int = 0) -> tuple[Any, Scope]:
        """Follow a reference to a var or a bound param to the expression it stands for."""
        while isinstance(node, Ref) and depth < 50:
            depth += 1
            if node.name in scope.loop:
                return node, scope
            if node.name in scope.bindings:
                node, scope = scope.bindings[node.name]
                continue
            var = scope.file.variables.get(node.name)
            if var is not None:
                node = var.value
                continue
            break
        return node, scope

    def evaluate(self, node: Any, scope: Scope, depth: int = 0) -> list[Val]:
        if depth > 60:
            return [UNKNOWN]
        node, scope = self.resolve_ref(node, scope)
        if isinstance(node, Lit):
            return [lit(node.value)]
        if isinstance(node, Interp):
            return [Val("string")]
        if isinstance(node, Ref):
            if node.name in scope.loop:
                return [UNKNOWN]
            decl = scope.file.params.get(node.name)
            if decl is not None:
                return [self.param_val(decl)]
            if node.name in scope.file.resources or node.name in scope.file.modules:
                return [Val("object")]
            return [UNKNOWN]
        if isinstance(node, Obj):
            return [Val("object")]
        if isinstance(node, (Arr, For)):
            return [Val("array")]
        if isinstance(node, Ternary):
            cond = self.fold(node.cond, scope)
            if cond is True:
                return self.evaluate(node.then, scope, depth + 1)
            if cond is False:
                return self.evaluate(node.other, scope, depth + 1)
            return self.evaluate(node.then, scope, depth + 1) + self.evaluate(node.other, scope, depth + 1)
        if isinstance(node, Binary):
            if node.op == "??":
                return self.evaluate(node.left, scope, depth + 1) + self.evaluate(node.right, scope, depth + 1)
            folded = self.fold(node, scope)
            if folded is not None:
                return [lit(folded)]
            return [Val("bool")] if node.op in ("==", "!=", "=~", "!~", "<", "<=", ">", ">=", "&&", "||") else [Val("int")]
        if isinstance(node, Unary):
            folded = self.fold(node, scope)
            if folded is not None:
                return [lit(folded)]
            return [Val("bool")] if node.op == "!" else [Val("int")]
        if isinstance(node, Call):
            name = node.name.split(".")[-1]
            if name == "concat":
                kinds = {v.kind for arg in node.args for v in self.evaluate(arg, scope, depth + 1)}
                return [Val("array")] if "array" in kinds else [Val("string")]
            if name == "union":
                kinds = {v.kind for arg in node.args for v in self.evaluate(arg, scope, depth + 1)}
                return [Val("array")] if "array" in kinds else [Val("object")]
            if name in STRING_FUNCTIONS:
                return [Val("string")]
            if name in BOOL_FUNCTIONS:
                return [Val("bool")]
            if name in INT_FUNCTIONS:
                return [Val("int")]
            if name in OBJECT_FUNCTIONS:
                return [Val("object")]
            return [UNKNOWN]
        if isinstance(node, Member):
            return self.evaluate_member(node, scope, depth)
        return [UNKNOWN]

    def fold(self, node: Any, scope: Scope) -> Any:
        """The constant value of a condition when every operand is known, else None."""
        node, scope = self.resolve_ref(node, scope)
        if isinstance(node, Lit):
            return node.value
        if isinstance(node, Unary) and node.op == "!":
            inner = self.fold(node.operand, scope)
            return (not inner) if isinstance(inner, bool) else None
        if isinstance(node, Binary) and node.op in ("==", "!=", "&&", "||"):
            left, right = self.fold(node.left, scope), self.fold(node.right, scope)
            if node.op == "&&":
                if left is False or right is False:
                    return False
                return True if (left is True and right is True) else None
            if node.op == "||":
                if left is True or right is True:
                    return True
                return False if (left is False and right is False) else None
            if left is None and not (isinstance(node.left, Lit) and node.left.value is None):
                return None
            if right is None and not (isinstance(node.right, Lit) and node.right.value is None):
                return None
            return (left == right) if node.op == "==" else (left != right)
        return None

    def evaluate_member(self, node: Member, scope: Scope, depth: int) -> list[Val]:
        path: list[str] = []
        base: Any = node
        while isinstance(base, Member):
            path.insert(0, base.name)
            base = base.obj
        base, base_scope = self.resolve_ref(base, scope)
        if isinstance(base, Obj):
            value: Any = base
            for part in path:
                if not isinstance(value, Obj) or value.get(part) is None:
                    return [UNKNOWN]
                value, base_scope = self.resolve_ref(value.get(part), base_scope)
            return self.evaluate(value, base_scope, depth + 1)
        if isinstance(base, Ref):
            module = base_scope.file.modules.get(base.name)
            if module is not None and path and path[0] == "outputs" and len(path) >= 2:
                target = self.module_file(module, base_scope)
                output = target.outputs.get(path[1]) if target else None
                if output is None:
                    return [UNKNOWN]
                kind = {"string": "string", "int": "int", "bool": "bool", "object": "object", "array": "array"}.get(output.type, "unknown")
                return [Val(kind, origin=f"output {base.name}.{path[1]}")]
            resource = base_scope.file.resources.get(base.name)
            if resource is not None:
                return [self.resource_property_val(resource, path)]
        return [UNKNOWN]

    def resource_property_val(self, resource: Decl, path: list[str]) -> Val:
        type_name, _, api = resource.type.partition("@")
        body, _ = self.types.resource_body(type_name, api)
        if body is None:
            return UNKNOWN
        ref = body
        for part in path:
            ref = self.property_type(ref, part)
            if ref is None:
                return UNKNOWN
        return Val(self.kind_of(ref))

    def property_type(self, ref: TypeRef, name: str) -> TypeRef | None:
        node = self.types.node(ref)
        if node["$type"] == "ObjectType":
            prop = node.get("properties", {}).get(name)
            if prop:
                return self.types.follow(ref, prop["type"])
            if node.get("additionalProperties"):
                return self.types.follow(ref, node["additionalProperties"])
        if node["$type"] == "DiscriminatedObjectType":
            prop = node.get("baseProperties", {}).get(name)
            if prop:
                return self.types.follow(ref, prop["type"])
            for element in node["elements"].values():
                found = self.property_type(self.types.follow(ref, element), name)
                if found:
                    return found
        return None

    def kind_of(self, ref: TypeRef) -> str:
        node = self.types.node(ref)
        return {"StringType": "string", "StringLiteralType": "string", "IntegerType": "int", "BooleanType": "bool",
                "ObjectType": "object", "DiscriminatedObjectType": "object", "ArrayType": "array"}.get(node["$type"], "unknown")

    # -- checking values against types

    def check_value(self, node: Any, ref: TypeRef, path: str, scope: Scope, complete: bool = True, depth: int = 0) -> list[tuple[Scope, int, str]]:
        """Problems of `node` as a value of type `ref` (not recorded: callers decide)."""
        if depth > 60:
            return []
        line = getattr(node, "line", 0)
        node, scope = self.resolve_ref(node, scope)
        type_node = self.types.node(ref)
        kind = type_node["$type"]
        if kind == "AnyType":
            return []
        if isinstance(node, Ternary):
            cond = self.fold(node.cond, scope)
            branches = [node.then] if cond is True else [node.other] if cond is False else [node.then, node.other]
            return [p for b in branches for p in self.check_value(b, ref, path, scope, complete, depth + 1)]
        if isinstance(node, Call) and node.name.split(".")[-1] in ("union", "concat") and kind in ("ObjectType", "DiscriminatedObjectType", "ArrayType"):
            return [p for arg in node.args for p in self.check_value(arg, ref, path, scope, False, depth + 1)]
        if kind == "UnionType":
            options = [self.types.follow(ref, e) for e in type_node["elements"]]
            results = [self.check_value(node, o, path, scope, complete, depth + 1) for o in options]
            if any(not r for r in results):
                return []
            if isinstance(node, Lit) or all(isinstance(self.types.node(o).get("value"), str) or self.types.node(o)["$type"] == "StringLiteralType" for o in options):
                if isinstance(node, (Lit, Ref, Member, Call, Ternary, Binary)) and all(self.types.node(o)["$type"] == "StringLiteralType" for o in options):
                    allowed = sorted(self.types.node(o)["value"] for o in options)
                    bad = [v.literal if v.is_literal else v.allowed for v in self.evaluate(node, scope) if v.is_literal or v.allowed]
                    return [(scope, line, f"{path}: {bad[0] if bad else node!r} is not one of {allowed}")]
            return min(results, key=len)
        if isinstance(node, Obj):
            return self.check_object(node, ref, path, scope, complete, depth)
        if isinstance(node, For):
            if kind != "ArrayType":
                return [(scope, line, f"{path}: a list is set where Azure expects {self.describe(ref)}")]
            inner = Scope(scope.file, scope.bindings, scope.loop | frozenset(node.names))
            body = node.body.body if isinstance(node.body, IfBody) else node.body
            return self.check_value(body, self.types.follow(ref, type_node["itemType"]), f"{path}[]", inner, True, depth + 1)
        if isinstance(node, Arr):
            if kind != "ArrayType":
                return [(scope, line, f"{path}: a list is set where Azure expects {self.describe(ref)}")]
            problems = []
            if type_node.get("minLength") is not None and len(node.items) < type_node["minLength"]:
                problems.append((scope, line, f"{path}: at least {type_node['minLength']} items needed"))
            if type_node.get("maxLength") is not None and len(node.items) > type_node["maxLength"]:
                problems.append((scope, line, f"{path}: at most {type_node['maxLength']} items allowed"))
            item_ref = self.types.follow(ref, type_node["itemType"])
            for i, item in enumerate(node.items):
                problems += self.check_value(item, item_ref, f"{path}[{i}]", scope, True, depth + 1)
            return problems
        return [(scope, line, m) for v in self.evaluate(node, scope) for m in self.check_scalar(v, ref, path)]

    def check_object(self, node: Obj, ref: TypeRef, path: str, scope: Scope, complete: bool, depth: int) -> list:
        type_node = self.types.node(ref)
        problems: list = []
        if type_node["$type"] == "DiscriminatedObjectType":
            key = type_node["discriminator"]
            value = node.get(key)
            chosen = self.evaluate(value, scope) if value is not None else []
            names = [v.literal for v in chosen if v.is_literal] or [a for v in chosen for a in (v.allowed or ())]
            if not names:
                return [(scope, node.line, f"{path}: '{key}' must be one of {sorted(type_node['elements'])}, as a literal")]
            for name in names:
                element = type_node["elements"].get(name)
                if element is None:
                    problems.append((scope, node.line, f"{path}.{key}: {name!r} is not one of {sorted(type_node['elements'])}"))
                    continue
                merged = dict(type_node.get("baseProperties", {}))
                element_ref = self.types.follow(ref, element)
                merged.update(self.types.node(element_ref).get("properties", {}))
                problems += self.check_properties(node, merged, None, element_ref, path, scope, complete, depth, skip={key})
            return problems
        if type_node["$type"] != "ObjectType":
            return [(scope, node.line, f"{path}: an object is set where Azure expects {self.describe(ref)}")]
        return self.check_properties(node, type_node.get("properties", {}), type_node.get("additionalProperties"),
                                     ref, path, scope, complete, depth)

    def check_properties(self, node: Obj, properties: dict, additional: dict | None, ref: TypeRef, path: str,
                         scope: Scope, complete: bool, depth: int, skip: Iterable[str] = ()) -> list:
        problems: list = []
        for key, value in node.items:
            line = getattr(value, "line", node.line)
            if key in skip:
                continue
            shown = f"{path}.{key}" if isinstance(key, str) else f"{path}[...]"
            if isinstance(key, str) and key in properties:
                prop = properties[key]
                if prop.get("flags", 0) & READ_ONLY:
                    problems.append((scope, line, f"{shown} is read-only: Azure sets it, a template cannot"))
                    continue
                problems += self.check_value(value, self.types.follow(ref, prop["type"]), shown, scope, True, depth + 1)
            elif additional:
                problems += self.check_value(value, self.types.follow(ref, additional), shown, scope, True, depth + 1)
            else:
                close = difflib.get_close_matches(str(key), list(properties), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                problems.append((scope, line, f"{shown}: no such property in the Azure type{hint}"))
        if complete:
            present = {k for k, _ in node.items if isinstance(k, str)}
            for name, prop in properties.items():
                flags = prop.get("flags", 0)
                if flags & REQUIRED and not flags & READ_ONLY and name not in present and name not in skip:
                    problems.append((scope, node.line, f"{path}.{name} is required"))
        return problems

    def check_scalar(self, value: Val, ref: TypeRef, path: str) -> list[str]:
        node = self.types.node(ref)
        kind = node["$type"]
        expected = self.kind_of(ref)
        if value.kind == "unknown" or kind == "AnyType":
            return []
        origin = f" ({value.origin})" if value.origin else ""
        if kind == "UnionType":
            options = [self.types.follow(ref, e) for e in node["elements"]]
            if value.is_literal or value.allowed:
                candidates = [lit(v) for v in ((value.literal,) if value.is_literal else value.allowed)]
                bad = [c.literal for c in candidates if all(self.check_scalar(c, o, path) for o in options)]
                return [f"{path}: {b!r}{origin} is not one of {self.describe(ref)}" for b in bad]
            return [] if any(not self.check_scalar(value, o, path) for o in options) else [
                f"{path}: a {value.kind}{origin} where Azure expects {self.describe(ref)}"]
        if value.kind == "null":
            return []
        if expected != value.kind:
            return [f"{path}: a {value.kind}{origin} where Azure expects {self.describe(ref)}"]
        candidates = [lit(v) for v in value.allowed] if value.allowed and not value.is_literal else [value]
        problems = []
        for c in candidates:
            if kind == "StringLiteralType" and c.is_literal and c.literal != node["value"]:
                problems.append(f"{path}: {c.literal!r}{origin} is not {node['value']!r}")
            if kind == "StringType" and c.is_literal:
                if node.get("minLength") is not None and len(c.literal) < node["minLength"]:
                    problems.append(f"{path}: {c.literal!r} is shorter than {node['minLength']}")
                if node.get("maxLength") is not None and len(c.literal) > node["maxLength"]:
                    problems.append(f"{path}: {c.literal!r} is longer than {node['maxLength']}")
                pattern = node.get("pattern")
                if pattern:
                    try:
                        if not re.fullmatch(pattern, c.literal):
                            problems.append(f"{path}: {c.literal!r} does not match {pattern}")
                    except re.error:
                        pass
            if kind == "IntegerType":
                low, high = node.get("minValue"), node.get("maxValue")
                value_low = c.literal if c.is_literal else value.low
                value_high = c.literal if c.is_literal else value.high
                if low is not None and value_low is not None and value_low < low:
                    problems.append(f"{path}: {value_low}{origin} is below Azure's minimum {low}")
                if high is not None and value_high is not None and value_high > high:
                    problems.append(f"{path}: {value_high}{origin} is above Azure's maximum {high}")
        return problems

    def describe(self, ref: TypeRef) -> str:
        node = self.types.node(ref)
        if node["$type"] == "StringLiteralType":
            return repr(node["value"])
        if node["$type"] == "UnionType":
            return " | ".join(self.describe(self.types.follow(ref, e)) for e in node["elements"])
        bounds = ""
        if node["$type"] == "IntegerType" and (node.get("minValue") is not None or node.get("maxValue") is not None):
            bounds = f" {node.get('minValue')}..{node.get('maxValue')}"
        return f"{self.kind_of(ref)}{bounds}"

    # -- files, resources and modules

    def module_file(self, module: Decl, scope: Scope) -> BicepFile | None:
        target = scope.file.path.parent / module.type
        if not target.is_file():
            return None
        return self.load(target)

    def check_file(self, scope: Scope, seen: set) -> None:
        key = (scope.file.path.resolve(), repr(sorted((k, repr(v[0])) for k, v in scope.bindings.items())))
        if key in seen:
            return
        seen.add(key)
        for resource in scope.file.resources.values():
            self.check_resource(resource, scope)
        for module in scope.file.modules.values():
            self.check_module(module, scope, seen)
        self.check_reads(scope)
        self.check_outputs(scope)
        self.check_flex_rules(scope)

    def check_resource(self, resource: Decl, scope: Scope) -> None:
        type_name, _, api = resource.type.partition("@")
        if not api:
            self.add(scope, resource.line, f"resource {resource.name}: '{resource.type}' has no @apiVersion")
            return
        body_ref, why = self.types.resource_body(type_name, api)
        if body_ref is None:
            self.add(scope, resource.line, f"resource {resource.name}: {why}")
            return
        body = resource.body
        if body is None:
            self.add(scope, resource.line, f"resource {resource.name}: no object body")
            return
        if resource.existing:
            checked = Obj(tuple((k, v) for k, v in body.items if k == "name"), body.line)
            complete = False
        else:
            checked = Obj(tuple((k, v) for k, v in body.items if k not in BICEP_BODY_KEYWORDS), body.line)
            complete = True
        inner = scope
        if isinstance(resource.value, For):
            inner = Scope(scope.file, scope.bindings, scope.loop | frozenset(resource.value.names))
        for problem_scope, line, message in self.check_value(checked, body_ref, resource.name, inner, complete):
            self.add(problem_scope, line, message)

    def check_module(self, module: Decl, scope: Scope, seen: set) -> None:
        target = self.module_file(module, scope)
        if target is None:
            self.add(scope, module.line, f"module {module.name}: {module.type} does not exist")
            return
        if module.condition is not None and self.fold(module.condition, scope) is False:
            return
        body = module.body
        passed = body.get("params") if body else None
        passed_items = dict(passed.items) if isinstance(passed, Obj) else {}
        declared = target.params
        bindings: dict[str, tuple[Any, Scope]] = {}
        for name, value in passed_items.items():
            line = getattr(value, "line", module.line)
            param = declared.get(name)
            if param is None:
                close = difflib.get_close_matches(name, list(declared), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                self.add(scope, line, f"module {module.name}: {target.path.name} has no parameter {name!r}{hint}")
                continue
            bindings[name] = (value, scope)
            self.check_passed(module, name, value, param, scope, line)
        for name, param in declared.items():
            if name not in passed_items and param.value is None and not param.type.endswith("?"):
                self.add(scope, module.line, f"module {module.name}: required parameter {name!r} of {target.path.name} is not passed")
        self.check_file(Scope(target, bindings), seen)

    def check_passed(self, module: Decl, name: str, value: Any, param: Decl, scope: Scope, line: int) -> None:
        expected = self.param_val(param)
        for v in self.evaluate(value, scope):
            where = f"module {module.name}: parameter {name!r}"
            if v.kind not in ("unknown", "null") and expected.kind != "unknown" and v.kind != expected.kind:
                self.add(scope, line, f"{where} is a {expected.kind} but gets a {v.kind}")
                continue
            candidates = (v.literal,) if v.is_literal else v.allowed
            if expected.allowed is not None:
                if candidates is None and v.kind != "unknown":
                    self.add(scope, line, f"{where} allows only {list(expected.allowed)} but gets an unchecked {v.kind}"
                                          f"{f' ({v.origin})' if v.origin else ''}: declare the same @allowed list at the source")
                for c in candidates or ():
                    if c not in expected.allowed:
                        self.add(scope, line, f"{where}: {c!r} is not in its @allowed list {list(expected.allowed)}")
            if expected.low is not None or expected.high is not None:
                values = [c for c in (candidates or ()) if isinstance(c, int)]
                low = min(values) if values else v.low
                high = max(values) if values else v.high
                if v.kind == "int" and (low is None and expected.low is not None or high is None and expected.high is not None):
                    self.add(scope, line, f"{where} has bounds {expected.low}..{expected.high} the value passed is not held to")
                if expected.low is not None and low is not None and low < expected.low:
                    self.add(scope, line, f"{where}: {low} is below its @minValue {expected.low}")
                if expected.high is not None and high is not None and high > expected.high:
                    self.add(scope, line, f"{where}: {high} is above its @maxValue {expected.high}")

    def check_reads(self, scope: Scope) -> None:
        """`module.outputs.x` names a declared output; `resource.properties.x` exists in the type."""
        for decl in scope.file.decls:
            for node in walk(decl.value) if decl.value is not None else ():
                if not isinstance(node, Member):
                    continue
                path: list[str] = []
                base: Any = node
                while isinstance(base, Member):
                    path.insert(0, base.name)
                    base = base.obj
                if not isinstance(base, Ref) or node is not self._outermost(decl.value, node):
                    continue
                if base.name in scope.file.modules and path[0] == "outputs" and len(path) >= 2:
                    target = self.module_file(scope.file.modules[base.name], scope)
                    if target is not None and path[1] not in target.outputs:
                        self.add(scope, node.line, f"{base.name}.outputs.{path[1]}: {target.path.name} declares no such output")
                elif base.name in scope.file.resources and path[0] == "properties":
                    resource = scope.file.resources[base.name]
                    type_name, _, api = resource.type.partition("@")
                    ref, _ = self.types.resource_body(type_name, api)
                    for part in path if ref else ():
                        ref = self.property_type(ref, part)
                        if ref is None:
                            self.add(scope, node.line, f"{base.name}.{'.'.join(path)}: {type_name} has no such property")
                            break

    def _outermost(self, root: Any, target: Member) -> Member | None:
        """target itself unless it is the .obj of a longer member chain (only check whole chains)."""
        for node in walk(root):
            if isinstance(node, Member) and node.obj is target:
                return None
        return target

    def check_outputs(self, scope: Scope) -> None:
        for output in scope.file.outputs.values():
            expected = {"string": "string", "int": "int", "bool": "bool", "object": "object", "array": "array"}.get(output.type)
            for v in self.evaluate(output.value, scope) if expected else ():
                if v.kind not in ("unknown", "null", expected):
                    self.add(scope, output.line, f"output {output.name} is declared {expected} but is a {v.kind}")

    # -- Flex Consumption rules

    def check_flex_rules(self, scope: Scope) -> None:
        for site in scope.file.resources.values():
            if not site.type.lower().startswith("microsoft.web/sites@") or site.existing or site.body is None:
                continue
            properties = site.body.get("properties")
            properties, props_scope = self.resolve_ref(properties, scope)
            if not isinstance(properties, Obj) or not self.is_flex(properties, props_scope):
                continue
            for key, _ in properties.items:
                if key in FC1_REFUSED_SITE_PROPERTIES:
                    self.add(props_scope, properties.line, f"{site.name}.properties.{key}: a Flex Consumption site refuses it: {FC1_REFUSED_SITE_PROPERTIES[key]}")
            site_config, config_scope = self.resolve_ref(properties.get("siteConfig"), props_scope)
            if not isinstance(site_config, Obj):
                continue
            for key, value in site_config.items:
                if key in FC1_REFUSED_SITE_CONFIG:
                    self.add(config_scope, getattr(value, "line", site_config.line),
                             f"{site.name}.properties.siteConfig.{key}: a Flex Consumption site refuses it: {FC1_REFUSED_SITE_CONFIG[key]}")
            for setting_scope, line, name in self.setting_names(site_config.get("appSettings"), config_scope):
                if name in FC1_REFUSED_SETTINGS:
                    self.add(setting_scope, line, f"{site.name} app setting {name}: a Flex Consumption site refuses it: {FC1_REFUSED_SETTINGS[name]}")

    def is_flex(self, properties: Obj, scope: Scope) -> bool:
        if properties.get("functionAppConfig") is not None:
            return True
        farm = properties.get("serverFarmId")
        if isinstance(farm, Member) and farm.name == "id" and isinstance(farm.obj, Ref):
            plan = scope.file.resources.get(farm.obj.name)
            sku = plan.body.get("sku") if plan and plan.body else None
            sku, sku_scope = self.resolve_ref(sku, scope)
            if isinstance(sku, Obj):
                return any(v.is_literal and v.literal == "FC1" for v in self.evaluate(sku.get("name"), sku_scope))
        return False

    def setting_names(self, node: Any, scope: Scope, depth: int = 0) -> list[tuple[Scope, int, str]]:
        if node is None or depth > 30:
            return []
        node, scope = self.resolve_ref(node, scope)
        if isinstance(node, Arr):
            out = []
            for item in node.items:
                item, item_scope = self.resolve_ref(item, scope)
                if isinstance(item, Obj):
                    out += [(item_scope, item.line, v.literal) for v in self.evaluate(item.get("name"), item_scope) if v.is_literal]
            return out
        if isinstance(node, Call) and node.name.split(".")[-1] in ("concat", "union", "flatten"):
            return [n for arg in node.args for n in self.setting_names(arg, scope, depth + 1)]
        if isinstance(node, Ternary):
            return self.setting_names(node.then, scope, depth + 1) + self.setting_names(node.other, scope, depth + 1)
        return []


def check(infra: Path, overrides: dict[str, Any] | None = None, types: Types | None = None) -> list[str]:
    """Every finding for the Bicep under `infra` (entry point main.bicep), as 'file:line: message'."""
    checker = Checker(infra, types)
    main = checker.load(infra / "main.bicep")
    bindings = {name: (Lit(value), Scope(main)) for name, value in (overrides or {}).items()}
    for name in bindings:
        if name not in main.params:
            checker.add(Scope(main), 1, f"override {name!r} is not a parameter of main.bicep")
    seen: set = set()
    checker.check_file(Scope(main, bindings), seen)
    reached = {path for path, _ in seen}
    for path in sorted(infra.rglob("*.bicep")):
        if path.resolve() not in reached:
            checker.check_file(Scope(checker.load(path)), seen)
    return checker.findings
