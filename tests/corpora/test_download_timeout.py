"""A server that sends headers and then stalls (issue 9): held download_librispeech.py for 121 s per try even
with --retries 0. Now --timeout (default 30 s) ends a try, the total wait is bounded by
(retries + 1) x timeout + the waits between tries, and the stall is one line. A real server on 127.0.0.1."""
from __future__ import annotations

import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.helpers.faults import assert_refused
from tests.helpers.scripts import REPO, script_env
from wordreps.common.errors import UserError
from wordreps.corpora.librispeech import DEFAULT_TIMEOUT_S, download, worst_wait_s


class StallingServer:
    """Answers 200 with a Content-Length, sends ``sent`` bytes of the body, then sends nothing more (until
    closed); counts the requests."""

    def __init__(self, sent: int = 0, length: int = 100_000):
        self.requests = 0
        self.release = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                server.requests += 1
                self.send_response(200)
                self.send_header("Content-Length", str(length))
                self.end_headers()
                self.wfile.write(b"x" * sent)
                self.wfile.flush()
                server.release.wait(120)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def stalling():
    servers = []

    def make(**kw) -> StallingServer:
        servers.append(StallingServer(**kw))
        return servers[-1]

    yield make
    for s in servers:
        s.close()


def test_a_stalled_download_is_one_line_within_the_bound(tmp_path, stalling):
    server = stalling(sent=0)
    start = time.monotonic()
    proc = subprocess.run([sys.executable, str(REPO / "datasets/download_librispeech.py"), "--root", str(tmp_path),
                           "--url_audio", server.url("/dev-clean.tar.gz"), "--md5_audio", "0" * 32,
                           "--md5_alignments", "1" * 32, "--timeout", "1", "--retries", "1", "--retry_wait", "0",
                           "--no_progress"], cwd=REPO, env=script_env(), capture_output=True, text=True, timeout=120)
    elapsed = time.monotonic() - start
    assert_refused(proc, ["the server stalled: no data for 1 s (--timeout)", "after 1 retries", "--timeout"])
    assert server.requests == 2  # the first try and one retry, each ended by the timeout
    # the whole command, interpreter start included, within the bound (2 tries x 1 s) plus start-up slack
    assert elapsed < worst_wait_s(1, 0.0, 1.0) + 30, elapsed
    assert "download interrupted (the server stalled" in proc.stderr  # the retry was announced


def test_bytes_received_before_a_stall_are_kept_for_the_next_run(tmp_path, stalling):
    server = stalling(sent=5000)
    dest = tmp_path / "archive.tar.gz"
    with pytest.raises(UserError, match=r"stalled: no data for 0.5 s.*5000 bytes are kept in .*archive.tar.gz.part"):
        download(server.url("/a"), dest, "0" * 32, retries=0, retry_wait_s=0, progress=False, log=lambda _: None,
                 timeout_s=0.5)
    assert (tmp_path / "archive.tar.gz.part").stat().st_size == 5000


def test_the_default_and_the_bound():
    assert 5 <= DEFAULT_TIMEOUT_S <= 60
    # with the defaults (5 retries, waits of 2 s x k) a server that always stalls holds a download 3 min 30 s
    assert worst_wait_s(5, 2.0, DEFAULT_TIMEOUT_S) == 6 * DEFAULT_TIMEOUT_S + 2.0 * 15
