"""Slow clients against the recommended production set-up: nginx in front of the deployment
guide's granian command (``benchmarks.hardening.slowclients``; the long form, with the figures, is
``python -m benchmarks.hardening --long --only slow``, in docs/hardening.md, "Slow clients").

Found by the security issue, and measured there, not tested here (a test must not assert the bad
behaviour): under the recommended granian command alone (``--blocking-threads 1``), the WSGI app
reads the request body on the worker's one blocking thread, so a client that sends a signed
event's body a byte every 5 s holds its worker for as long as it keeps sending. With 12 slow-body
and 12 slow-header clients connected to 2 workers for 60 s, 46 of the measuring client's 48
requests failed (p50 and p99 5.0 s, its timeout) and none succeeded for the whole 60 s; the
server recovered within 0.03 s of the slow clients leaving. Slow headers alone stall nothing
(granian reads headers asynchronously, and drops them after 30 s); more blocking threads only
move the line (32 per worker held 12 + 12, not 200 + 200).

nginx reads every request whole, however slowly it comes, before it passes it to granian: with
12 + 12 slow clients for 60 s, and 200 + 200 for 30 s, every measuring request succeeded (p99 5.5
and 9.0 ms). The short form here: 12 + 12, a byte or a line every 2 s, 6 s measured.
"""

from __future__ import annotations

import re
import shutil
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

from benchmarks.fixtures import ACCESS_KEY, HUB, PATH
from benchmarks.hardening import procs
from benchmarks.hardening.slowclients import (
    CONTENT_TYPE,
    NGINX,
    NGINX_PROBLEMS,
    SHORT,
    run_slow_clients,
    serving,
)
from flask_webpubsub.core.service import build_event_headers
from flask_webpubsub.core.wire import MAX_UPSTREAM_BODY_BYTES

DEPLOYMENT = Path(__file__).resolve().parents[2] / "docs" / "deployment.md"


@pytest.fixture(autouse=True)
def nginx_installed() -> None:
    if not (shutil.which("nginx") or Path("/usr/sbin/nginx").exists()):
        pytest.fail("Debian's nginx is not installed: ./run-tests.sh installs it")


def test_other_requests_are_served_while_slow_clients_hang_on(tmp_path: Path) -> None:
    report = run_slow_clients(NGINX, SHORT, tmp_path)
    summary = report.summary()
    assert report.problems() == [], summary
    during = report.during()
    assert len(during) >= SHORT.rate * SHORT.seconds * 0.9, summary
    assert report.failed(during) == 0, summary
    assert report.percentile(during, 0.99) < 100, summary
    # The attack was on all along: every slow client connected through the window, still
    # sending (nginx drops a client only after 10 s without a byte, or of headers).
    assert report.attackers_held(), summary
    for attack in report.attacks:
        assert attack.clients == 12
        assert attack.dribbled >= attack.clients * 2, summary


def send(port: int, body: bytes) -> tuple[int, bytes]:
    """A signed ``echo`` event with ``body``; the reply's status and body."""
    headers = build_event_headers(
        "echo", hub=HUB, connection_id=uuid.uuid4().hex, keys=[ACCESS_KEY], user_id="big",
        content_type=CONTENT_TYPE,
    )
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{PATH}", data=body, headers=headers, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            return reply.status, reply.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_the_largest_event_passes_through_nginx_and_a_larger_one_is_refused(
    tmp_path: Path,
) -> None:
    """nginx's limit is the app's (WEBPUBSUB_MAX_BODY_BYTES' default); a body that large waits
    in one of nginx's temporary files, which its worker must be able to write."""
    with serving(NGINX, tmp_path) as (port, servers):
        largest = b"x" * MAX_UPSTREAM_BODY_BYTES
        assert send(port, largest) == (200, largest)
        status, _ = send(port, largest + b"x")
        assert status == 413
    for server in servers:
        assert server.exit_problems() == []
    granian, nginx = servers[1], servers[0]
    assert granian.log_lines(*procs.LOG_PROBLEMS) == []
    assert nginx.log_lines("a client request body is buffered to a temporary file")
    problems = nginx.log_lines(*procs.LOG_PROBLEMS, *NGINX_PROBLEMS)
    assert len(problems) == 1
    assert "client intended to send too large body: 1114113 bytes" in problems[0]


def test_the_hardening_runs_serve_the_deployment_guides_granian_command() -> None:
    """What the runs start (``procs.granian_command``) is the deployment guide's production
    command, but for the address, the number of workers and the app."""
    match = re.search(r"^\$ (granian --interface wsgi .*)$", DEPLOYMENT.read_text(),
                      re.MULTILINE)
    assert match, "docs/deployment.md names no granian command"
    words = match.group(1).split()[1:-1]  # without "granian" and the app
    options = dict(zip(words[::2], words[1::2], strict=True))
    for chosen in ("--host", "--port", "--workers"):
        options.pop(chosen)
    assert options == procs.GRANIAN_OPTIONS
