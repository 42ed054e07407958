"""The distribution as a user installs it: the wheel in a fresh venv, no repository in sight.

One module fixture builds the wheel from pyproject.toml (hatchling, from the repository's venv),
creates a new venv with only ``apache-airflow==3.3.2`` (resolved with ``-c constraints.txt``) and the
wheel, and a throwaway AIRFLOW_HOME whose DAGs folder holds the two-line DAG file. Every ``airflow``
command then runs from that venv with no PYTHONPATH, no ``AIRFLOW_*`` of the suite and its working
directory outside the repository, against the sandbox (started from the repository's venv on free
ports). Slow (a few minutes, mostly pip): ``-k "not wheel"`` skips it while iterating.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.fixtures.sandbox import SandboxHandle

pytestmark = pytest.mark.timeout(1500)

ROOT = Path(__file__).resolve().parents[2]
DAG_FILE = (
    "from clientify_sync.dags import build_dags  # Airflow DAGs: Facturama/FacturaDirecta <-> Clientify\n"
    "\n"
    "globals().update(build_dags())\n"
)
EXPECTED_DAG_IDS = sorted(
    f"{platform}_{entity}"
    for platform in ("facturama", "facturadirecta")
    for entity in ("contacts", "products", "estimates")
)
CONN_TYPES = {
    "facturama": "FacturamaHook",
    "clientify": "ClientifyHook",
    "facturadirecta": "FacturaDirectaHook",
}
WRONG_PASSWORD = "wrong-password-for-the-test"
WRONG_REST_KEY = "wrongK.Wrong0Key0For0The0Test0000000000"  # the shape of a REST key, unknown to the API


@dataclass
class FreshAirflow:
    """A venv holding only Airflow and the wheel, with its own AIRFLOW_HOME and DAGs folder."""

    workdir: Path
    venv: Path
    wheel: Path
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def home(self) -> Path:
        return self.workdir / "airflow-home"

    def env(self, sandbox: SandboxHandle | None = None) -> dict[str, str]:
        """The user's environment: none of the suite's Airflow settings, no PYTHONPATH, the sandbox's connections."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW") and k != "PYTHONPATH"}
        env.update(
            AIRFLOW_HOME=str(self.home),
            AIRFLOW__CORE__DAGS_FOLDER=str(self.workdir / "dags"),
            AIRFLOW__CORE__LOAD_EXAMPLES="False",
            AIRFLOW__CORE__TEST_CONNECTION="Enabled",
            PATH=f"{self.venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        )
        if sandbox is not None:
            env.update(connection_env(sandbox, self.workdir / "ledger.db"))
        return env

    def airflow(
        self, *args: str, sandbox: SandboxHandle | None = None, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        """Run ``airflow <args>`` from the fresh venv (outside the repository) and time it."""
        started = time.monotonic()
        done = subprocess.run([str(self.venv / "bin" / "airflow"), *args], env=self.env(sandbox), cwd=self.workdir,
                              capture_output=True, text=True, timeout=timeout, check=False)  # fmt: skip
        self.timings[" ".join(args[:3])] = time.monotonic() - started
        return done


def connection_env(sandbox: SandboxHandle, ledger: Path) -> dict[str, str]:
    """Connections of the registered types (and one wrong password per type) as AIRFLOW_CONN_* JSON."""
    good = {
        "facturama": {"host": sandbox.facturama_url, "login": sandbox.facturama_user, "password": sandbox.facturama_password},
        "clientify": {"host": sandbox.clientify_url, "password": sandbox.clientify_token},
        "facturadirecta": {"host": sandbox.facturadirecta_url, "password": sandbox.facturadirecta_token},
    }  # fmt: skip
    env = {
        "AIRFLOW_CONN_CLIENTIFY_SYNC_STATE": json.dumps(
            {"conn_type": "generic", "extra": {"url": f"sqlite:///{ledger}"}}
        )
    }
    for conn_type, fields in good.items():
        env[f"AIRFLOW_CONN_{conn_type.upper()}_DEFAULT"] = json.dumps({"conn_type": conn_type, **fields})
        env[f"AIRFLOW_CONN_{conn_type.upper()}_WRONG"] = json.dumps(
            {"conn_type": conn_type, **fields, "password": WRONG_PASSWORD}
        )
    # The facturadirecta type on the REST API (extra api: rest), the emulator's main company.
    config = sandbox.config("facturadirecta")
    rest = {"conn_type": "facturadirecta", "host": sandbox.facturadirecta_url, "password": config["rest_api_key"],
            "extra": {"api": "rest", "company_id": config["rest_company_id"], "plan": config["rest_plan"]}}  # fmt: skip
    env["AIRFLOW_CONN_FACTURADIRECTA_REST"] = json.dumps(rest)
    env["AIRFLOW_CONN_FACTURADIRECTA_REST_WRONG"] = json.dumps({**rest, "password": WRONG_REST_KEY})
    return env


def json_output(stdout: str) -> list[dict]:
    """The JSON list an ``airflow ... -o json`` command printed (log lines may come before it)."""
    for line in reversed(stdout.splitlines()):
        if line.startswith("["):
            return json.loads(line)
    raise AssertionError(f"no JSON list in:\n{stdout[-3000:]}")


def _run(cmd: list[str], timeout: float, **kwargs: object) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False, **kwargs)
    assert done.returncode == 0, f"{' '.join(cmd[:4])} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FreshAirflow]:
    workdir = tmp_path_factory.mktemp("fresh-airflow")
    timings: dict[str, float] = {}
    started = time.monotonic()
    _run([sys.executable, "-m", "pip", "wheel", "--no-build-isolation", "--no-deps", "-q", "-w", str(workdir / "dist"), str(ROOT)],
         timeout=300)  # fmt: skip
    (wheel,) = (workdir / "dist").glob("clientify_sync-*.whl")
    timings["build wheel"] = time.monotonic() - started
    venv = workdir / "venv"
    started = time.monotonic()
    _run([sys.executable, "-m", "venv", str(venv)], timeout=120)
    # --no-compile: byte-compiling all of Airflow up front costs more than compiling what is imported.
    _run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-compile", "-c", str(ROOT / "constraints.txt"),
          "apache-airflow==3.3.2", str(wheel)], timeout=1200, cwd=workdir)  # fmt: skip
    timings["fresh venv + pip install"] = time.monotonic() - started
    (workdir / "dags").mkdir()
    (workdir / "dags" / "clientify_sync_dags.py").write_text(DAG_FILE)
    env = FreshAirflow(workdir, venv, wheel, timings)
    migrated = env.airflow("db", "migrate", timeout=600)  # even `dags list --local` wants the metadata DB
    assert migrated.returncode == 0, migrated.stderr[-3000:]
    yield env
    print("\nwheel test timings (s): " + ", ".join(f"{k} {v:.1f}" for k, v in env.timings.items()))
    shutil.rmtree(workdir, ignore_errors=True)


