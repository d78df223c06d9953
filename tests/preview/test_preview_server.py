"""The preview server over HTTP: what it serves, what it refuses, and the CLI around it."""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from beaver.cli import build_app
from beaver.preview.server import PreviewServer
from beaver.testing.trainset import write_prepared

runner = CliRunner()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[PreviewServer]:
    ds = write_prepared(tmp_path / "ds")
    srv = PreviewServer(ds, host="127.0.0.1", port=0, cache=tmp_path / "thumbs")
    srv.start()
    yield srv
    srv.stop()


def _request(
    srv: PreviewServer,
    method: str,
    path: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
    data = json.dumps(body).encode() if body is not None and not isinstance(body, bytes) else body
    sent = {"Host": f"127.0.0.1:{srv.port}", **(headers or {})}
    if data is not None:
        sent.setdefault("Content-Type", "application/json")
    conn.request(method, path, body=data, headers=sent)
    response = conn.getresponse()
    payload = response.read()
    conn.close()
    return response.status, dict(response.getheaders()), payload


def _edit(srv: PreviewServer, kind: str, body: Any, **headers: str) -> tuple[int, Any]:
    sent = {"X-Beaver-Token": srv.token, **headers}
    status, _, payload = _request(srv, "POST", f"/api/edit/{kind}", body, sent)
    return status, json.loads(payload)


def test_page_gets_the_token_and_strict_headers(server):
    status, headers, body = _request(server, "GET", "/")
    assert status == 200
    page = body.decode()
    assert server.token in page
    assert "{{TOKEN}}" not in page
    assert "Emma — beaver preview" in page
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert "http://" not in page.replace(server.url, "")  # no CDN: every asset is local


def test_dataset_json_lists_every_image_with_its_face(server):
    status, _, body = _request(server, "GET", "/api/dataset")
    data = json.loads(body)
    assert status == 200
    assert data["total_images"] == 47
    first = data["images"][0]
    assert first["filename"] == "close/emma_close_0001.jpg"
    assert (first["width"], first["height"]) == (96, 128)
    assert first["face_bbox"] is not None
    assert first["thumb"].startswith("/thumb/close/emma_close_0001.jpg?v=")
    status, _, _ = _request(server, "GET", first["thumb"])
    assert status == 200


def test_thumbnails_are_made_once_and_cached(server, tmp_path):
    status, headers, body = _request(server, "GET", "/thumb/close/emma_close_0001.jpg")
    assert status == 200
    assert headers["Content-Type"] == "image/jpeg"
    assert body[:2] == b"\xff\xd8"
    cached = list((tmp_path / "thumbs").rglob("*.jpg"))
    assert len(cached) == 1
    _request(server, "GET", "/thumb/close/emma_close_0001.jpg")
    assert list((tmp_path / "thumbs").rglob("*.jpg")) == cached


@pytest.mark.parametrize(
    "path",
    [
        "/image/../metadata.json",
        "/image/..%2fmetadata.json",
        "/image/%2e%2e/%2e%2e/etc/passwd",
        "/image/close/..%2f..%2f.beaver-prep.json",
        "/image/metadata.json",
        "/image//etc/passwd",
        "/thumb/..%2f..%2fetc%2fpasswd",
        "/static/..%2findex.html",
        "/static/%2e%2e%2fserver.py",
        "/static/../editor.py",
        "/static/index.html",  # only through /, with its token
    ],
)
def test_nothing_outside_the_listed_images_is_served(server, path):
    status, _, body = _request(server, "GET", path)
    assert status == 404
    assert b"root:" not in body


def test_edits_need_the_token_this_host_and_json(server):
    body = {"filename": "close/emma_close_0001.jpg", "shot_type": "far"}
    assert _edit(server, "shot", body, **{"X-Beaver-Token": "guess"})[0] == 403
    status, _, _ = _request(server, "POST", "/api/edit/shot", body)  # no token
    assert status == 403
    rebinding = {"Host": f"evil.example:{server.port}"}
    assert _edit(server, "shot", body, **rebinding)[0] == 403
    assert _request(server, "GET", "/api/dataset", headers=rebinding)[0] == 403
    assert _edit(server, "shot", body, Origin="http://evil.example")[0] == 403
    status, _, _ = _request(
        server,
        "POST",
        "/api/edit/shot",
        b"filename=x",
        {"X-Beaver-Token": server.token, "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert status == 415
    # Nothing above changed the dataset.
    assert (server.editor.path / "close" / "emma_close_0001.jpg").is_file()


def test_an_edit_answers_with_the_image_and_the_dataset(server):
    origin = server.url.rstrip("/")
    status, out = _edit(
        server, "shot", {"filename": "close/emma_close_0001.jpg", "shot_type": "far"}, Origin=origin
    )
    assert status == 200
    assert out["image"]["filename"] == "far/emma_far_0013.jpg"
    assert out["dataset"]["shot_distribution"]["far"] == 13
    status, out = _edit(server, "caption", {"filename": "far/emma_far_0013.jpg", "caption": "x"})
    assert (status, out["image"]["caption"]) == (200, "x")


def test_a_request_for_an_image_just_moved_is_sent_on(server):
    # The page asked for the big image; the user changed the shot type before it arrived.
    _edit(server, "shot", {"filename": "close/emma_close_0002.jpg", "shot_type": "mid"})
    _edit(server, "shot", {"filename": "mid/emma_mid_0021.jpg", "shot_type": "far"})
    for kind in ("image", "thumb"):
        status, headers, _ = _request(server, "GET", f"/{kind}/close/emma_close_0002.jpg?v=1")
        assert status == 307
        assert headers["Location"] == f"/{kind}/far/emma_far_0013.jpg"
        assert _request(server, "GET", headers["Location"])[0] == 200
    assert _request(server, "GET", "/image/close/emma_close_0099.jpg")[0] == 404


@pytest.mark.parametrize(
    ("kind", "body", "status", "message"),
    [
        ("shot", {"filename": "close/none.jpg", "shot_type": "far"}, 404, "not in this dataset"),
        ("shot", {"filename": "close/emma_close_0001.jpg", "shot_type": 3}, 400, "shot_type"),
        ("shot", {"filename": "close/emma_close_0001.jpg", "shot_type": "side"}, 400, "side"),
        ("exclude", {"filename": "close/emma_close_0001.jpg", "excluded": "yes"}, 400, "bool"),
        ("caption", {"filename": "close/emma_close_0001.jpg", "caption": ""}, 400, "empty"),
        ("rename", {"filename": "close/emma_close_0001.jpg"}, 404, "Not found"),
        ("shot", [1, 2], 400, "JSON object"),
    ],
)
def test_a_failed_edit_says_why(server, kind, body, status, message):
    got, out = _edit(server, kind, body)
    assert got == status
    assert message in out["error"]


def test_a_write_failure_is_reported_not_raised(server, monkeypatch):
    def full(self: Any, data: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(type(server.editor), "_save", full)
    status, out = _edit(server, "shot", {"filename": "mid/emma_mid_0001.jpg", "shot_type": "close"})
    assert status == 500
    assert out["error"] == "Could not save the edit: No space left on device."


def test_cli_serves_until_interrupted(tmp_path, monkeypatch):
    ds = write_prepared(tmp_path / "ds")

    def interrupted(self: PreviewServer) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(PreviewServer, "serve_forever", interrupted)
    result = runner.invoke(build_app(), ["preview", str(ds), "--port", "0", "--no-browser"])
    assert result.exit_code == 0, result.output
    assert "Preview of" in result.stdout
    assert "http://127.0.0.1:" in result.stdout


def test_cli_says_when_the_port_is_taken_and_warns_beyond_loopback(tmp_path, monkeypatch):
    ds = write_prepared(tmp_path / "ds")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = runner.invoke(build_app(), ["preview", str(ds), "--port", str(port)])
    assert result.exit_code == 1
    assert f"Port {port} on 127.0.0.1 is in use" in result.stderr
    monkeypatch.setattr(PreviewServer, "serve_forever", lambda self: None)
    wide = runner.invoke(
        build_app(), ["preview", str(ds), "--port", "0", "--host", "0.0.0.0", "--no-browser"]
    )
    assert wide.exit_code == 0, wide.output
    assert "anyone who can reach this machine can see the photos" in wide.stderr


def test_cli_refuses_a_folder_that_is_not_a_dataset(tmp_path):
    result = runner.invoke(build_app(), ["preview", str(tmp_path), "--no-browser"])
    assert result.exit_code == 1
    assert "not a beaver prep dataset" in result.stderr
    assert "Traceback" not in result.output
