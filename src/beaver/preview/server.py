"""The preview web app: a standard-library HTTP server on loopback, one dataset, one token.

Only three kinds of things are served: the page's own static files, the dataset as JSON,
and images (and their thumbnails) *listed in the dataset's manifest*: a request names an
image by its manifest file name, so no path from a URL ever reaches the file system and
traversal, encoded or not, finds nothing. Writes need the per-run token the page was given,
a JSON body, and a Host/Origin of this server (a page on another site, or a DNS-rebinding
name, cannot edit the dataset).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import mimetypes
import re
import secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from beaver.errors import BeaverError
from beaver.fsutil import write_atomic
from beaver.preview.editor import DatasetEditor, EditError

__all__ = ["PreviewServer", "is_loopback", "thumbnail_cache"]

STATIC = Path(__file__).parent / "static"
THUMB_SIDE = 320
MAX_BODY = 64 * 1024
_STATIC_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_CSP = (
    "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
_EDITS = {
    "shot": ("shot_type", str, "set_shot"),
    "caption": ("caption", str, "set_caption"),
    "exclude": ("excluded", bool, "set_excluded"),
    "emphasis": ("emphasis", bool, "set_emphasis"),
}


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` keeps the page on this machine."""
    return host in ("127.0.0.1", "::1", "localhost") or host.startswith("127.")


def thumbnail_cache() -> Path:
    """Where thumbnails are kept (outside the dataset: trainers must not see them)."""
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("beaver")) / "thumbs"


