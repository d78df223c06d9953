"""pull_pack against a real local HTTP server: resume, Range quirks, checksums, no network."""

from __future__ import annotations

import hashlib
import io
import socket
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from beaver.errors import DownloadError, ModelError
from beaver.models.catalog import Artifact, ModelPack
from beaver.models.download import pull_pack
from beaver.progress import Unit


@dataclass
class Behaviour:
    """What the test server does; tests change it between requests."""

    files: dict[str, bytes] = field(default_factory=dict)
    fail_after: int | None = None
    """Send only this many body bytes of the next response, then hang up."""
    ignore_range: bool = False
    wrong_bytes: bool = False
    stall: threading.Event | None = None
    """Wait for this event before answering (to trigger client timeouts)."""
    requests: list[tuple[str, str | None, int]] = field(default_factory=list)
    """(path, Range header, status) of every request served."""


class Handler(BaseHTTPRequestHandler):
    server: Server

    def do_GET(self) -> None:
        b = self.server.behaviour
        if b.stall is not None:
            b.stall.wait(10)
            return
        wanted = self.headers.get("Range")
        body = b.files.get(self.path)
        if body is None:
            b.requests.append((self.path, wanted, 404))
            self.send_error(404)
            return
        if b.wrong_bytes:
            body = bytes(x ^ 0xFF for x in body)
        start = 0
        if wanted and not b.ignore_range:
            start = int(wanted.removeprefix("bytes=").rstrip("-"))
            if start >= len(body):
                b.requests.append((self.path, wanted, 416))
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            status = 206
        else:
            status = 200
        b.requests.append((self.path, wanted, status))
        self.send_response(status)
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        payload = body[start:]
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if b.fail_after is not None:
            payload, b.fail_after = payload[: b.fail_after], None
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:
        pass


class Server(ThreadingHTTPServer):
    behaviour: Behaviour

    def url(self, path: str) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}{path}"


@pytest.fixture
def server() -> Iterator[Server]:
    httpd = Server(("127.0.0.1", 0), Handler)
    httpd.behaviour = Behaviour()
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield httpd
    finally:
        if httpd.behaviour.stall is not None:
            httpd.behaviour.stall.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


