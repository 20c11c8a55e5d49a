"""Servers in subprocesses for the load runs: the emulator, the example app under gunicorn or
granian, nginx in front of granian, and what the reports say about them (resident memory from
/proc, the machine, the versions).

Every process is started with its output in a log file (the emulator prints its connection
string, which holds the access key: that file is never shown), waited for with a deadline, and
stopped with SIGTERM, then SIGKILL after a grace period.
"""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import IO

REPO = Path(__file__).resolve().parents[2]


def free_ports(count: int) -> list[int]:
    """Distinct free ports on loopback (all held open until all are chosen)."""
    probes = [socket.socket() for _ in range(count)]
    try:
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [int(probe.getsockname()[1]) for probe in probes]
    finally:
        for probe in probes:
            probe.close()


def free_port() -> int:
    return free_ports(1)[0]


def process_tree_rss_kib(pid: int) -> int:
    """Resident memory of a process and its descendants, in KiB (Linux /proc)."""
    total = 0
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
        pending.extend(int(child) for child in children)
    return total


def process_tree(pid: int) -> dict[int, bytes]:
    """A process's descendants (not itself), with their command lines."""
    found: dict[int, bytes] = {}
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        for child in map(int, children):
            try:
                found[child] = Path(f"/proc/{child}/cmdline").read_bytes()
            except OSError:
                continue
            pending.append(child)
    return found


def _still_running(pid: int, cmdline: bytes) -> bool:
    """Whether ``pid`` is still that process (same command line) and not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state != "Z" and Path(f"/proc/{pid}/cmdline").read_bytes() == cmdline
    except (OSError, IndexError):
        return False


class ServerProcess:
    """A server in a subprocess; ``stop()`` ends it (and, for gunicorn, its workers)."""

    def __init__(
        self, name: str, command: Sequence[str], log_path: Path,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        self.log_path = log_path
        self._log: IO[bytes] = log_path.open("wb")
        self.process = subprocess.Popen(
            list(command), stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            cwd=REPO, env={**os.environ, **(env or {})},
        )
        #: Set by ``stop()``: the exit code, and how many workers outlived the server.
        self.exit_code: int | None = None
        self.orphans = 0
        #: Set by ``stop()``: how long the server took to stop, in seconds.
        self.stop_seconds: float | None = None
        #: Other logs the server writes itself (nginx's error log), read by ``log_lines``.
        self.extra_logs: list[Path] = []

    @property
    def pid(self) -> int:
        return self.process.pid

    def rss_kib(self) -> int:
        return process_tree_rss_kib(self.pid)

    def wait_http(self, url: str, method: str = "GET", timeout: float = 30.0) -> None:
        """Wait until ``url`` answers with any HTTP status; fail if the process exits."""
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.process.returncode} while starting: "
                    f"{self.log_tail()}"
                )
            # S310: the servers this module starts, on http://127.0.0.1 only.
            request = urllib.request.Request(url, method=method)  # noqa: S310
            try:
                with urllib.request.urlopen(request, timeout=2):  # noqa: S310
                    return
            except urllib.error.HTTPError:
                return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{self.name} did not answer within {timeout:g} s: {self.log_tail()}"
                )
            time.sleep(0.1)

    def log_tail(self, lines: int = 10) -> str:
        """The end of the log, for an error message (never the line with the access key)."""
        if not self._log.closed:
            self._log.flush()
        text = []
        for path in [self.log_path, *self.extra_logs]:
            with contextlib.suppress(FileNotFoundError):
                text += path.read_text(errors="replace").splitlines()[-lines:]
        return " | ".join(line for line in text if "AccessKey=" not in line)

    def stop(self, grace: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL after ``grace`` seconds; the exit code (None when killed).

        Workers still running once the server is gone (a forked worker its master left behind)
        are killed too, and counted in :attr:`orphans`.
        """
        code: int | None = self.process.poll()
        workers = process_tree(self.pid) if code is None else {}
        started = time.monotonic()
        if code is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                code = self.process.wait(grace)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
                code = None
        deadline = time.monotonic() + 5
        while workers and time.monotonic() < deadline:
            workers = {p: c for p, c in workers.items() if _still_running(p, c)}
            time.sleep(0.1)
        for pid, cmdline in workers.items():
            if _still_running(pid, cmdline):
                self.orphans += 1
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
        self._log.close()
        self.exit_code = code
        self.stop_seconds = time.monotonic() - started
        return code

    def exit_problems(self) -> list[str]:
        """Lines for a server that did not exit cleanly on SIGTERM (or died before it), and for
        workers left behind."""
        problems = []
        if self.exit_code != 0:
            problems.append(f"{self.name} exited with {self.exit_code} (None: killed after "
                            "not stopping within 10 s of SIGTERM)")
        if self.orphans:
            problems.append(f"{self.orphans} of {self.name}'s workers outlived it (killed)")
        return problems

    def log_lines(self, *needles: str) -> list[str]:
        """Lines of the log that contain any of ``needles`` (warnings, errors, tracebacks).

        Never the emulator's connection string line, which holds the access key.
        """
        lines = []
        for path in [self.log_path, *self.extra_logs]:
            with contextlib.suppress(FileNotFoundError):
                lines += path.read_text(errors="replace").splitlines()
        return [
            line for line in lines
            if any(n in line for n in needles) and "AccessKey=" not in line
        ]


