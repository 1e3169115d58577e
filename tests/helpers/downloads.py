"""For the download tests: a real HTTP file server on 127.0.0.1 and tiny archives in the real layouts."""
from __future__ import annotations

import hashlib
import io
import json
import re
import socket
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Optional

import numpy as np
import soundfile as sf


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


class FileServer:
    """Serves ``files`` (URL path -> bytes) over HTTP/1.1 with Range support, and records every request.

    Faults, set by the test:
    - ``cut_after[path] = n``: the next request for ``path`` announces the full length, sends ``n`` body bytes
      and closes the connection (one-shot);
    - ``wrong[path] = bytes``: serve these bytes instead of the real ones (checksum failure);
    - ``ignore_range = True``: answer 200 with the whole body even when a Range is asked for.
    """

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.cut_after: dict[str, int] = {}
        self.wrong: dict[str, bytes] = {}
        self.ignore_range = False
        self.requests: list[tuple[str, Optional[str]]] = []  # (path, Range header)
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # keep pytest output clean
                pass

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                rng = self.headers.get("Range")
                with server._lock:
                    server.requests.append((path, rng))
                    cut = server.cut_after.pop(path, None)
                body = server.wrong.get(path, server.files.get(path))
                if body is None:
                    self._reply(404, b"not found", {"Content-Type": "text/plain"})
                    return
                ctype = "application/json" if path.startswith("/api/") else "application/octet-stream"
                status, headers, payload = 200, {"Content-Type": ctype, "Accept-Ranges": "bytes"}, body
                match = re.match(r"^bytes=(\d+)-(\d*)$", rng or "")
                if match and not server.ignore_range:
                    start = int(match.group(1))
                    end = int(match.group(2)) if match.group(2) else len(body) - 1
                    if start >= len(body):
                        self._reply(416, b"", {"Content-Range": f"bytes */{len(body)}"})
                        return
                    end = min(end, len(body) - 1)
                    status, payload = 206, body[start:end + 1]
                    headers["Content-Range"] = f"bytes {start}-{end}/{len(body)}"
                if cut is not None:
                    self.send_response(status)
                    for key, value in headers.items():
                        self.send_header(key, value)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload[:cut])
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return
                self._reply(status, payload, headers)

            def _reply(self, status: int, payload: bytes, headers: dict[str, str]) -> None:
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}{path}"

    def requests_for(self, path: str) -> list[Optional[str]]:
        with self._lock:
            return [rng for p, rng in self.requests if p == path]

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


def flac_bytes(seconds: float, seed: int, rate_hz: int = 16000) -> bytes:
    """A short FLAC of noise (noise so that the archive does not compress to almost nothing)."""
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    sf.write(buf, (rng.standard_normal(int(seconds * rate_hz)) * 3000).astype(np.int16), rate_hz,
             format="FLAC", subtype="PCM_16")
    return buf.getvalue()


def textgrid_text(words: list[str]) -> str:
    """A minimal short-format TextGrid with a "words" tier (content is not parsed by the downloader)."""
    return ('File type = "ooTextFile short"\n"TextGrid"\n\n0\n1\n<exists>\n1\n"IntervalTier"\n"words"\n0\n1\n'
            f'1\n0\n1\n"{" ".join(words)}"\n')


# Relative paths inside the split folder -> content; the same for the tar and the zip.
def librispeech_files() -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    for (spk, chap, utts) in (("84", "121123", 2), ("174", "50561", 1)):
        lines = []
        for k in range(utts):
            utt = f"{spk}-{chap}-{k:04d}"
            files[f"{spk}/{chap}/{utt}.flac"] = flac_bytes(0.4, seed=int(spk) + k)
            lines.append(f"{utt} HELLO WORLD NUMBER {k}")
        files[f"{spk}/{chap}/{spk}-{chap}.trans.txt"] = ("\n".join(lines) + "\n").encode()
    return files


def alignment_files() -> dict[str, bytes]:
    return {
        "84/121123/84-121123-0000.TextGrid": textgrid_text(["hello", "world"]).encode(),
        "84/121123/84-121123-0001.TextGrid": textgrid_text(["hello", "again"]).encode(),
        "174/50561/174-50561-0000.TextGrid": textgrid_text(["world"]).encode(),
    }


def make_tar_gz(files: dict[str, bytes], prefix: str = "LibriSpeech/dev-clean",
                extra: Optional[dict[str, bytes]] = None) -> bytes:
    """A .tar.gz in the openslr layout: ``LibriSpeech/dev-clean/<spk>/<chap>/...`` plus top-level files."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        entries = {f"{prefix}/{rel}": data for rel, data in files.items()}
        entries.update(extra if extra is not None else {"LibriSpeech/README.TXT": b"LibriSpeech readme\n"})
        dirs = sorted({str(Path(name).parent) for name in entries})
        for d in dirs:
            info = tarfile.TarInfo(d)
            info.type = tarfile.DIRTYPE
            info.mode = 0o755
            tar.addfile(info)
        for name, data in sorted(entries.items()):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def make_zip(files: dict[str, bytes], top: str = "", other_split: bool = True) -> bytes:
    """A zip in the Zenodo alignments layout: ``[top/]dev-clean/<spk>/<chap>/<utt>.TextGrid`` and another split."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        pre = f"{top}/" if top else ""
        for rel, data in sorted(files.items()):
            zf.writestr(f"{pre}dev-clean/{rel}", data)
        if other_split:
            zf.writestr(f"{pre}train-clean-100/19/198/19-198-0000.TextGrid", textgrid_text(["other"]))
    return buf.getvalue()


def zenodo_record(key: str, md5_hex: str) -> bytes:
    """A records-API answer shaped like Zenodo's (files[].key / files[].checksum = "md5:...")."""
    return json.dumps({"id": 2619474, "files": [
        {"key": "README.txt", "checksum": "md5:" + "0" * 32, "size": 10},
        {"key": key, "checksum": f"md5:{md5_hex}", "size": 1,
         "links": {"self": f"https://zenodo.org/api/records/2619474/files/{key}/content"}},
    ]}).encode()
