""".devcontainer/devcontainer.json against what the Dev Container specification documents.

The container is NOT built here (Docker cannot run on this machine), so what is shown is the
file's validity and its promises (Python 3.11, Node 20, Chromium, labelled ports matching the
stack), not a working container.

The official JSON schema (github.com/devcontainers/spec, schemas/devContainer.base.schema.json)
cannot be fetched during a test run, so SCHEMA below restates it for an image-based container:
every top-level property the specification defines (https://containers.dev/implementors/json_reference/),
with the types, enums and patterns the schema gives for the ones this file uses. Unknown
properties are refused, as the schema's ``unevaluatedProperties: false`` refuses them.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import jsonschema
import pytest

ROOT = Path(__file__).resolve().parents[2]
DEVCONTAINER = ROOT / ".devcontainer" / "devcontainer.json"

_COMMAND = {"type": ["string", "array", "object"], "items": {"type": "string"},
            "additionalProperties": {"type": ["string", "array"], "items": {"type": "string"}}}
_SIZE = {"type": "string", "pattern": r"^\d+([tgmk]b)?$"}
_PORT_ATTRIBUTES = {
    "type": "object",
    "properties": {
        "onAutoForward": {"enum": ["notify", "openBrowser", "openBrowserOnce", "openPreview", "silent", "ignore"]},
        "elevateIfNeeded": {"type": "boolean"},
        "label": {"type": "string"},
        "requireLocalPort": {"type": "boolean"},
        "protocol": {"enum": ["http", "https"]},
    },
    "additionalProperties": False,
}
_ANY = {}

SCHEMA = {
    "type": "object",
    "required": ["image"],
    "properties": {
        # imageContainer, dockerfileContainer, composeContainer
        "image": {"type": "string"},
        "build": {"type": "object"}, "dockerFile": {"type": "string"}, "context": {"type": "string"},
        "dockerComposeFile": _ANY, "service": {"type": "string"}, "runServices": {"type": "array"},
        # nonComposeBase
        "appPort": _ANY, "runArgs": {"type": "array", "items": {"type": "string"}},
        "shutdownAction": {"enum": ["none", "stopContainer", "stopCompose"]}, "overrideCommand": {"type": "boolean"},
        "workspaceFolder": {"type": "string"}, "workspaceMount": {"type": "string"},
        # devContainerCommon
        "$schema": {"type": "string"},
        "name": {"type": "string"},
        "features": {"type": "object", "additionalProperties": True},
        "overrideFeatureInstallOrder": {"type": "array", "items": {"type": "string"}},
        "secrets": {"type": "object"},
        "forwardPorts": {"type": "array", "items": {"oneOf": [
            {"type": "integer", "minimum": 0, "maximum": 65535},
            {"type": "string", "pattern": r"^([a-z0-9-]+):(\d{1,5})$"}]}},
        "portsAttributes": {"type": "object", "patternProperties": {r"(^\d+(-\d+)?$)|(.+)": _PORT_ATTRIBUTES},
                            "additionalProperties": False},
        "otherPortsAttributes": {**_PORT_ATTRIBUTES, "properties": {
            **_PORT_ATTRIBUTES["properties"],
            "onAutoForward": {"enum": ["notify", "openBrowser", "openPreview", "silent", "ignore"]}}},
        "updateRemoteUserUID": {"type": "boolean"},
        "containerEnv": {"type": "object", "additionalProperties": {"type": "string"}},
        "containerUser": {"type": "string"},
        "mounts": {"type": "array"},
        "init": {"type": "boolean"}, "privileged": {"type": "boolean"},
        "capAdd": {"type": "array", "items": {"type": "string"}},
        "securityOpt": {"type": "array", "items": {"type": "string"}},
        "remoteEnv": {"type": "object", "additionalProperties": {"type": ["string", "null"]}},
        "remoteUser": {"type": "string"},
        "initializeCommand": _COMMAND, "onCreateCommand": _COMMAND, "updateContentCommand": _COMMAND,
        "postCreateCommand": _COMMAND, "postStartCommand": _COMMAND, "postAttachCommand": _COMMAND,
        "waitFor": {"enum": ["initializeCommand", "onCreateCommand", "updateContentCommand", "postCreateCommand",
                             "postStartCommand"]},
        "userEnvProbe": {"enum": ["none", "loginShell", "loginInteractiveShell", "interactiveShell"]},
        "hostRequirements": {"type": "object", "properties": {
            "cpus": {"type": "integer", "minimum": 1}, "memory": _SIZE, "storage": _SIZE, "gpu": _ANY},
            "additionalProperties": False},
        "customizations": {"type": "object"},
        "additionalProperties": {"type": "object"},
    },
    "additionalProperties": False,
}

# The stack's ports (devstack/stack.py PORTS) and what each is.
STACK_PORTS = {4280, 7071, 7090, 7092, 7093, 7094, 10000, 10001, 10002}


@pytest.fixture(scope="module")
def config() -> dict:
    return json.loads(DEVCONTAINER.read_text(encoding="utf-8"))


def test_devcontainer_is_valid_against_the_specifications_properties(config: dict):
    jsonschema.validate(config, SCHEMA)


def test_schema_refuses_what_the_specification_does_not_define(config: dict):
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**config, "forwardedPorts": [4280]}, SCHEMA)  # a misspelt property
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**config, "portsAttributes": {"4280": {"label": 1}}}, SCHEMA)


def test_python_311_and_node_20_come_from_documented_images_and_features(config: dict):
    # mcr.microsoft.com/devcontainers/python tags: github.com/devcontainers/images src/python/README.md;
    # the node feature's "version" option: github.com/devcontainers/features src/node.
    assert config["image"] == "mcr.microsoft.com/devcontainers/python:3.11-bookworm"
    assert config["features"] == {"ghcr.io/devcontainers/features/node:1": {"version": "20"}}


def test_every_stack_port_is_forwarded_with_a_label(config: dict):
    stack_source = (ROOT / "devstack" / "stack.py").read_text(encoding="utf-8")
    declared = {int(p) for p in re.findall(r'"\w+": (\d+)', re.search(r"PORTS = \{.*?\{(.*?)\}", stack_source, re.S).group(1))}
    assert declared == STACK_PORTS
    assert set(config["forwardPorts"]) == STACK_PORTS
    for port in STACK_PORTS:
        assert config["portsAttributes"][str(port)]["label"], port
    # The debugger's port is for the editor inside the container, never forwarded.
    assert 9091 not in config["forwardPorts"] and config["portsAttributes"]["9091"]["onAutoForward"] == "ignore"


def test_container_setup_installs_chromium_and_what_make_dev_and_make_test_need(config: dict):
    script = ROOT / ".devcontainer" / "on-create.sh"
    assert config["onCreateCommand"] == "bash ${containerWorkspaceFolder}/.devcontainer/on-create.sh"
    assert config["waitFor"] == "onCreateCommand"  # the editor attaches once the script is done
    text = script.read_text(encoding="utf-8")
    assert "sudo make browser" in text and "make install web" in text
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0
    # The REST Client trusts the emulators' https through the CA the script creates.
    assert config["remoteEnv"]["NODE_EXTRA_CA_CERTS"] == "${containerWorkspaceFolder}/.devstack/pki/ca.pem"


def test_devcontainer_holds_no_secret(config: dict):
    text = DEVCONTAINER.read_text(encoding="utf-8").lower()
    for word in ("accountkey=", "accesskey=", "password", "secret", "sharedaccesssignature", "bearer "):
        assert word not in text, word
    assert "secrets" not in config
