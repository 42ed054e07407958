"""get_provider_info(): what Airflow reads is valid, complete and agrees with the settings the hooks enforce."""

from __future__ import annotations

import dataclasses
import importlib
import json
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from clientify_sync.api.settings import COMMON_EXTRAS
from clientify_sync.errors import ConfigurationError
from clientify_sync.provider import CONNECTION_TYPES, URI_SCHEME, conn_fields, form_fields, get_provider_info

ROOT = Path(__file__).resolve().parents[2]
KINDS = {kind.conn_type: kind for kind in CONNECTION_TYPES}


def test_the_provider_info_passes_airflows_schema():
    from airflow.providers_manager import _create_provider_info_schema_validator

    info = get_provider_info()
    _create_provider_info_schema_validator().validate(info)
    assert info["package-name"] == "clientify-sync"
    assert [c["connection-type"] for c in info["connection-types"]] == [
        "facturama",
        "clientify",
        "facturadirecta",
    ]
    json.dumps(info)  # plain data: Airflow caches and prints it


def test_pyproject_wires_the_entry_points_to_real_objects():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    provider = project["entry-points"]["apache_airflow_provider"]["provider_info"]
    module, _, name = provider.partition(":")
    assert getattr(importlib.import_module(module), name) is get_provider_info
    plugin = project["entry-points"]["airflow.plugins"]["clientify_sync_status"]
    module, _, name = plugin.partition(":")
    from airflow.plugins_manager import AirflowPlugin

    assert issubclass(getattr(importlib.import_module(module), name), AirflowPlugin)
    assert project["version"] and "apache-airflow>=3.3,<4" in project["dependencies"]
    assert not [d for d in project["dependencies"] if "==" in d]  # ranges, not pins
    assert set(project["optional-dependencies"]) == {"postgres", "sandbox"}


@pytest.mark.parametrize("conn_type", sorted(KINDS))
def test_each_type_names_a_hook_that_declares_it(conn_type):
    info = {c["connection-type"]: c for c in get_provider_info()["connection-types"]}[conn_type]
    module, _, name = info["hook-class-name"].rpartition(".")
    hook_class = getattr(importlib.import_module(module), name)
    assert hook_class.conn_type == conn_type
    assert hook_class.hook_name == info["hook-name"]
    assert hook_class.settings_class is KINDS[conn_type].settings_class


@pytest.mark.parametrize("conn_type", sorted(KINDS))
def test_conn_fields_are_every_extra_the_settings_accept_typed_and_defaulted(conn_type):
    kind = KINDS[conn_type]
    fields = form_fields(kind)
    classes = kind.settings_classes.values()
    assert set(fields) == set(COMMON_EXTRAS).union(*(c.api_extras for c in classes))
    json_type = {int: "integer", float: "number", str: "string"}
    for settings_class in classes:
        defaults = {f.name: f.default for f in dataclasses.fields(settings_class)}
        for name, type_ in {**COMMON_EXTRAS, **settings_class.api_extras}.items():
            schema = fields[name]["schema"]
            assert schema["type"] == [json_type[type_], "null"], name
            if name == kind.selector:
                continue  # the choice of API: its own default, the first API (below)
            # A default the form proposes is this API's own; where the APIs differ, none is proposed.
            assert schema.get("default", defaults[name]) == defaults[name], name
            assert fields[name]["label"] and fields[name]["description"], name
        assert fields["page_size"]["schema"]["maximum"] >= settings_class.max_page_size
    # Descriptions come from the settings' docstrings where they have them.
    assert "Token-bucket budget" in fields["requests_per_minute"]["description"]


def test_a_one_api_type_proposes_its_settings_defaults_and_caps():
    kind = KINDS["facturama"]
    assert form_fields(kind) == conn_fields(kind.settings_class)
    assert form_fields(kind)["page_size"]["schema"] == {
        "type": ["integer", "null"], "default": 100, "minimum": 1, "maximum": 100}  # fmt: skip


@pytest.mark.parametrize(
    ("conn_type", "api"), [(t, api) for t in sorted(KINDS) for api in KINDS[t].settings_classes]
)
def test_what_the_form_proposes_the_hook_accepts(monkeypatch, conn_type, api):
    """A connection saved from the form as it comes (every default), and with each enum value of an extra
    its API takes, passes the hook: what Airflow's form saves is what the hook reads."""
    kind = KINDS[conn_type]
    fields = form_fields(kind)
    module, _, name = kind.hook_class.rpartition(".")
    hook_class = getattr(importlib.import_module(module), name)
    settings_class = kind.settings_classes[api]
    credentials = {"host": "https://example.test", "login": "user", "password": "a-long-password"}
    if api == "rest":  # the REST API: its host by default, a key of its shape, the company
        credentials = {"password": "aB3cD9.xY7zN2qK4mP8rT5sJ1hF6gL0vW3uE"}
    selected = {kind.selector: api, "company_id": "com_3a7e8d29"} if api == "rest" else {}

    def settings(extra):
        body = {"conn_type": conn_type, **credentials, "extra": extra}
        monkeypatch.setenv(f"AIRFLOW_CONN_{hook_class.default_conn_name.upper()}", json.dumps(body))
        return hook_class().get_settings()

    form = {name: field["schema"].get("default") for name, field in fields.items()}
    assert isinstance(settings({**form, **selected}), settings_class)
    accepted = {*COMMON_EXTRAS, *settings_class.api_extras} - {kind.selector}
    for name in accepted:
        for choice in fields[name]["schema"].get("enum", []):
            assert isinstance(settings({**selected, name: choice}), settings_class), (name, choice)
    with pytest.raises(ConfigurationError, match="page_size"):
        settings({**selected, "page_size": settings_class.max_page_size + 1})


