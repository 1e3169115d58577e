"""The LibriSpeech download path against a real HTTP server on 127.0.0.1 (no mocks, no network)."""
from __future__ import annotations

import io
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers.downloads import (FileServer, alignment_files, librispeech_files, make_tar_gz, make_zip, md5,
                                     zenodo_record)
from tests.helpers.files import folder_bytes
from tests.helpers.scripts import error_lines, run_script
from wordreps.common.errors import UserError
from wordreps.corpora.librispeech import extract_tar_split, extract_zip_split, zenodo_md5

DOWNLOAD = "datasets/download_librispeech.py"
TAR = "/resources/12/dev-clean.tar.gz"
ZIP = "/records/2619474/files/librispeech_alignments.zip"
API = "/api/records/2619474"


@dataclass
class Site:
    server: FileServer
    tar: bytes
    zip: bytes
    audio_files: dict[str, bytes]
    align_files: dict[str, bytes]

    def args(self, root: Path, *extra: str) -> list[str]:
        return ["--root", str(root), "--url_audio", self.server.url(TAR), "--md5_audio", md5(self.tar),
                "--url_alignments", self.server.url(ZIP) + "?download=1", "--zenodo_api", self.server.url(API),
                "--retry_wait", "0", *extra]


@pytest.fixture(scope="module")
def archives() -> tuple[dict, dict, bytes, bytes]:
    audio, align = librispeech_files(), alignment_files()
    return audio, align, make_tar_gz(audio), make_zip(align)


@pytest.fixture
def site(archives) -> Site:
    audio, align, tar, zp = archives
    server = FileServer()
    server.files = {TAR: tar, ZIP: zp, API: zenodo_record("librispeech_alignments.zip", md5(zp))}
    yield Site(server, tar, zp, audio, align)
    server.close()


def assert_laid_out(root: Path, site: Site) -> None:
    assert folder_bytes(root / "librispeech-clean-16k" / "dev-clean", hidden=False) == site.audio_files
    # only the dev-clean part of the zip, without the zip's other splits
    assert folder_bytes(root / "alignments" / "dev-clean", hidden=False) == site.align_files
    assert not (root / "alignments" / "train-clean-100").exists()
    assert not (root / "librispeech-clean-16k" / "README.TXT").exists()
    assert md5((root / "downloads" / "dev-clean.tar.gz").read_bytes()) == md5(site.tar)
    assert md5((root / "downloads" / "librispeech_alignments.zip").read_bytes()) == md5(site.zip)
    assert not list(root.rglob("*.part")) and not list(root.rglob(".staging-*"))


def test_download_lays_out_and_second_run_does_nothing(site: Site, tmp_path: Path) -> None:
    first = run_script(DOWNLOAD, *site.args(tmp_path))
    assert first.returncode == 0, first.stderr
    assert_laid_out(tmp_path, site)
    # the alignments' md5 came from the records API
    assert site.server.requests_for(API) == [None]
    assert (tmp_path / "librispeech-clean-16k" / ".dev-clean.done.json").exists()
    assert (tmp_path / "alignments" / ".dev-clean.done.json").exists()

    seen = len(site.server.requests)
    again = run_script(DOWNLOAD, *site.args(tmp_path))
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip().count("\n") == 0 and "nothing to do" in again.stdout
    assert len(site.server.requests) == seen  # not even the md5 look-up
    assert_laid_out(tmp_path, site)


def test_cut_connection_is_resumed_with_range(site: Site, tmp_path: Path) -> None:
    cut = 10_000
    assert len(site.tar) > 2 * cut
    site.server.cut_after[TAR] = cut
    result = run_script(DOWNLOAD, *site.args(tmp_path, "--retries", "2", "--no_progress"))
    assert result.returncode == 0, result.stderr
    assert "download interrupted" in result.stderr
    assert site.server.requests_for(TAR) == [None, f"bytes={cut}-"]
    assert_laid_out(tmp_path, site)


def test_interrupted_run_resumes_when_run_again(site: Site, tmp_path: Path) -> None:
    cut = 12_345
    site.server.cut_after[TAR] = cut
    failed = run_script(DOWNLOAD, *site.args(tmp_path, "--retries", "0"))
    assert failed.returncode == 2
    errors = error_lines(failed.stderr)
    assert len(errors) == 1 and "run the same command again to resume" in errors[0], failed.stderr
    part = tmp_path / "downloads" / "dev-clean.tar.gz.part"
    assert part.read_bytes() == site.tar[:cut]
    assert not (tmp_path / "librispeech-clean-16k" / "dev-clean").exists()

    again = run_script(DOWNLOAD, *site.args(tmp_path, "--retries", "0"))
    assert again.returncode == 0, again.stderr
    assert site.server.requests_for(TAR) == [None, f"bytes={cut}-"]
    assert_laid_out(tmp_path, site)


def test_server_ignoring_range_restarts_from_zero(site: Site, tmp_path: Path) -> None:
    site.server.cut_after[TAR] = 5_000
    site.server.ignore_range = True
    result = run_script(DOWNLOAD, *site.args(tmp_path, "--retries", "1", "--no_progress"))
    assert result.returncode == 0, result.stderr
    assert site.server.requests_for(TAR) == [None, "bytes=5000-"]
    assert_laid_out(tmp_path, site)


