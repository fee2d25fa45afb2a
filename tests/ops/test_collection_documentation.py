"""Every module of the collection is documented the way ansible-doc reads it, and its
documentation matches the argument spec the module really accepts."""

from __future__ import annotations

import json

import pytest
import yaml

from tests.ops.collection import FQCN_PREFIX, MODULE_NAMES, import_collection_module, run_ansible_tool

EXPECTED_MODULES = {"policy", "volume", "volume_info", "backup", "backup_info", "verify", "restore", "job_info", "health"}


def test_the_collection_has_every_module_the_playbooks_need():
    assert EXPECTED_MODULES <= set(MODULE_NAMES)


@pytest.fixture(scope="module")
def ansible_doc():
    """ansible-doc's JSON for every module, with doc fragments merged (one process for all)."""
    completed = run_ansible_tool("ansible-doc", "--json", *[FQCN_PREFIX + name for name in MODULE_NAMES])
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout)


@pytest.mark.parametrize("name", MODULE_NAMES)
def test_documentation_examples_and_return_parse_as_yaml(name):
    module = import_collection_module(f"modules.{name}")
    documentation = yaml.safe_load(module.DOCUMENTATION)
    examples = yaml.safe_load(module.EXAMPLES)
    returned = yaml.safe_load(module.RETURN)
    assert documentation["module"] == name
    assert documentation["short_description"] and documentation["description"]
    assert isinstance(returned, dict) and returned, "RETURN must document at least one value"
    for key, value in returned.items():
        assert {"description", "returned", "type"} <= set(value), f"RETURN {key} lacks description/returned/type"
    assert isinstance(examples, list) and examples


@pytest.mark.parametrize("name", MODULE_NAMES)
def test_examples_use_only_documented_options(name, ansible_doc):
    module = import_collection_module(f"modules.{name}")
    options = set(ansible_doc[FQCN_PREFIX + name]["doc"]["options"])
    tasks = [task for task in yaml.safe_load(module.EXAMPLES) if FQCN_PREFIX + name in task]
    assert tasks, f"no example calls {FQCN_PREFIX + name}"
    for task in tasks:
        unknown = set(task[FQCN_PREFIX + name]) - options
        assert not unknown, f"example '{task.get('name')}' uses undocumented options {unknown}"


@pytest.mark.parametrize("name", MODULE_NAMES)
def test_argument_spec_matches_documented_options(name, ansible_doc):
    module = import_collection_module(f"modules.{name}")
    spec = module.argument_spec()
    documented = ansible_doc[FQCN_PREFIX + name]["doc"]["options"]
    assert set(spec) == set(documented), "options in the spec and in DOCUMENTATION differ"
    for option, rules in spec.items():
        doc = documented[option]
        assert doc.get("type", "str") == rules.get("type", "str"), f"{option}: type"
        assert bool(doc.get("required", False)) == bool(rules.get("required", False)), f"{option}: required"
        assert doc.get("default") == rules.get("default"), f"{option}: default"
        assert doc.get("choices") == rules.get("choices"), f"{option}: choices"
        assert doc.get("elements") == rules.get("elements"), f"{option}: elements"
        assert doc.get("description"), f"{option}: no description"


@pytest.mark.parametrize("name", MODULE_NAMES)
def test_token_options_and_only_they_are_never_logged(name):
    spec = import_collection_module(f"modules.{name}").argument_spec()
    for option, rules in spec.items():
        assert bool(rules.get("no_log")) == option.endswith("_token"), option
