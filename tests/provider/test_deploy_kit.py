"""The Astro project kit (deploy/astro/) is consistent with the package; Docker itself is not run here."""

from __future__ import annotations

import json
import re
from pathlib import Path

from include.load_settings import read_settings

ROOT = Path(__file__).resolve().parents[2]
KIT = ROOT / "deploy" / "astro"


def test_the_kit_has_the_files_an_astro_project_needs():
    for name in ("Dockerfile", "requirements.txt", "packages.txt", ".dockerignore", ".astro/config.yaml",
                 "dags", "plugins", "include", "airflow_settings.yaml"):  # fmt: skip
        assert (KIT / name).exists(), name
    dockerfile = (KIT / "Dockerfile").read_text()
    assert re.search(r"^FROM astrocrpublic\.azurecr\.io/runtime:3\.3-\d+$", dockerfile, flags=re.M)
    assert "clientify_sync-*.whl" in dockerfile and "[postgres]" in dockerfile
    # The runtime image installs requirements.txt itself: no second Airflow may be pinned there.
    assert not [
        line
        for line in (KIT / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]


def test_the_kits_dag_file_is_the_repositorys_two_lines():
    assert (KIT / "dags" / "clientify_sync_dags.py").read_text() == (
        ROOT / "dags" / "clientify_sync_dags.py"
    ).read_text()


def test_the_kits_settings_use_the_registered_types_and_the_configs_pools():
    from clientify_sync.integrations import load_integrations, parse_integrations
    from clientify_sync.provider import CONNECTION_TYPES

    settings = read_settings(KIT / "airflow_settings.yaml")
    types = {conn_id: c["conn_type"] for conn_id, c in settings["connections"].items()}
    assert {t for t in types.values() if t != "generic"} == {kind.conn_type for kind in CONNECTION_TYPES}
    assert settings["connections"]["clientify_sync_state"]["extra"]["url"].startswith("postgresql+psycopg://")
    config = load_integrations()
    assert {config.clientify_pool} | {p.pool for p in config.platforms} == set(settings["pools"])
    override = json.loads(settings["variables"]["clientify_sync_integrations"])
    assert parse_integrations(override).platform("facturama").schedule == "0 8-20 * * 1-6"