def start_emulator(
    port: int, access_key: str, log_path: Path, upstream: str | None = None,
) -> ServerProcess:
    """``python -m flask_webpubsub.emulator`` on loopback, warnings only."""
    command = [
        sys.executable, "-m", "flask_webpubsub.emulator", "--port", str(port),
        # One argument: a generated key may start with "-".
        f"--access-key={access_key}", "--log-level", "WARNING",
    ]
    if upstream is not None:
        command += ["--upstream", upstream]
    server = ServerProcess("the emulator", command, log_path)
    try:
        server.wait_http(f"http://127.0.0.1:{port}/api/health", method="HEAD")
    except BaseException:
        server.stop()
        raise
    return server


def start_gunicorn(
    app: str, port: int, log_path: Path, *, workers: int = 2, worker_class: str = "sync",
    threads: int = 1, env: Mapping[str, str] | None = None, ready_path: str = "/",
) -> ServerProcess:
    """``gunicorn`` on loopback; ``app`` is ``module:factory(literal args)``."""
    command = [
        sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}",
        "--workers", str(workers), "--worker-class", worker_class, "--threads", str(threads),
        "--log-level", "warning", "--backlog", "2048", app,
    ]
    return _started(ServerProcess("gunicorn", command, log_path, env=env), port, ready_path)


#: What a server's log must never hold during a run.
LOG_PROBLEMS = ("Traceback", "WARNING", "ERROR", "CRITICAL", "Exception")


#: The options of the deployment guide's production command (docs/deployment.md, "A production
#: server"), but for --host, --port, --workers and the app, which the runs choose.
GRANIAN_OPTIONS: dict[str, str] = {
    "--interface": "wsgi", "--http": "1", "--blocking-threads": "1",
    "--workers-kill-timeout": "30",
}


def granian_command(
    app: str, port: int, *, workers: int = 2, options: Mapping[str, str | None] | None = None,
) -> list[str]:
    """The recommended granian command on ``127.0.0.1:port``, warnings only; ``options`` adds
    options or replaces their values (a value of None: a flag without one)."""
    chosen: dict[str, str | None] = {
        **GRANIAN_OPTIONS, "--workers": str(workers), "--host": "127.0.0.1", "--port": str(port),
        "--log-level": "warning", "--backlog": "2048", **(options or {}),
    }
    command = [str(Path(sys.executable).with_name("granian"))]
    for option, value in chosen.items():
        command += [option] if value is None else [option, value]
    return [*command, app]


def start_granian(
    app: str, port: int, log_path: Path, *, workers: int = 2,
    env: Mapping[str, str] | None = None, ready_path: str = "/",
    options: Mapping[str, str | None] | None = None,
) -> ServerProcess:
    """granian on loopback, as the deployment guide recommends for production (HTTP/1, one blocking
    thread per worker) unless ``options`` says otherwise; ``app`` is ``module:attribute``."""
    command = granian_command(app, port, workers=workers, options=options)
    return _started(ServerProcess("granian", command, log_path, env=env), port, ready_path)


#: The nginx configuration the deployment guide recommends in front of granian, as a template.
NGINX_TEMPLATE = Path(__file__).with_name("nginx.conf.template")


