"""The servers under test, how to install them, and how to start and stop them.

Python servers go into their own venv under ``benchmarks/.work/`` (gitignored) so the project's
venv stays clean; the Node contender is installed there with npm from ``benchmarks/node``.
"""

from __future__ import annotations

import configparser
import contextlib
import hashlib
import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from benchmarks.fixtures import ORIGIN, PATH, TEXT_EVENT

REPO = Path(__file__).resolve().parent.parent
BENCHMARKS = REPO / "benchmarks"
WORK = BENCHMARKS / ".work"
VENV = WORK / "venv"
NODE_DIR = WORK / "node"
LOGS = WORK / "logs"

#: Installed into the benchmark venv besides the project's own requirements.
SERVER_PACKAGES = (
    "gunicorn",
    "granian",
    "waitress",
    "bjoern",
    "uwsgi",
    "socketify",
    "fastwsgi",
    "py-spy",
    "pyinstrument",
)


@dataclass(frozen=True)
class Server:
    """A way to serve the app: ``argv(port, workers)`` starts it with ``python`` resolved later."""

    name: str
    #: What must be installed next to ``python``: a module, or ``bin/NAME`` for a program.
    requirement: str | None
    argv: Callable[[str, int, int], list[str]]
    #: Whether it can use several processes (else it is left out of the whole-machine run).
    multi_process: bool = True

    def installed(self, python: str) -> bool:
        if self.requirement is None:
            return True
        if self.requirement.startswith("bin/"):
            return (Path(python).parent / self.requirement[4:]).exists()
        return has_module(python, self.requirement)


def _gunicorn(*extra: str) -> Callable[[str, int, int], list[str]]:
    def argv(python: str, port: int, workers: int) -> list[str]:
        return [
            python,
            "-m",
            "gunicorn",
            "-w",
            str(workers),
            "-b",
            f"127.0.0.1:{port}",
            *extra,
            "benchmarks.wsgi:app",
        ]

    return argv


def _granian(*extra: str) -> Callable[[str, int, int], list[str]]:
    def argv(python: str, port: int, workers: int) -> list[str]:
        return [
            python,
            "-m",
            "granian",
            "--interface",
            "wsgi",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--no-ws",
            "--log-level",
            "warning",
            *extra,
            "benchmarks.wsgi:app",
        ]

    return argv


def _embedded(name: str) -> Callable[[str, int, int], list[str]]:
    def argv(python: str, port: int, workers: int) -> list[str]:
        return [python, "-m", "benchmarks.serve_embedded", name, str(port), str(workers)]

    return argv


def _waitress(python: str, port: int, workers: int) -> list[str]:
    return [
        python,
        "-m",
        "waitress",
        f"--listen=127.0.0.1:{port}",
        "--threads=4",
        "benchmarks.wsgi:app",
    ]


def _uwsgi(python: str, port: int, workers: int) -> list[str]:
    uwsgi = str(Path(python).parent / "uwsgi")
    # --http11-socket: uWSGI's own HTTP parser with keep-alive (--http-socket closes each time).
    return [
        uwsgi,
        "--http11-socket",
        f"127.0.0.1:{port}",
        "--module",
        "benchmarks.wsgi:app",
        "--processes",
        str(workers),
        "--master",
        "--disable-logging",
        "--need-app",
        "--die-on-term",
        "--lazy-apps",
    ]


def _node(python: str, port: int, workers: int) -> list[str]:
    return ["node", str(BENCHMARKS / "node" / "server.js")]


NODE = Server("Node @azure/web-pubsub-express", None, _node)
PYTHON_SERVERS: tuple[Server, ...] = (
    Server("gunicorn sync", "gunicorn", _gunicorn()),
    Server(
        "gunicorn gthread (4 threads)", "gunicorn", _gunicorn("-k", "gthread", "--threads", "4")
    ),
    Server("granian WSGI", "granian", _granian()),
    # HTTP/1 only (no protocol sniffing) and one blocking thread: no GIL hand-offs between
    # Python threads in a CPU-bound worker.
    Server(
        "granian WSGI (--http 1 --blocking-threads 1)",
        "granian",
        _granian("--http", "1", "--blocking-threads", "1"),
    ),
    Server("bjoern", "bjoern", _embedded("bjoern")),
    Server("socketify WSGI", "socketify", _embedded("socketify")),
    Server("fastwsgi", "fastwsgi", _embedded("fastwsgi")),
    Server("uWSGI (http11-socket)", "bin/uwsgi", _uwsgi),
    Server("waitress (4 threads)", "waitress", _waitress, multi_process=False),
)


# --- installing ---------------------------------------------------------------------------------


def log(message: str) -> None:
    print(f"[benchmarks] {message}", file=sys.stderr, flush=True)


