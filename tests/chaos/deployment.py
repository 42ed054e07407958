"""Process-level faults on a running e2e stack: find the process that runs a task, kill or stop it,
restart PostgreSQL, the scheduler or a Celery worker.

Why /proc and process titles: Airflow 3.3's task SDK names its processes. A LocalExecutor worker is
``airflow worker -- LocalExecutor: <workload>`` and a Celery pool child ``airflow task supervisor: …``;
either supervises (heartbeats to the API server, relays logs) one forked child titled
``airflow worker -- <task instance uuid>``, which runs the task's Python code: the engine's writes
happen there. So "the task process" is that child, and its parent is the supervisor whose heartbeat
keeps the task instance alive.

Every restarted service is spawned through the harness (``Stack._spawn``), so it joins the stack's
process groups and is stopped with it; nothing here touches a process the stack did not start.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from e2e_stack import Service, Stack, StackError, postgres_bin, wait_for

TASK_TITLE = "airflow worker -- "


@dataclass(frozen=True)
class TaskProcess:
    """The task-code process of one task instance try, and its supervisor."""

    pid: int
    supervisor: int


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def _ppid(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("PPid:"):
            return int(line.split()[1])
    raise StackError(f"no PPid for process {pid}")


def _pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie (exited, not yet reaped)."""
    try:
        return "State:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False


def find_task_process(ti_id: str) -> TaskProcess | None:
    """The process titled with this task instance's id (its try), or ``None`` while it is not up yet."""
    for pid in _pids():
        if _cmdline(pid) == f"{TASK_TITLE}{ti_id}":
            try:
                return TaskProcess(pid, _ppid(pid))
            except (OSError, StackError):
                return None
    return None


def task_processes(stack: Stack) -> list[tuple[int, str]]:
    """Every task-code process of this stack still alive (title and pid), whatever its state in Airflow."""
    found = []
    home = f"AIRFLOW_HOME={stack.airflow_home}".encode()
    for pid in _pids():
        title = _cmdline(pid)
        if not title.startswith(TASK_TITLE) or "LocalExecutor" in title or not alive(pid):
            continue
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if home in environ:
            found.append((pid, title))
    return found


def process_tree(root: int) -> list[int]:
    """``root`` and every process descended from it (task processes sit in process groups of their own)."""
    children: dict[int, list[int]] = {}
    for pid in _pids():
        try:
            children.setdefault(_ppid(pid), []).append(pid)
        except (OSError, StackError):
            continue
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo += children.get(pid, [])
    return tree


def service(stack: Stack, name: str) -> Service:
    """The newest service of that name (a restarted one replaces the old in ``stack.services``)."""
    for candidate in reversed(stack.services):
        if candidate.name == name:
            return candidate
    raise StackError(f"no service {name!r} in this stack")


def respawn(stack: Stack, old: Service, *, env: dict[str, str] | None = None) -> Service:
    """Start the same command again as a new service (same name, same log file, appended).

    The old service stays listed: ``Stack.stop`` then also kills what is left of its process group.
    """
    args = [str(a) for a in old.process.args]  # type: ignore[union-attr]
    # Stack._spawn prefixes runuser itself when given a user; the recorded args already carry it.
    return stack._spawn(old.name, args, env=env)