def nginx_config(prefix: Path, temp: Path, port: int, upstream_port: int) -> str:
    """:data:`NGINX_TEMPLATE` for an nginx on ``127.0.0.1:port`` in front of a server on
    ``127.0.0.1:upstream_port``, with its pid file and logs under ``prefix`` and its temporary
    files (request bodies too large to keep in memory) under ``temp``."""
    values = {
        "@PREFIX@": str(prefix), "@TEMP@": str(temp), "@PORT@": str(port),
        "@UPSTREAM_PORT@": str(upstream_port),
    }
    text = NGINX_TEMPLATE.read_text()
    for placeholder, value in values.items():
        text = text.replace(placeholder, value)
    return text


class NginxProcess(ServerProcess):
    """nginx in the foreground; ``stop()`` also removes its directory of temporary files."""

    def __init__(self, command: Sequence[str], log_path: Path, temp: Path) -> None:
        super().__init__("nginx", command, log_path)
        self.temp = temp

    def stop(self, grace: float = 10.0) -> int | None:
        try:
            return super().stop(grace)
        finally:
            shutil.rmtree(self.temp, ignore_errors=True)


def start_nginx(
    port: int, upstream_port: int, prefix: Path, ready_path: str = "/",
) -> ServerProcess:
    """Debian's nginx in the foreground (``daemon off``, so SIGTERM stops it), configured by
    :func:`nginx_config`, its configuration, pid file and logs in ``prefix``.

    The temporary files go to a directory of their own under the system's temporary directory:
    started as root, nginx runs its worker as ``nobody``, which must be able to reach them
    (``prefix``, under pytest's ``tmp_path``, may not be)."""
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(binary).exists():
        raise RuntimeError("nginx is not installed (.ci/install-system-packages.sh installs it)")
    prefix.mkdir(parents=True, exist_ok=True)
    temp = Path(tempfile.mkdtemp(prefix="hardening-nginx-"))
    temp.chmod(0o755)
    config = prefix / "nginx.conf"
    config.write_text(nginx_config(prefix, temp, port, upstream_port))
    command = [binary, "-p", str(prefix), "-c", str(config), "-e", str(prefix / "error.log")]
    server = NginxProcess(command, prefix / "nginx.out", temp)
    server.extra_logs.append(prefix / "error.log")
    return _started(server, port, ready_path)


def _started(server: ServerProcess, port: int, ready_path: str) -> ServerProcess:
    """``server`` once it answers HTTP on ``port``; stopped again if it never does."""
    try:
        server.wait_http(f"http://127.0.0.1:{port}{ready_path}")
    except BaseException:
        server.stop()
        raise
    return server


@contextlib.contextmanager
def stopping(*servers: ServerProcess) -> Iterator[None]:
    try:
        yield
    finally:
        for server in servers:
            server.stop()


# -- what the reports say about the machine ---------------------------------------------------


@dataclass(frozen=True)
class Machine:
    cpu: str
    cores: int
    memory_gib: float
    system: str
    python: str

    def describe(self) -> str:
        return (f"{self.cpu}, {self.cores} cores, {self.memory_gib:.1f} GiB; {self.system}; "
                f"Python {self.python}")


def machine() -> Machine:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = 0.0
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = int(line.split()[1]) / 1024 / 1024
    return Machine(
        cpu=cpu,
        cores=os.cpu_count() or 1,
        memory_gib=memory,
        system=f"{platform.system()} {platform.release()}",
        python=platform.python_version(),
    )


def versions(*packages: str) -> dict[str, str]:
    found = {}
    for name in packages:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def nginx_version() -> str:
    """nginx's version (``nginx -v``), or "not installed"."""
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    try:
        output = subprocess.run(
            [binary, "-v"], capture_output=True, text=True, timeout=10, check=False
        ).stderr
    except OSError:
        return "not installed"
    return output.strip().rpartition("/")[2] or "unknown"


def load_average() -> tuple[float, float, float]:
    return os.getloadavg()


def busy_processes() -> list[str]:
    """Other CPU-heavy work on the machine (benchmarks, wrk, node), by command line.

    Not the hardening runs' own processes: this runner, the servers it starts (granian serves
    ``benchmarks.hardening.chat_wsgi:app`` or ``benchmarks.hardening.signed_wsgi:app``), or
    what it runs itself (wrk).
    """
    found = []
    own = os.getpid()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == own:
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "benchmarks.hardening" in command or _parent(entry) == own:
            continue
        if "benchmarks" in command or command.startswith(("wrk", "node ")) or "/wrk " in command:
            found.append(command.strip()[:120])
    return found



def _parent(entry: Path) -> int | None:
    """The parent process id of ``/proc/<pid>``, or None when it is gone."""
    try:
        return int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None