def test_the_venv_has_no_repository_code(fresh: FreshAirflow) -> None:
    script = "import clientify_sync, importlib.util as u; print(clientify_sync.__file__); print(u.find_spec('include'))"
    done = _run(
        [str(fresh.venv / "bin" / "python"), "-c", script], timeout=60, env=fresh.env(), cwd=fresh.workdir
    )
    location, include = done.stdout.split()
    assert location.startswith(str(fresh.venv)) and "site-packages" in location
    assert include == "None"  # the repository's include/ (sandbox, demo, example config) is not there
    config = Path(location).parent / "config" / "integrations.yaml"
    assert config.is_file()  # the packaged defaults travel with the wheel


def test_providers_list_shows_it_with_its_three_connection_types(fresh: FreshAirflow) -> None:
    done = fresh.airflow("providers", "list", "-o", "json")
    assert done.returncode == 0, done.stderr[-3000:]
    providers = {p["package_name"]: p for p in json_output(done.stdout)}
    assert providers["clientify-sync"]["version"] == fresh.wheel.name.split("-")[1]
    done = fresh.airflow("providers", "hooks", "-o", "json")
    hooks = {h["connection_type"]: h for h in json_output(done.stdout)}
    for conn_type, hook_class in CONN_TYPES.items():
        assert hooks[conn_type]["package_name"] == "clientify-sync"
        assert hooks[conn_type]["class"] == f"clientify_sync.hooks.{conn_type}.{hook_class}"
    # The status pages come in through the airflow.plugins entry point (no plugins folder here).
    done = fresh.airflow("plugins", "-o", "json")
    plugins = {p["name"]: p for p in json_output(done.stdout)}
    assert "clientify_sync_status" in plugins, done.stdout[-2000:]