def test_the_facturadirecta_form_offers_both_apis_and_says_what_each_needs():
    kind = KINDS["facturadirecta"]
    fields = form_fields(kind)
    assert list(fields)[0] == "api"
    assert fields["api"]["schema"]["enum"] == ["classic", "rest", None]
    assert fields["api"]["schema"]["default"] == "classic"  # existing connections keep the classic API
    help_text = fields["api"]["description"]
    for needed in ("company_id", "Ajustes → API keys", "https://ACCOUNT.facturadirecta.com", "app.facturadirecta.com",
                   "scope", "plan is optional"):  # fmt: skip
        assert needed in help_text, needed
    assert fields["company_id"]["description"].endswith("Only with api=rest.")
    assert fields["auth_style"]["description"].endswith("Only with api=classic.")
    assert fields["plan"]["schema"]["enum"] == ["", "gratis", "bronce", "plata", "oro", "diamante", None]
    # page_size: the classic API caps it at 250, the REST API at 500; the form proposes neither.
    page_size = fields["page_size"]
    assert "default" not in page_size["schema"] and page_size["schema"]["maximum"] == 500
    assert "api=classic: default 250, at most 250." in page_size["description"]
    assert "api=rest: default 500, at most 500." in page_size["description"]


def test_form_labels_hidden_fields_and_placeholders():
    from airflow.providers_manager import _create_customized_form_field_behaviours_schema_validator

    validator = _create_customized_form_field_behaviours_schema_validator()
    types = {c["connection-type"]: c for c in get_provider_info()["connection-types"]}
    for info in types.values():
        behaviour = info["ui-field-behaviour"]
        validator.validate(
            {"hidden_fields": behaviour["hidden-fields"], "relabeling": behaviour["relabeling"]}
        )
        assert {"schema", "port"} <= set(behaviour["hidden-fields"])
    assert types["facturama"]["ui-field-behaviour"]["relabeling"] == {
        "host": "API host",
        "login": "API user",
        "password": "API password",
    }
    assert types["clientify"]["ui-field-behaviour"]["relabeling"]["password"] == "API key"
    assert "login" in types["clientify"]["ui-field-behaviour"]["hidden-fields"]  # the key alone authenticates
    assert types["facturadirecta"]["ui-field-behaviour"]["relabeling"]["password"] == "API key"
    hosts = {t: i["ui-field-behaviour"]["placeholders"]["host"] for t, i in types.items()}
    assert "https://api.facturama.mx" in hosts["facturama"]
    assert hosts["clientify"] == "https://api.clientify.net"
    assert hosts["facturadirecta"].startswith("https://ACCOUNT.facturadirecta.com")
    assert "https://app.facturadirecta.com" in hosts["facturadirecta"]  # the REST API's, when left empty
    assert "Ajustes → API keys" in types["facturadirecta"]["ui-field-behaviour"]["placeholders"]["password"]


def test_the_asset_uri_scheme_is_registered_with_a_checking_handler():
    (entry,) = get_provider_info()["asset-uris"]
    assert entry["schemes"] == [URI_SCHEME]
    module, _, name = entry["handler"].rpartition(".")
    handler = getattr(importlib.import_module(module), name)
    from clientify_sync.assets import sync_asset

    uri = sync_asset("facturadirecta", "estimates").uri
    assert handler(urlsplit(uri)).geturl() == uri
    with pytest.raises(ValueError, match="clientify-sync://<facturama|facturadirecta>"):
        handler(urlsplit("clientify-sync://facturama/invoices"))


def test_the_enumerations_match_the_settings():
    from clientify_sync.api.settings import MODIFIED_FORMATS

    fields = conn_fields(KINDS["clientify"].settings_class)
    assert fields["modified_format"]["schema"]["enum"] == [*MODIFIED_FORMATS, None]


def test_provider_module_imports_no_airflow():
    """Airflow loads provider info while it reads its own configuration: importing airflow there fails."""
    import subprocess
    import sys

    script = (
        "import sys; sys.path.insert(0, 'plugins'); import clientify_sync.provider as p; "
        "print(sorted(m for m in sys.modules if m.startswith('clientify_sync.api'))); p.get_provider_info(); "
        "print(sorted(m for m in sys.modules if m == 'airflow' or m.startswith('airflow.')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True
    )
    # Importing it (as clientify_sync.assets does at parse time) loads no API client either.
    assert done.stdout.split("\n")[:2] == ["[]", "[]"]


@pytest.mark.parametrize("conn_type", ["http", "facturama"])
def test_hooks_accept_the_new_type_and_existing_http_connections(monkeypatch, conn_type):
    from clientify_sync.hooks.facturama import FacturamaHook

    body = {"conn_type": conn_type, "host": "https://apisandbox.facturama.mx", "login": "u", "password": "p"}
    monkeypatch.setenv("AIRFLOW_CONN_FACTURAMA_DEFAULT", json.dumps(body))
    assert FacturamaHook().get_settings().base_url == "https://apisandbox.facturama.mx"


def test_every_api_specific_extra_is_described_where_it_is_validated():
    """One definition: the settings field carries the form's description (and choices, when closed)."""
    import dataclasses

    for kind in KINDS.values():
        form = form_fields(kind)
        for settings_class in kind.settings_classes.values():
            fields = {f.name: f for f in dataclasses.fields(settings_class)}
            for name in settings_class.api_extras:
                assert fields[name].metadata.get("description"), f"{settings_class.__name__}.{name}"
                if name == kind.selector:
                    assert form[name]["description"] == kind.selector_help
                else:
                    assert fields[name].metadata["description"] in form[name]["description"]