def kill_group_leftovers(old: Service) -> None:
    """SIGKILL what is left of an exited service's process group (e.g. LocalExecutor workers)."""
    try:
        os.killpg(old.process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def restart_postgres(stack: Stack, *, down_s: float = 0.0) -> float:
    """``pg_ctl stop -m fast`` (what ``pg_ctl restart -m fast`` does first), then start the same postmaster.

    Started again through the harness rather than by ``pg_ctl start``, which would daemonise the new
    postmaster outside the stack's process groups. Returns the seconds it was unavailable.
    """
    old = service(stack, "postgres")
    data = stack.root / "pg"
    stop = [str(postgres_bin() / "pg_ctl"), "stop", "-D", str(data), "-m", "fast", "-w", "-t", "60"]
    if os.geteuid() == 0:
        stop = ["runuser", "-u", data.owner(), "--", *stop]
    started = time.monotonic()
    result = subprocess.run(stop, capture_output=True, text=True, timeout=90)
    if result.returncode != 0:
        raise StackError(f"pg_ctl stop failed ({result.returncode}): {result.stdout}{result.stderr}")
    old.process.wait(timeout=30)
    time.sleep(down_s)
    new = respawn(stack, old)
    import psycopg

    def ready() -> bool:
        with psycopg.connect(stack.db_url("postgres", "postgresql"), connect_timeout=2):
            return True

    wait_for("PostgreSQL to accept connections again", ready, 60, interval=0.2, alive=new.problem)
    return time.monotonic() - started


AIRFLOW_COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")


def revive(stack: Stack) -> list[str]:
    """Start again any Airflow component that exited (what systemd or Kubernetes would do); their names."""
    revived = []
    for name in AIRFLOW_COMPONENTS:
        old = service(stack, name)
        if old.process.poll() is not None:
            kill_group_leftovers(old)
            respawn(stack, old, env=stack.env)
            revived.append(f"{name} (exit {old.process.returncode})")
    return revived


@contextlib.contextmanager
def supervised(stack: Stack, report: Callable[[str], None]) -> Iterator[None]:
    """While the block runs, start again any Airflow component that exits, within a second (what
    systemd's ``Restart=always`` or Kubernetes does): the scheduler exits when its database goes away."""
    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(1.0):
            for name in revive(stack):
                report(f"{name} exited: started again (as a process supervisor would)")

    watcher = threading.Thread(target=watch, name="chaos-supervisor", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        stop.set()
        watcher.join(timeout=30)


def kill_and_restart(stack: Stack, name: str, *, down_s: float, whole_group: bool = False) -> None:
    """``kill -9`` a service's main process (or its whole group), wait ``down_s``, start it again."""
    old = service(stack, name)
    if whole_group:
        os.killpg(old.process.pid, signal.SIGKILL)
    else:
        os.kill(old.process.pid, signal.SIGKILL)
    old.process.wait(timeout=30)
    time.sleep(down_s)
    respawn(stack, old, env=stack.env if name in AIRFLOW_COMPONENTS else None)


def kill_service(stack: Stack, name: str) -> Service:
    """``kill -9`` a service's whole process group (a uvicorn server and any worker it forked) and reap
    it; the dead service, for ``respawn`` once the caller is done with the outage."""
    old = service(stack, name)
    os.killpg(old.process.pid, signal.SIGKILL)
    old.process.wait(timeout=30)
    return old


def respawn_api_server(stack: Stack, old: Service, *, timeout: float = 180) -> float:
    """Start the API server again through the harness and wait until it answers its health check (the
    plugin's routes, the receiver among them, are mounted before it listens). Returns the seconds."""
    started = time.monotonic()
    new = respawn(stack, old, env=stack.env)

    def healthy() -> bool:
        import httpx

        return httpx.get(f"{stack.api_url}/api/v2/monitor/health", timeout=2).is_success

    wait_for("the restarted API server's health check", healthy, timeout, interval=0.2, alive=new.problem)
    return time.monotonic() - started


def celery_worker_environ(old: Service) -> dict[str, str]:
    """The environment a Celery worker was started with (its own name, hostname callable and log port)."""
    raw = Path(f"/proc/{old.process.pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


def warm_shutdown_and_restart(stack: Stack, name: str, *, grace_s: float) -> tuple[float, bool]:
    """SIGTERM a Celery worker (warm shutdown: finish running tasks, take no new ones); after ``grace_s``
    SIGKILL every process of it, its task processes included, as stopping a container or a systemd unit
    does; then start it again. Returns (seconds to stop, was it killed)."""
    old = service(stack, name)
    env = celery_worker_environ(old)
    started = time.monotonic()
    os.kill(old.process.pid, signal.SIGTERM)
    killed = False
    try:
        old.process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        killed = True
        tree = process_tree(old.process.pid)
        os.killpg(old.process.pid, signal.SIGKILL)
        for pid in tree:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        old.process.wait(timeout=30)
    stopped = time.monotonic() - started
    kill_group_leftovers(old)
    respawn(stack, old, env=env)
    return stopped, killed