def test_the_six_dags_import_from_the_two_line_file(fresh: FreshAirflow) -> None:
    done = fresh.airflow("dags", "list", "--local", "-o", "json")
    assert done.returncode == 0, done.stderr[-3000:]
    dags = json_output(done.stdout)
    assert sorted(d["dag_id"] for d in dags) == EXPECTED_DAG_IDS
    assert {Path(d["fileloc"]).name for d in dags} == {"clientify_sync_dags.py"}
    errors = fresh.airflow("dags", "list-import-errors", "--local", "-o", "json")
    assert errors.returncode == 0 and "clientify_sync_dags.py" not in errors.stdout


def test_connections_test_runs_each_hook_against_the_sandbox(
    fresh: FreshAirflow, clean_sandbox: SandboxHandle
) -> None:
    pairs = [(f"{t}_default", f"{t}_wrong") for t in CONN_TYPES] + [
        ("facturadirecta_rest", "facturadirecta_rest_wrong")
    ]
    conn_ids = [conn_id for pair in pairs for conn_id in pair]
    with ThreadPoolExecutor(max_workers=3) as pool:
        results = dict(
            zip(
                conn_ids,
                pool.map(lambda c: fresh.airflow("connections", "test", c, sandbox=clean_sandbox), conn_ids),
                strict=True,
            )
        )
    for good_id, wrong_id in pairs:
        good, wrong = results[good_id], results[wrong_id]
        assert good.returncode == 0 and "Connection success!" in good.stdout, (
            good.stdout[-2000:] + good.stderr[-2000:]
        )
        assert wrong.returncode == 1 and "Connection failed!" in wrong.stdout, wrong.stdout[-2000:]
        assert "rejected the credentials (HTTP 401)" in wrong.stdout
        assert (
            WRONG_PASSWORD not in wrong.stdout + wrong.stderr
            and WRONG_REST_KEY not in wrong.stdout + wrong.stderr
        )
    # Airflow prints the hook's message on failure only: the REST client answered this one.
    assert (
        "FacturaDirecta (REST API) rejected the credentials (HTTP 401)"
        in results["facturadirecta_rest_wrong"].stdout
    )


def test_a_dag_runs_against_the_sandbox(fresh: FreshAirflow, clean_sandbox: SandboxHandle) -> None:
    clean_sandbox.seed("facturama", clients=5, seed=21)
    clean_sandbox.seed("clientify", contacts=3, seed=22, country="MX")
    with clean_sandbox.clientify_client() as client:
        before = client.get("/v1/contacts/").json()["count"]
    done = fresh.airflow(
        "dags", "test", "facturama_contacts", "-c", '{"mode": "full"}', sandbox=clean_sandbox, timeout=600
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    assert "DagRun Finished: dag_id=facturama_contacts" in output and "state=success" in output, output[
        -4000:
    ]
    with clean_sandbox.clientify_client() as client:
        after = client.get("/v1/contacts/").json()["count"]
    assert after > before  # Facturama's persons reached Clientify through the installed package