class PreviewServer:
    """Serves one dataset; ``start()`` runs it in a thread, ``serve_forever()`` in this one."""

    def __init__(
        self,
        dataset: Path,
        *,
        host: str = "127.0.0.1",
        port: int = 8765,
        taxonomy: Path | None = None,
        cache: Path | None = None,
    ) -> None:
        self.editor = DatasetEditor(dataset, taxonomy)
        self.token = secrets.token_urlsafe(24)
        self.cache = cache or thumbnail_cache()
        self._thread: threading.Thread | None = None
        handler = type("Handler", (_Handler,), {"app": self})
        self.httpd = ThreadingHTTPServer((host, port), handler)
        self.httpd.daemon_threads = True
        self.host = host
        self.port = int(self.httpd.server_address[1])

    @property
    def url(self) -> str:
        """The page's address."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def start(self) -> None:
        """Serve in a background thread."""
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def serve_forever(self) -> None:
        """Serve until interrupted."""
        self.httpd.serve_forever()

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self.httpd.shutdown()
        self.httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def allowed_hosts(self) -> set[str] | None:
        """Host header values this server answers to (None: any, when bound beyond loopback).

        On loopback this stops DNS rebinding: a page of another site whose name resolves to
        127.0.0.1 sends its own name as Host and is refused.
        """
        if not is_loopback(self.host):
            return None
        names = {
            "localhost",
            "127.0.0.1",
            "[::1]",
            f"[{self.host}]" if ":" in self.host else self.host,
        }
        return {f"{n}:{self.port}" for n in names}

    def thumbnail(self, filename: str) -> Path | None:
        """A cached JPEG thumbnail of a listed image (made on first request)."""
        path = self.editor.file_for(filename)
        if path is None or not path.exists():
            return None
        stat = path.stat()
        digest = hashlib.sha1(
            f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{THUMB_SIDE}".encode()
        ).hexdigest()
        target = self.cache / digest[:2] / f"{digest}.jpg"
        if not target.exists():
            from io import BytesIO

            from beaver.images import open_image

            # A reduced JPEG decode (DCT scaling, already a good down-scale) to at least the
            # thumbnail's side: a quarter of the pixels a plain Image.thumbnail decodes.
            image = open_image(path, max_side=THUMB_SIDE).convert("RGB")
            image.thumbnail((THUMB_SIDE, THUMB_SIDE))
            buffer = BytesIO()
            image.save(buffer, "JPEG", quality=85)
            target.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(target, buffer.getvalue(), durable=False)
        return target


class _Handler(BaseHTTPRequestHandler):
    app: PreviewServer
    server_version = "beaver-preview"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        del format, args  # the page's requests are not the user's business

    # -- helpers -------------------------------------------------------------------------

    def _send(self, status: int, body: bytes, content_type: str, *, cache: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Content-Security-Policy", _CSP)
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("Cache-Control", "private, max-age=3600" if cache else "no-store")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, payload: Any) -> None:
        body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        self._send(status, body, "application/json; charset=utf-8")

    def _error(self, status: int, message: str) -> None:
        self._json(status, {"error": message})

    def _file(self, path: Path, *, cache: bool = False) -> None:
        kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        if kind.startswith("text/") or kind == "application/javascript":
            kind += "; charset=utf-8"
        self._send(200, path.read_bytes(), kind, cache=cache)

    def _host_ok(self) -> bool:
        allowed = self.app.allowed_hosts()
        return allowed is None or self.headers.get("Host", "") in allowed

    # -- GET -----------------------------------------------------------------------------

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        if not self._host_ok():
            self._error(403, "Unexpected Host header.")
            return
        path = urlsplit(self.path).path
        try:
            if path in ("/", "/index.html"):
                self._index()
            elif path.startswith("/static/"):
                self._static(unquote(path[len("/static/") :]))
            elif path == "/api/dataset":
                self._json(200, self.app.editor.snapshot())
            elif path.startswith("/image/"):
                name = unquote(path[len("/image/") :])
                found = self.app.editor.file_for(name)
                if found is None or not found.exists():
                    self._missing("/image/", name)
                else:
                    self._file(found)
            elif path.startswith("/thumb/"):
                name = unquote(path[len("/thumb/") :])
                thumb = self.app.thumbnail(name)
                if thumb is None:
                    self._missing("/thumb/", name)
                else:
                    self._file(thumb, cache=True)
            else:
                self._error(404, "Not found.")
        except BeaverError as exc:
            self._error(500, str(exc))
        except OSError as exc:
            self._error(500, f"Cannot read a file: {exc.strerror or exc}.")

    def _missing(self, prefix: str, name: str) -> None:
        """404, or a redirect when an edit of this server just moved the image."""
        moved = self.app.editor.moved_to(name)
        if moved is None or self.app.editor.file_for(moved) is None:
            self._error(404, "No such image in this dataset.")
            return
        self.send_response(307)
        self.send_header("Location", prefix + quote(moved))
        self.send_header("Content-Length", "0")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()

    def _index(self) -> None:
        page = (STATIC / "index.html").read_text(encoding="utf-8")
        data = self.app.editor.snapshot()
        title = f"{data['name']} — beaver preview"
        page = page.replace("{{TOKEN}}", self.app.token).replace("{{TITLE}}", _html(title))
        self._send(200, page.encode("utf-8"), "text/html; charset=utf-8")

    def _static(self, name: str) -> None:
        target = STATIC / name
        if not _STATIC_NAME.match(name) or name == "index.html" or not target.is_file():
            self._error(404, "Not found.")
        else:
            self._file(target)

    # -- POST ----------------------------------------------------------------------------

    def do_POST(self) -> None:
        if not self._host_ok():
            self._error(403, "Unexpected Host header.")
            return
        origin = self.headers.get("Origin")
        allowed = self.app.allowed_hosts() or {self.headers.get("Host", "")}
        if origin and urlsplit(origin).netloc not in allowed:
            self._error(403, "Edits are accepted only from this preview's own page.")
            return
        token = self.headers.get("X-Beaver-Token", "")
        if not hmac.compare_digest(token.encode(), self.app.token.encode()):
            self._error(403, "Missing or wrong edit token: reload the page.")
            return
        path = urlsplit(self.path).path
        kind = path.removeprefix("/api/edit/")
        if not path.startswith("/api/edit/") or kind not in _EDITS:
            self._error(404, "Not found.")
            return
        body = self._body()
        if body is None:
            return
        field, kind_type, method = _EDITS[kind]
        filename, value = body.get("filename"), body.get(field)
        if not isinstance(filename, str) or not isinstance(value, kind_type):
            self._error(
                400, f"Send JSON with 'filename' (text) and '{field}' ({kind_type.__name__})."
            )
            return
        try:
            result = getattr(self.app.editor, method)(filename, value)
        except EditError as exc:
            self._error(exc.status, str(exc))
        except BeaverError as exc:
            self._error(500, str(exc))
        except OSError as exc:
            self._error(500, f"Could not save the edit: {exc.strerror or exc}.")
        else:
            self._json(200, {"ok": True, **result})

    def _body(self) -> dict[str, Any] | None:
        if "application/json" not in self.headers.get("Content-Type", ""):
            self._error(415, "Send the edit as application/json.")
            return None
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            length = -1
        if not 0 < length <= MAX_BODY:
            self._error(400, "The request body is missing or too large.")
            return None
        try:
            body = json.loads(self.rfile.read(length))
        except (UnicodeDecodeError, json.JSONDecodeError):
            self._error(400, "The request body is not valid JSON.")
            return None
        if not isinstance(body, dict):
            self._error(400, "The request body must be a JSON object.")
            return None
        return body


def _html(text: str) -> str:
    import html

    return html.escape(text, quote=True)
