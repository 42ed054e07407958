"""The status plugin is registered once: by the entry point when installed, else by the plugins folder."""

from __future__ import annotations

import importlib.metadata
import sys
from importlib.metadata import EntryPoint
from importlib.util import module_from_spec, spec_from_file_location
from pathlib import Path

import pytest

PLUGIN_FILE = Path(__file__).resolve().parents[2] / "plugins" / "clientify_sync_status_plugin.py"


def load_plugin_file(monkeypatch: pytest.MonkeyPatch, installed: list[EntryPoint]):
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group: installed)
    spec = spec_from_file_location("clientify_sync_status_plugin_under_test", PLUGIN_FILE)
    module = module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules.pop(spec.name, None)
    return module


def test_the_plugins_folder_registers_it_when_the_distribution_is_not_installed(monkeypatch):
    from clientify_sync.ui.plugin import ClientifySyncStatusPlugin

    module = load_plugin_file(monkeypatch, [])
    assert module.ClientifySyncStatusPlugin is ClientifySyncStatusPlugin


def test_the_plugins_folder_stays_out_of_the_way_of_the_installed_entry_point(monkeypatch):
    entry = EntryPoint(
        "clientify_sync_status", "clientify_sync.ui.plugin:ClientifySyncStatusPlugin", "airflow.plugins"
    )
    module = load_plugin_file(monkeypatch, [entry])
    assert not hasattr(module, "ClientifySyncStatusPlugin")