@dataclass
class Recorder:
    """A Progress that remembers what it was told."""

    starts: list[tuple[str, float | None, Unit]] = field(default_factory=list)
    updates: list[float] = field(default_factory=list)
    finished: int = 0

    def start(self, description: str, total: float | None = None, unit: Unit = "items") -> None:
        self.starts.append((description, total, unit))

    def update(self, completed: float) -> None:
        self.updates.append(completed)

    def finish(self) -> None:
        self.finished += 1


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_zip(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buf.getvalue()


ONNX_A = b"detector-" * 5000
ONNX_B = b"recognizer-" * 7000


def zip_pack(
    server: Server, data: bytes, *, name: str = "tiny", size: int | None = None
) -> ModelPack:
    server.behaviour.files[f"/{name}.zip"] = data
    return ModelPack(
        name=name,
        description="test pack",
        licence="test",
        artifacts=(
            Artifact(
                url=server.url(f"/{name}.zip"),
                sha256=sha(data),
                filename=f"{name}.zip",
                kind="zip",
                size=size,
            ),
        ),
        approx_size=len(data),
        expected_files=("det.onnx", "rec.onnx"),
    )


def file_pack(server: Server) -> ModelPack:
    server.behaviour.files["/m/det.onnx"] = ONNX_A
    server.behaviour.files["/m/rec.onnx"] = ONNX_B
    return ModelPack(
        name="singles",
        description="test pack of single files",
        licence="test",
        artifacts=tuple(
            Artifact(
                url=server.url(f"/m/{fname}"),
                sha256=sha(data),
                filename=fname,
                kind="file",
                size=len(data),
            )
            for fname, data in (("det.onnx", ONNX_A), ("rec.onnx", ONNX_B))
        ),
        approx_size=len(ONNX_A) + len(ONNX_B),
        expected_files=("det.onnx", "rec.onnx"),
    )


def test_pull_zip_pack_installs_verified_files(server: Server, tmp_path: Path):
    pack = zip_pack(server, make_zip({"det.onnx": ONNX_A, "rec.onnx": ONNX_B, "x.txt": b"x"}))
    progress = Recorder()

    result = pull_pack(pack, tmp_path, progress=progress)

    assert result.downloaded
    assert result.source == "models_dir"
    assert result.path == tmp_path / "tiny"
    assert (tmp_path / "tiny" / "det.onnx").read_bytes() == ONNX_A
    assert (tmp_path / "tiny" / "rec.onnx").read_bytes() == ONNX_B
    assert (tmp_path / "tiny" / "x.txt").read_bytes() == b"x"
    # Nothing left behind: no .part, no staging folders.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny"]
    size = len(server.behaviour.files["/tiny.zip"])
    assert progress.starts[:1] == [("Downloading tiny.zip", size, "bytes")]
    assert progress.updates[-1] == size
    assert progress.finished == len(progress.starts)


def test_pull_flattens_a_zip_with_one_top_level_folder(server: Server, tmp_path: Path):
    data = make_zip({"tiny/det.onnx": ONNX_A, "tiny/rec.onnx": ONNX_B})
    result = pull_pack(zip_pack(server, data), tmp_path)
    assert sorted(p.name for p in result.path.iterdir()) == ["det.onnx", "rec.onnx"]


def test_pull_file_pack(server: Server, tmp_path: Path):
    result = pull_pack(file_pack(server), tmp_path)
    assert (result.path / "det.onnx").read_bytes() == ONNX_A
    assert (result.path / "rec.onnx").read_bytes() == ONNX_B
    assert not (tmp_path / ".downloads").exists()
    assert [r[1] for r in server.behaviour.requests] == [None, None]


def test_interrupted_download_resumes_with_range(server: Server, tmp_path: Path):
    data = make_zip({"det.onnx": ONNX_A, "rec.onnx": ONNX_B})
    pack = zip_pack(server, data)
    server.behaviour.fail_after = 1000

    with pytest.raises(DownloadError, match="Run the same command again to resume"):
        pull_pack(pack, tmp_path)
    part = tmp_path / ".downloads" / "tiny.zip.part"
    assert part.stat().st_size == 1000
    assert not (tmp_path / "tiny").exists()

    progress = Recorder()
    result = pull_pack(pack, tmp_path, progress=progress)

    assert server.behaviour.requests[-1] == ("/tiny.zip", "bytes=1000-", 206)
    assert progress.updates[0] == 1000  # the bar starts where the .part left off
    assert (result.path / "det.onnx").read_bytes() == ONNX_A
    assert not part.exists()


def test_server_ignoring_range_restarts_from_zero(server: Server, tmp_path: Path):
    data = make_zip({"det.onnx": ONNX_A, "rec.onnx": ONNX_B})
    pack = zip_pack(server, data)
    downloads = tmp_path / ".downloads"
    downloads.mkdir()
    # A stale prefix that must not be kept when the server answers 200.
    (downloads / "tiny.zip.part").write_bytes(b"garbage" * 10)
    server.behaviour.ignore_range = True

    result = pull_pack(pack, tmp_path)

    assert server.behaviour.requests == [("/tiny.zip", "bytes=70-", 200)]
    assert (result.path / "rec.onnx").read_bytes() == ONNX_B


def test_complete_part_gets_416_and_is_verified(server: Server, tmp_path: Path):
    data = make_zip({"det.onnx": ONNX_A, "rec.onnx": ONNX_B})
    pack = zip_pack(server, data)
    downloads = tmp_path / ".downloads"
    downloads.mkdir()
    (downloads / "tiny.zip.part").write_bytes(data)

    result = pull_pack(pack, tmp_path)

    assert server.behaviour.requests == [("/tiny.zip", f"bytes={len(data)}-", 416)]
    assert (result.path / "det.onnx").read_bytes() == ONNX_A


def test_complete_part_of_known_size_needs_no_request(server: Server, tmp_path: Path):
    data = make_zip({"det.onnx": ONNX_A, "rec.onnx": ONNX_B})
    pack = zip_pack(server, data, size=len(data))
    downloads = tmp_path / ".downloads"
    downloads.mkdir()
    (downloads / "tiny.zip.part").write_bytes(data)

    pull_pack(pack, tmp_path)

    assert server.behaviour.requests == []
    assert (tmp_path / "tiny" / "det.onnx").is_file()


def test_checksum_mismatch_installs_nothing_and_deletes_part(server: Server, tmp_path: Path):
    data = make_zip({"det.onnx": ONNX_A, "rec.onnx": ONNX_B})
    pack = zip_pack(server, data)
    server.behaviour.wrong_bytes = True

    with pytest.raises(DownloadError) as info:
        pull_pack(pack, tmp_path)

    got = sha(bytes(x ^ 0xFF for x in data))
    message = str(info.value)
    assert f"expected sha256 {sha(data)}" in message
    assert f"got {got}" in message
    assert "again to retry" in message
    assert not (tmp_path / "tiny").exists()
    assert not (tmp_path / ".downloads" / "tiny.zip.part").exists()
    assert list(tmp_path.iterdir()) == []


def test_mismatch_after_416_deletes_the_stale_part(server: Server, tmp_path: Path):
    data = make_zip({"det.onnx": ONNX_A, "rec.onnx": ONNX_B})
    pack = zip_pack(server, data)
    part = tmp_path / ".downloads" / "tiny.zip.part"
    part.parent.mkdir()
    part.write_bytes(b"\0" * len(data))

    with pytest.raises(DownloadError, match="checksum mismatch"):
        pull_pack(pack, tmp_path)
    assert not part.exists()


def test_no_network_says_what_to_download_and_where(tmp_path: Path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/buffalo_l.zip"
    pack = ModelPack(
        name="buffalo_l",
        description="",
        licence="",
        artifacts=(Artifact(url=url, sha256="ab" * 32, filename="buffalo_l.zip", kind="zip"),),
        approx_size=1,
    )
    with pytest.raises(DownloadError) as info:
        pull_pack(pack, tmp_path)
    message = str(info.value)
    assert message.startswith(f"Cannot reach 127.0.0.1:{port} (")
    assert f"Download {url} (sha256 {'ab' * 32}) yourself" in message
    assert f"unzip it into {tmp_path / 'buffalo_l'}/" in message
    assert "`beaver models add PATH --name buffalo_l`" in message
    assert not (tmp_path / "buffalo_l").exists()


def test_stalled_server_times_out(server: Server, tmp_path: Path):
    pack = file_pack(server)
    server.behaviour.stall = threading.Event()
    with pytest.raises(DownloadError, match=r"Cannot reach 127\.0\.0\.1:\d+ \(timed out\)"):
        pull_pack(pack, tmp_path, timeout=0.2)
    assert not (tmp_path / "singles").exists()


def test_http_error_names_url_and_manual_step(server: Server, tmp_path: Path):
    pack = file_pack(server)
    del server.behaviour.files["/m/rec.onnx"]
    with pytest.raises(DownloadError) as info:
        pull_pack(pack, tmp_path)
    message = str(info.value)
    assert message.startswith(f"{server.url('/m/rec.onnx')}: the server answered HTTP 404")
    assert f"put them in {tmp_path / 'singles'}/" in message
    assert not (tmp_path / "singles").exists()


def test_already_installed_does_nothing(server: Server, tmp_path: Path):
    pack = file_pack(server)
    pull_pack(pack, tmp_path)
    served = len(server.behaviour.requests)

    again = pull_pack(pack, tmp_path)

    assert not again.downloaded
    assert again.path == tmp_path / "singles"
    assert len(server.behaviour.requests) == served


def test_installed_under_home_insightface_counts(server: Server, tmp_path: Path):
    home_pack = Path.home() / ".insightface" / "models" / "singles"
    home_pack.mkdir(parents=True)
    (home_pack / "det.onnx").write_bytes(b"x")

    result = pull_pack(file_pack(server), tmp_path / "models")

    assert not result.downloaded
    assert result.source == "insightface"
    assert result.path == home_pack
    assert server.behaviour.requests == []


def test_force_replaces_the_installed_folder(server: Server, tmp_path: Path):
    pack = file_pack(server)
    pull_pack(pack, tmp_path)
    (tmp_path / "singles" / "stale.onnx").write_bytes(b"old")

    result = pull_pack(pack, tmp_path, force=True)

    assert result.downloaded
    assert sorted(p.name for p in result.path.iterdir()) == ["det.onnx", "rec.onnx"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["singles"]


def test_missing_expected_file_installs_nothing(server: Server, tmp_path: Path):
    pack = zip_pack(server, make_zip({"det.onnx": ONNX_A}))
    with pytest.raises(ModelError, match=r"tiny: the download lacks rec\.onnx"):
        pull_pack(pack, tmp_path)
    assert not (tmp_path / "tiny").exists()
    # Only the pack folder is withheld; the verified download stays for inspection.
    assert [p.name for p in tmp_path.iterdir()] == [".downloads"]


def test_not_a_zip_is_deleted(server: Server, tmp_path: Path):
    pack = zip_pack(server, b"this is not a zip file")
    with pytest.raises(DownloadError, match="not a valid zip file"):
        pull_pack(pack, tmp_path)
    assert not (tmp_path / ".downloads" / "tiny.zip.part").exists()
    assert not (tmp_path / "tiny").exists()


def test_invalid_pack_name_is_refused_before_any_request(server: Server, tmp_path: Path):
    pack = file_pack(server)
    bad = ModelPack("../escape", "", "", pack.artifacts, 1)
    with pytest.raises(ModelError, match="Invalid model pack name"):
        pull_pack(bad, tmp_path)
    assert server.behaviour.requests == []


def test_failed_pull_leaves_no_empty_downloads_folder(tmp_path: Path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/a.onnx"
    pack = ModelPack("p", "", "", (Artifact(url, "0" * 64, "a.onnx", "file"),), 1)
    with pytest.raises(DownloadError):
        pull_pack(pack, tmp_path)
    assert list(tmp_path.iterdir()) == []