def test_wrong_checksum_is_one_error_and_nothing_laid_out(site: Site, tmp_path: Path) -> None:
    wrong = bytes(reversed(site.tar))
    site.server.wrong[TAR] = wrong
    result = run_script(DOWNLOAD, *site.args(tmp_path))
    assert result.returncode == 2
    errors = error_lines(result.stderr)
    assert len(errors) == 1, result.stderr
    assert "checksum mismatch" in errors[0] and "dev-clean.tar.gz" in errors[0] and md5(site.tar) in errors[0]
    assert "Traceback" not in result.stderr
    downloads = tmp_path / "downloads"
    assert not (downloads / "dev-clean.tar.gz").exists() and not (downloads / "dev-clean.tar.gz.part").exists()
    assert (downloads / "dev-clean.tar.gz.bad").read_bytes() == wrong
    assert not (tmp_path / "librispeech-clean-16k" / "dev-clean").exists()
    assert not (tmp_path / "alignments").exists()

    # With the right file served, the same command recovers.
    del site.server.wrong[TAR]
    fixed = run_script(DOWNLOAD, *site.args(tmp_path, "--no_progress"))
    assert fixed.returncode == 0, fixed.stderr
    assert_laid_out(tmp_path, site)


def test_alignment_md5_from_zenodo_api_is_enforced(site: Site, tmp_path: Path) -> None:
    site.server.files[API] = zenodo_record("librispeech_alignments.zip", "f" * 32)
    result = run_script(DOWNLOAD, *site.args(tmp_path, "--no_progress"))
    assert result.returncode == 2
    errors = error_lines(result.stderr)
    assert len(errors) == 1 and "librispeech_alignments.zip" in errors[0] and "f" * 32 in errors[0]
    assert not (tmp_path / "alignments" / "dev-clean").exists()
    # The md5 given by hand wins over the API and needs no API call.
    before = len(site.server.requests_for(API))
    fixed = run_script(DOWNLOAD,
                       *site.args(tmp_path, "--no_progress", "--md5_alignments", md5(site.zip)))
    assert fixed.returncode == 0, fixed.stderr
    assert len(site.server.requests_for(API)) == before
    assert_laid_out(tmp_path, site)


def test_http_404_is_one_clear_error(site: Site, tmp_path: Path) -> None:
    args = site.args(tmp_path)
    args[args.index("--url_audio") + 1] = site.server.url("/nope/dev-clean.tar.gz")
    result = run_script(DOWNLOAD, *args)
    assert result.returncode == 2
    errors = error_lines(result.stderr)
    assert len(errors) == 1 and "404" in errors[0] and "/nope/dev-clean.tar.gz" in errors[0]
    assert not (tmp_path / "librispeech-clean-16k" / "dev-clean").exists()


def test_zenodo_md5_lookup(site: Site) -> None:
    assert zenodo_md5(site.server.url(API), "librispeech_alignments.zip", retries=0) == md5(site.zip)
    with pytest.raises(UserError, match="lists no file missing.zip"):
        zenodo_md5(site.server.url(API), "missing.zip", retries=0)


@pytest.mark.parametrize("top", ["", "librispeech_alignments"])
def test_zip_split_found_with_or_without_top_folder(tmp_path: Path, top: str) -> None:
    files = alignment_files()
    archive = tmp_path / "a.zip"
    archive.write_bytes(make_zip(files, top=top))
    staging = tmp_path / "out"
    staging.mkdir()
    assert extract_zip_split(archive, "dev-clean", staging, progress=False) == len(files)
    assert folder_bytes(staging, hidden=False) == files


def _tar_with(member: tarfile.TarInfo, data: bytes = b"") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.addfile(member, io.BytesIO(data) if data else None)
    return buf.getvalue()


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "symlink"])
def test_unsafe_tar_members_are_refused(tmp_path: Path, kind: str) -> None:
    if kind == "symlink":
        member = tarfile.TarInfo("LibriSpeech/dev-clean/84/link")
        member.type, member.linkname = tarfile.SYMTYPE, "/etc/passwd"
        data = b""
    else:
        name = "LibriSpeech/dev-clean/../../../escaped.txt" if kind == "dotdot" else "/tmp/dev-clean/escaped.txt"
        member, data = tarfile.TarInfo(name), b"gotcha"
        member.size = len(data)
    archive = tmp_path / "evil.tar.gz"
    archive.write_bytes(_tar_with(member, data))
    staging = tmp_path / "a" / "b" / "staging"
    staging.mkdir(parents=True)
    with pytest.raises(UserError, match="refusing to unpack"):
        extract_tar_split(archive, "dev-clean", staging, progress=False)
    assert not list(tmp_path.rglob("escaped.txt")) and not list(staging.rglob("*"))


def test_unsafe_zip_member_is_refused(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("dev-clean/../../escaped.TextGrid", "x")
    archive = tmp_path / "evil.zip"
    archive.write_bytes(buf.getvalue())
    staging = tmp_path / "s" / "t"
    staging.mkdir(parents=True)
    with pytest.raises(UserError, match="unsafe member name"):
        extract_zip_split(archive, "dev-clean", staging, progress=False)
    assert not list(tmp_path.rglob("escaped.TextGrid"))


def test_part_file_already_complete_is_accepted(site: Site, tmp_path: Path) -> None:
    """Killed after the last byte but before the rename: the resume request gets 416 and the file is used."""
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    (downloads / "dev-clean.tar.gz.part").write_bytes(site.tar)
    result = run_script(DOWNLOAD, *site.args(tmp_path, "--no_progress"))
    assert result.returncode == 0, result.stderr
    assert site.server.requests_for(TAR) == [f"bytes={len(site.tar)}-"]
    assert_laid_out(tmp_path, site)
