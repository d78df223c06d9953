"""JSON over HTTP to an OpenAI-compatible server, with the standard library only.

Every failure becomes a one-line BackendError naming the URL and saying what to change:
an unreachable server, a timeout, or the server's own error message with its status.
429s, 5xx answers and dropped connections are retried with a doubling pause.
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import socket
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from email.message import Message
from typing import Any

from beaver import __version__
from beaver.errors import BackendError, ConfigError

SECTION = "[plugins.openai]"
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
BACKOFF_S = 0.5
"""Pause before the first retry, doubled for each next one; a Retry-After header may lengthen it."""
MAX_PAUSE_S = 30.0
CHECK_TIMEOUT_S = 10.0
"""The reachability check at creation waits at most this long, whatever ``timeout`` is."""
_MESSAGE_CHARS = 300
_IMAGE_WORDS = ("image", "vision", "multimodal", "mmproj", "multi-modal")


def normalise_base_url(url: str) -> str:
    """``url`` without trailing slashes; raises ConfigError unless it is an http(s) URL."""
    text = url.strip().rstrip("/")
    parts = urllib.parse.urlsplit(text)
    try:
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        parts = parts._replace(netloc="")
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"{SECTION} base_url {url!r} is not an http:// or https:// URL.",
            hint='Write it in full, e.g. base_url = "http://127.0.0.1:8080/v1".',
        )
    if parts.query or parts.fragment:
        raise ConfigError(
            f"{SECTION} base_url {url!r} has a query or fragment.",
            hint='Give the API root only, e.g. base_url = "http://127.0.0.1:8080/v1".',
        )
    return text


@dataclass(frozen=True)
class _Reply:
    status: int
    reason: str
    body: bytes
    headers: Message


class _NoAnswerError(Exception):
    """No HTTP answer came back; ``retry`` when trying again may help."""

    def __init__(self, reason: str, *, retry: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry = retry


class Endpoint:
    """One server: sends JSON requests under ``base_url`` and turns failures into BackendErrors."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None,
        api_key_env: str,
        timeout: float,
        retries: int,
    ) -> None:
        self.base_url = base_url
        self.api_key_env = api_key_env
        self.timeout = timeout
        self.retries = retries
        self.served_models: list[str] = []
        """What GET /models listed, for hints; empty when the server has no such list."""
        self._has_key = api_key is not None
        self._headers = {
            "Accept": "application/json",
            "User-Agent": f"eager-beaver/{__version__}",
        }
        if api_key is not None:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self._opener = _opener_for(base_url)

    def url(self, path: str) -> str:
        """The full URL of ``path`` under the API root."""
        return f"{self.base_url}/{path}"

    def list_models(self) -> list[str]:
        """The ids GET /models lists; also the reachability check (one try, short timeout).

        Any HTTP answer but 401/403 counts as reachable: some servers have no /models.
        """
        try:
            reply = self._exchange("GET", "models", None, min(self.timeout, CHECK_TIMEOUT_S))
        except _NoAnswerError as exc:
            raise BackendError(
                f"{self.base_url}: cannot reach the endpoint ({exc.reason}).",
                hint=f"Start the server, or fix {SECTION} base_url.",
            ) from None
        if reply.status in (401, 403):
            raise self._http_error(reply, self.url("models"))
        if not 200 <= reply.status < 300:
            return []
        try:
            data = json.loads(reply.body)
        except ValueError:
            return []
        entries = data.get("data") if isinstance(data, dict) else None
        if not isinstance(entries, list):
            return []
        ids = [e["id"] for e in entries if isinstance(e, dict) and isinstance(e.get("id"), str)]
        self.served_models = ids
        return ids

    def post_json(self, path: str, payload: dict[str, Any]) -> Any:
        """POST ``payload`` to ``path`` and return the decoded JSON answer, retrying as needed."""
        body = json.dumps(payload).encode("utf-8")
        url = self.url(path)
        attempt = 0
        while True:
            last = attempt >= self.retries
            try:
                reply = self._exchange("POST", path, body, self.timeout)
            except _NoAnswerError as exc:
                if exc.retry and not last:
                    self._pause(attempt, None)
                    attempt += 1
                    continue
                raise self._no_answer_error(url, exc.reason) from None
            if reply.status in RETRY_STATUSES and not last:
                self._pause(attempt, reply.headers.get("Retry-After"))
                attempt += 1
                continue
            if not 200 <= reply.status < 300:
                raise self._http_error(reply, url)
            try:
                return json.loads(reply.body)
            except ValueError:
                raise BackendError(
                    f"{url}: the answer is not JSON ({_snippet(reply.body) or 'empty'}).",
                    hint=f"Check that {SECTION} base_url is the server's OpenAI API root "
                    "(it usually ends in /v1).",
                ) from None

    def _exchange(self, method: str, path: str, body: bytes | None, timeout: float) -> _Reply:
        headers = dict(self._headers)
        if body is not None:
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(self.url(path), data=body, headers=headers, method=method)
        try:
            with self._opener.open(request, timeout=timeout) as response:
                return _Reply(response.status, response.reason, response.read(), response.headers)
        except urllib.error.HTTPError as exc:
            try:
                content = exc.read()
            except (OSError, http.client.HTTPException):
                content = b""
            finally:
                exc.close()
            return _Reply(exc.code, str(exc.reason or ""), content, exc.headers)
        except urllib.error.URLError as exc:
            reason = exc.reason
            retry = isinstance(reason, ConnectionError)
            raise _NoAnswerError(_describe(reason, timeout), retry=retry) from None
        except TimeoutError as exc:
            raise _NoAnswerError(_describe(exc, timeout), retry=False) from None
        except (ConnectionError, http.client.HTTPException) as exc:
            # the server dropped the connection or sent garbage; often a restart or overload
            raise _NoAnswerError(_describe(exc, timeout), retry=True) from None
        except OSError as exc:
            raise _NoAnswerError(_describe(exc, timeout), retry=False) from None

    def _pause(self, attempt: int, retry_after: str | None) -> None:
        pause = BACKOFF_S * 2**attempt
        if retry_after and retry_after.strip().isdigit():  # an HTTP date: doubling will do
            pause = max(pause, float(retry_after))
        time.sleep(min(pause, MAX_PAUSE_S))

    def _no_answer_error(self, url: str, reason: str) -> BackendError:
        if reason.startswith("no answer within"):
            return BackendError(
                f"{url}: {reason}.",
                hint=f"Raise {SECTION} timeout, or lower concurrency if the server queues "
                "requests.",
            )
        return BackendError(
            f"{url}: cannot reach the endpoint ({reason}).",
            hint=f"Start the server, or fix {SECTION} base_url.",
        )

    def _http_error(self, reply: _Reply, url: str) -> BackendError:
        detail = server_message(reply.body)
        status = f"{reply.status} {reply.reason}".strip()
        message = f"{url}: the server answered {status}" + (f": {detail}" if detail else "")
        return BackendError(f"{message}.", hint=self._hint(reply.status, detail.lower()))

    def _hint(self, status: int, detail: str) -> str:
        if status in (401, 403):
            if self._has_key:
                return f"The server refused the key in ${self.api_key_env}: check it."
            return (
                f"The server wants an API key: set the {self.api_key_env} environment variable, "
                f"or point {SECTION} api_key_env at the variable that holds it."
            )
        if status == 413:
            return f"The request is too big for the server: lower {SECTION} image_size."
        if any(word in detail for word in _IMAGE_WORDS):
            return (
                "The model may not accept images: serve a vision model "
                "(llama.cpp needs its --mmproj file)."
            )
        if "model" in detail or status == 404:
            served = ", ".join(self.served_models[:20])
            if served:
                return f"Set {SECTION} model to one the server serves: {served}."
            return f"Check {SECTION} base_url (usually ending in /v1) and model."
        if status == 429:
            return f"The server is rate limiting: lower {SECTION} concurrency."
        if status >= 500:
            return f"See the server's log; lowering {SECTION} concurrency may help."
        return f"Check the {SECTION} options against what the server accepts."