def _run(argv: list[str], timeout: float = 600) -> bool:
    log("$ " + " ".join(argv))
    result = subprocess.run(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        log(result.stdout[-2000:])
    return result.returncode == 0


def _apt_install(*packages: str) -> None:
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        log(f"cannot install {' '.join(packages)}: not root or no apt-get")
        return
    _run(["apt-get", "update", "-qq"])
    _run(["apt-get", "install", "-y", "-qq", *packages])


def ensure_wrk(install: bool) -> str | None:
    """The path to ``wrk``, installed from Debian when missing and allowed."""
    if not shutil.which("wrk") and install:
        _apt_install("wrk")
    return shutil.which("wrk")


def _project_requirements() -> list[str]:
    config = configparser.ConfigParser()
    config.read(REPO / "setup.cfg")
    lines = config.get("options", "install_requires", fallback="").splitlines()
    return [line.strip() for line in lines if line.strip()]


def venv_python() -> str:
    return str(VENV / "bin" / "python")


def ensure_venv(install: bool) -> str | None:
    """The benchmark venv's python, created and filled when allowed; ``None`` if absent.

    Servers that fail to install are left out (and reported as skipped); the marker file makes
    a second run skip pip entirely.
    """
    wanted = sorted([*_project_requirements(), *SERVER_PACKAGES])
    digest = hashlib.sha256("\n".join(wanted).encode()).hexdigest()
    marker = VENV / ".installed"
    if marker.exists() and marker.read_text() == digest:
        return venv_python()
    if not install:
        return venv_python() if (VENV / "bin" / "python").exists() else None
    if not (VENV / "bin" / "python").exists():
        _run([sys.executable, "-m", "venv", str(VENV)])
    if not Path("/usr/include/ev.h").exists():
        _apt_install("libev-dev")  # bjoern builds against libev
    pip = [venv_python(), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    _run([*pip, *_project_requirements()])
    for package in SERVER_PACKAGES:  # one at a time: a server that fails to build is skipped
        _run([*pip, package])
    marker.write_text(digest)
    return venv_python()


def ensure_node(install: bool) -> bool:
    """Whether the Node contender is installed (with npm from benchmarks/node/package.json)."""
    if not shutil.which("node"):
        return False
    manifest = (BENCHMARKS / "node" / "package.json").read_bytes()
    installed = NODE_DIR / "package.json"
    ready = (NODE_DIR / "node_modules" / "@azure" / "web-pubsub-express").exists()
    if ready and installed.exists() and installed.read_bytes() == manifest:
        return True
    if not install or not shutil.which("npm"):
        return ready
    NODE_DIR.mkdir(parents=True, exist_ok=True)
    installed.write_bytes(manifest)
    return _run(
        ["npm", "install", "--prefix", str(NODE_DIR), "--no-audit", "--no-fund", "--loglevel=error"]
    )


def has_module(python: str, module: str) -> bool:
    probe = f"import importlib.util, sys; sys.exit(importlib.util.find_spec({module!r}) is None)"
    return subprocess.run([python, "-c", probe], check=False).returncode == 0


# --- running ------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def send(port: int, timeout: float = 5) -> tuple[int, bytes]:
    """Send the text event once on a new connection; (status, body)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("POST", PATH, body=TEXT_EVENT.body, headers=TEXT_EVENT.headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


@dataclass
class Running:
    name: str
    port: int
    process: subprocess.Popen[bytes]


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
    else:
        # Forked workers may outlive their parent: end the whole group we created.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)


@contextlib.contextmanager
def serve(
    server: Server, python: str, app: str, workers: int, cpus: str | None, label: str, logname: str
) -> Iterator[Running]:
    """Start ``server`` in its own process group, wait until it answers the text event correctly."""
    port = free_port()
    env = dict(
        os.environ,
        PYTHONPATH=str(REPO),
        BENCH_APP=app,
        PORT=str(port),
        WORKERS=str(workers),
        NODE_PATH=str(NODE_DIR / "node_modules"),
        ALLOWED_ENDPOINT=f"http://{ORIGIN}",
        NODE_ENV="production",
    )
    argv = server.argv(python, port, workers)
    if cpus is not None:
        argv = ["taskset", "-c", cpus, *argv]
    LOGS.mkdir(parents=True, exist_ok=True)
    logfile = LOGS / (logname.replace(" ", "_").replace("/", "_") + ".log")
    with logfile.open("wb") as out:
        process = subprocess.Popen(
            argv, env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        _wait_ready(process, port, label, logfile)
        yield Running(label, port, process)
    finally:
        _stop(process)


def _wait_ready(process: subprocess.Popen[bytes], port: int, label: str, logfile: Path) -> None:
    deadline = time.monotonic() + 30
    last: object = None
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{label} exited with {process.returncode}; see {logfile}")
        try:
            status, body = send(port)
        except OSError as exc:
            last = exc
            time.sleep(0.1)
            continue
        if status == 200 and body == TEXT_EVENT.body:
            return
        raise RuntimeError(f"{label} answered the echo event with {status} {body[:80]!r}")
    raise RuntimeError(f"{label} did not start within 30 s ({last}); see {logfile}")