def _opener_for(base_url: str) -> urllib.request.OpenerDirector:
    """An opener that honours proxy settings, except for a server on this machine."""
    host = urllib.parse.urlsplit(base_url).hostname or ""
    if _is_loopback(host):
        return urllib.request.build_opener(urllib.request.ProxyHandler({}))
    return urllib.request.build_opener()


def _is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _describe(reason: BaseException | str, timeout: float) -> str:
    """A few words on why no answer came back."""
    if isinstance(reason, str):
        return reason or "unknown error"
    if isinstance(reason, TimeoutError):
        return f"no answer within {timeout:g} s"
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused"
    if isinstance(reason, socket.gaierror):
        return "host not found"
    if isinstance(reason, ConnectionError | http.client.RemoteDisconnected):
        return "the server closed the connection"
    if isinstance(reason, ssl.SSLCertVerificationError):
        return f"TLS certificate not trusted: {reason.verify_message}"
    if isinstance(reason, http.client.HTTPException):
        return f"a broken HTTP answer: {type(reason).__name__}"
    text = " ".join(str(reason).split())
    return text or type(reason).__name__


def server_message(body: bytes) -> str:
    """The server's error message on one line: OpenAI's ``error.message`` or kin, else the text."""
    try:
        data = json.loads(body)
    except ValueError:
        return _snippet(body)
    found: Any = data
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict):
            found = error.get("message") or error
        elif error:
            found = error
        else:
            found = data.get("message") or data.get("detail") or data
    text = found if isinstance(found, str) else json.dumps(found)
    return _one_line(text)


def _snippet(body: bytes) -> str:
    return _one_line(body.decode("utf-8", errors="replace"))


def _one_line(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= _MESSAGE_CHARS else line[: _MESSAGE_CHARS - 1] + "…"
