"""The openai captioner against a real OpenAI-compatible HTTP server started by the test.

The fake server implements GET /v1/models and POST /v1/chat/completions, checks each
request's shape (a JPEG data URL no larger than ``image_size``, a text prompt), and answers
with the photo's dominant colour, so that tests can tell which answer belongs to which photo.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import socket
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageStat

import beaver_openai
from beaver.errors import BackendError, ConfigError
from beaver.images import open_image
from beaver.interfaces import Caption, Captioner
from beaver.plugins import make_plugin_manager
from beaver_openai import _client
from beaver_openai._captioner import clean_caption

RED, GREEN, BLUE, GREY = (200, 30, 20), (20, 180, 40), (10, 30, 220), (128, 128, 128)
JPEG_PREFIX = "data:image/jpeg;base64,"


@dataclass
class Fake:
    """What the fake server answers, and what it saw."""

    base_url: str = ""
    models: list[str] | None = field(default_factory=lambda: ["tiny-vlm"])
    """Ids GET /v1/models lists; None: it answers 404, like a server without that route."""
    max_side: int = 1024
    delay: float = 0.0
    """Seconds each chat request takes (woken early when the test ends)."""
    script: list[int] = field(default_factory=list)
    """Statuses to answer first, one per chat request; 0 drops the connection unanswered."""
    always: int | None = None
    error: dict[str, Any] = field(default_factory=lambda: {"error": {"message": "it broke"}})
    api_key: str | None = None
    """When set, every request without ``Bearer <api_key>`` gets a 401."""
    style: str = "plain"
    requests: list[tuple[str, str, dict[str, str], Any]] = field(default_factory=list)
    sizes: list[tuple[int, int]] = field(default_factory=list)
    server_errors: list[str] = field(default_factory=list)
    """Exceptions in the fake server's own code (a test bug, not the client's)."""
    in_flight: int = 0
    max_in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    release: threading.Event = field(default_factory=threading.Event)

    def chats(self) -> list[dict[str, Any]]:
        return [body for method, _path, _headers, body in self.requests if method == "POST"]

    def answer_chat(self, body: Any) -> tuple[int, Any]:
        with self.lock:
            scripted = self.script.pop(0) if self.script else None
        if scripted is not None:
            return scripted, {"error": {"message": f"scripted {scripted}", "code": scripted}}
        if self.always is not None:
            return self.always, self.error
        try:
            image = self.check_request(body)
        except AssertionError as exc:
            return 400, {"error": {"message": f"bad request: {exc}"}}
        colour = dominant_colour(image)
        content: Any = f"a {colour} square"
        finish = "stop"
        if self.style == "parts":
            content = [
                {"type": "text", "text": f"a {colour}"},
                {"type": "image_url", "image_url": {"url": "ignored"}},
                {"type": "text", "text": "square"},
            ]
        elif self.style == "think":
            content = f'<think>\nThe pixels look {colour}.\n</think>\n\n "a {colour} square"\n'
        elif self.style == "error-in-200":
            return 200, {"error": {"message": "the model crashed", "type": "server_error"}}
        elif self.style == "thinking-forever":
            content, finish = "<think>\nHmm, let me look at every pixel", "length"
        usage = {"prompt_tokens": 100, "completion_tokens": 4, "total_tokens": 104}
        return 200, {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "model": body.get("model", "tiny-vlm"),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": finish,
                }
            ],
            "usage": usage,
        }

    def check_request(self, body: Any) -> Image.Image:
        """The photo in a well-formed request; AssertionError says what is wrong."""
        assert body.get("stream") is False
        assert isinstance(body.get("max_tokens"), int)
        if self.models is not None and len(self.models) == 1:
            assert body.get("model") == self.models[0], body.get("model")
        user = body["messages"][-1]
        assert user["role"] == "user"
        texts = [p["text"] for p in user["content"] if p["type"] == "text"]
        urls = [p["image_url"]["url"] for p in user["content"] if p["type"] == "image_url"]
        assert len(texts) == 1, "one text part"
        assert texts[0].strip(), "a prompt"
        assert len(urls) == 1, "one image part"
        assert urls[0].startswith(JPEG_PREFIX), "a JPEG data URL"
        image = Image.open(io.BytesIO(base64.b64decode(urls[0][len(JPEG_PREFIX) :])))
        assert image.format == "JPEG"
        assert max(image.size) <= self.max_side, f"{image.size} is over {self.max_side}"
        with self.lock:
            self.sizes.append(image.size)
        return image.convert("RGB")


def dominant_colour(image: Image.Image) -> str:
    r, g, b = ImageStat.Stat(image).mean
    if max(r, g, b) - min(r, g, b) < 40:
        return "grey"
    return ("red", "green", "blue")[(r, g, b).index(max(r, g, b))]


class FakeServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, fake: Fake) -> None:
        super().__init__(("127.0.0.1", 0), FakeHandler)
        self.fake = fake

    def handle_error(self, request: Any, client_address: Any) -> None:
        error = sys.exc_info()[1]
        # a client that timed out and left: writing the late answer fails, as it should
        if not isinstance(error, BrokenPipeError | ConnectionResetError):
            self.fake.server_errors.append(repr(error))


class FakeHandler(BaseHTTPRequestHandler):
    server: FakeServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def record(self, body: Any) -> bool:
        """Record the request; False when it lacks the key the server wants."""
        fake = self.server.fake
        with fake.lock:
            fake.requests.append((self.command, self.path, dict(self.headers), body))
        return fake.api_key is None or self.headers.get("Authorization") == (
            f"Bearer {fake.api_key}"
        )

    def do_GET(self) -> None:
        fake = self.server.fake
        if not self.record(None):
            self.reply(401, {"error": {"message": "Invalid API key", "type": "auth"}})
        elif self.path == "/v1/models" and fake.models is not None:
            self.reply(200, {"object": "list", "data": [{"id": m} for m in fake.models]})
        else:
            self.reply(404, {"error": {"message": "File Not Found"}})

    def do_POST(self) -> None:
        fake = self.server.fake
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if not self.record(body):
            self.reply(401, {"error": {"message": "Invalid API key", "type": "auth"}})
            return
        if self.path != "/v1/chat/completions":
            self.reply(404, {"error": {"message": "File Not Found"}})
            return
        with fake.lock:
            fake.in_flight += 1
            fake.max_in_flight = max(fake.max_in_flight, fake.in_flight)
        try:
            if fake.delay:
                fake.release.wait(fake.delay)
            status, answer = fake.answer_chat(body)
        finally:
            with fake.lock:
                fake.in_flight -= 1
        if status == 0:
            self.close_connection = True  # hang up without a word
            return
        self.reply(status, answer)

    def reply(self, status: int, answer: Any) -> None:
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_client, "BACKOFF_S", 0.01)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)


@pytest.fixture
def fake() -> Iterator[Fake]:
    state = Fake()
    server = FakeServer(state)
    state.base_url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield state
    state.release.set()
    server.shutdown()
    server.server_close()
    thread.join(5)
    assert state.server_errors == []


def create(**options: Any) -> Any:
    manager = make_plugin_manager(
        entry_points=[], extra_plugins=[(beaver_openai, "openai")], env={}
    )
    return manager.captioners().get("openai").create(options)


def square(colour: tuple[int, int, int], size: tuple[int, int] = (64, 64)) -> Image.Image:
    return Image.new("RGB", size, colour)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_batch_captions_come_back_in_order_from_parallel_requests(fake):
    fake.delay = 0.25
    colours = [RED, GREEN, BLUE, GREY, BLUE, RED]
    sizes = [(64, 64), (10, 10), (2000, 100), (3000, 2000), (480, 640), (1, 1)]
    captioner = create(base_url=fake.base_url, concurrency=3)

    started = time.monotonic()
    captions = captioner.caption([square(c, s) for c, s in zip(colours, sizes, strict=True)])
    elapsed = time.monotonic() - started

    assert isinstance(captioner, Captioner)
    assert [c.text for c in captions] == [
        "a red square",
        "a green square",
        "a blue square",
        "a grey square",
        "a blue square",
        "a red square",
    ]
    assert fake.max_in_flight == 3
    assert elapsed < 6 * fake.delay  # two rounds of three, not six one after the other
    assert len(fake.chats()) == 6
    assert sorted(fake.sizes) == sorted(
        [(64, 64), (10, 10), (1024, 51), (1024, 683), (480, 640), (1, 1)]
    )


def test_photos_are_reduced_to_image_size_and_sent_as_jpeg(fake):
    fake.max_side = 300
    captioner = create(base_url=fake.base_url, image_size=300)

    captions = captioner.caption([square(RED, (3000, 2000)), square(BLUE, (200, 900))])

    assert captioner.image_size == 300
    assert [c.text for c in captions] == ["a red square", "a blue square"]
    assert sorted(fake.sizes) == [(67, 300), (300, 200)]


def test_options_go_into_the_request(fake):
    captioner = create(
        base_url=fake.base_url,
        prompt="Name the colour.",
        system="You caption photos.",
        max_tokens=42,
        temperature=0.0,
    )

    captions = captioner.caption([square(GREEN)])

    (body,) = fake.chats()
    assert body["model"] == "tiny-vlm"
    assert body["max_tokens"] == 42
    assert body["temperature"] == 0.0
    assert body["messages"][0] == {"role": "system", "content": "You caption photos."}
    assert {"type": "text", "text": "Name the colour."} in body["messages"][1]["content"]
    assert captions[0] == Caption(
        "a green square",
        extra={
            "finish_reason": "stop",
            "usage": {"prompt_tokens": 100, "completion_tokens": 4, "total_tokens": 104},
        },
    )


def test_the_only_served_model_is_used_and_recorded(fake):
    captioner = create(base_url=fake.base_url + "/")

    captioner.caption([square(RED)])

    assert captioner.model_id == f"tiny-vlm@{fake.base_url}"
    assert fake.chats()[0]["model"] == "tiny-vlm"
    assert [(m, p) for m, p, _h, _b in fake.requests] == [
        ("GET", "/v1/models"),
        ("POST", "/v1/chat/completions"),
    ]


def test_the_model_option_wins_over_the_served_list(fake):
    fake.models = ["tiny-vlm", "llava:7b"]
    captioner = create(base_url=fake.base_url, model="llava:7b")

    captioner.caption([square(RED)])

    assert captioner.model_id == f"llava:7b@{fake.base_url}"
    assert fake.chats()[0]["model"] == "llava:7b"


@pytest.mark.parametrize("models", [None, ["a", "b"]], ids=["no-models-route", "two-models"])
def test_without_a_clear_model_none_is_sent(fake, models):
    fake.models = models
    captioner = create(base_url=fake.base_url)

    captions = captioner.caption([square(BLUE)])

    assert captions[0].text == "a blue square"
    assert captioner.model_id == f"default@{fake.base_url}"
    assert "model" not in fake.chats()[0]


def test_the_bearer_key_is_sent_only_when_its_variable_is_set(fake, monkeypatch):
    create(base_url=fake.base_url).caption([square(RED)])
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    create(base_url=fake.base_url).caption([square(RED)])
    monkeypatch.setenv("LOCAL_KEY", "sk-local")
    create(base_url=fake.base_url, api_key_env="LOCAL_KEY").caption([square(RED)])

    auth = [headers.get("Authorization") for _m, _p, headers, _b in fake.requests]
    assert auth == [None, None, "Bearer sk-test", "Bearer sk-test"] + ["Bearer sk-local"] * 2


def test_a_server_that_wants_a_key_names_the_variable(fake, monkeypatch):
    fake.api_key = "sk-right"

    with pytest.raises(BackendError) as missing:
        create(base_url=fake.base_url, api_key_env="LLAMA_KEY")
    monkeypatch.setenv("LLAMA_KEY", "sk-wrong")
    with pytest.raises(BackendError) as wrong:
        create(base_url=fake.base_url, api_key_env="LLAMA_KEY")
    monkeypatch.setenv("LLAMA_KEY", "sk-right")
    captions = create(base_url=fake.base_url, api_key_env="LLAMA_KEY").caption([square(RED)])

    assert "401" in missing.value.message
    assert "Invalid API key" in missing.value.message
    assert "set the LLAMA_KEY environment variable" in str(missing.value.hint)
    assert "$LLAMA_KEY" in str(wrong.value.hint)
    assert captions[0].text == "a red square"


def forbid_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_network(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the captioner touched the network")

    monkeypatch.setattr(urllib.request.OpenerDirector, "open", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)


def test_no_base_url_sends_nothing(monkeypatch):
    forbid_network(monkeypatch)

    with pytest.raises(ConfigError) as caught:
        create()

    assert "needs an endpoint" in caught.value.message
    assert 'base_url = "http://127.0.0.1:8080/v1"' in str(caught.value)


@pytest.mark.parametrize(
    "url", ["ftp://127.0.0.1/v1", "127.0.0.1:8080/v1", "localhost:8080", "http://", "http://h:x/v1"]
)
def test_a_base_url_that_is_not_http_is_refused(url, monkeypatch):
    forbid_network(monkeypatch)

    with pytest.raises(ConfigError) as caught:
        create(base_url=url)

    assert repr(url) in caught.value.message


def test_an_unreachable_endpoint_is_named_at_creation():
    url = f"http://127.0.0.1:{closed_port()}/v1"

    with pytest.raises(BackendError) as caught:
        create(base_url=url)

    assert caught.value.message == f"{url}: cannot reach the endpoint (connection refused)."
    assert "Start the server" in str(caught.value.hint)


def test_a_429_is_retried(fake):
    fake.script = [429, 503]
    captioner = create(base_url=fake.base_url, retries=2)

    captions = captioner.caption([square(GREEN)])

    assert captions[0].text == "a green square"
    assert len(fake.chats()) == 3


def test_a_dropped_connection_is_retried(fake):
    fake.script = [0]
    captioner = create(base_url=fake.base_url)

    assert captioner.caption([square(BLUE)])[0].text == "a blue square"
    assert len(fake.chats()) == 2


def test_a_500_after_the_retries_names_the_status(fake):
    fake.always = 500
    fake.error = {"error": {"message": "CUDA error: out of memory\n  at ggml.c:123"}}
    captioner = create(base_url=fake.base_url, retries=2)

    with pytest.raises(BackendError) as caught:
        captioner.caption([square(RED)])

    assert len(fake.chats()) == 3
    assert caught.value.message == (
        f"{fake.base_url}/chat/completions: the server answered 500 Internal Server Error: "
        "CUDA error: out of memory at ggml.c:123."
    )
    assert "server's log" in str(caught.value.hint)


def test_too_many_429s_say_to_slow_down(fake):
    fake.always = 429
    captioner = create(base_url=fake.base_url, retries=0)

    with pytest.raises(BackendError) as caught:
        captioner.caption([square(RED)])

    assert len(fake.chats()) == 1
    assert "429" in caught.value.message
    assert "concurrency" in str(caught.value.hint)


def test_a_model_without_vision_is_told_apart(fake):
    fake.always = 400
    fake.error = {
        "error": {
            "code": 400,
            "message": "image input is not supported - hint: you may need to provide the mmproj",
            "type": "invalid_request_error",
        }
    }
    captioner = create(base_url=fake.base_url)

    with pytest.raises(BackendError) as caught:
        captioner.caption([square(RED), square(BLUE)])

    assert "400 Bad Request: image input is not supported" in caught.value.message
    assert "may not accept images" in str(caught.value.hint)
    assert len(fake.chats()) == 2  # a 400 is not retried


def test_an_unknown_model_lists_the_served_ones(fake):
    fake.models = ["qwen2.5-vl", "gemma3"]
    fake.always = 404
    fake.error = {"error": "model 'llava' not found"}
    captioner = create(base_url=fake.base_url, model="llava")

    with pytest.raises(BackendError) as caught:
        captioner.caption([square(RED)])

    assert "model 'llava' not found" in caught.value.message
    assert "qwen2.5-vl, gemma3" in str(caught.value.hint)


def test_a_slow_server_times_out(fake):
    fake.delay = 5
    captioner = create(base_url=fake.base_url, timeout=0.3, retries=2)

    started = time.monotonic()
    with pytest.raises(BackendError) as caught:
        captioner.caption([square(RED)])

    assert time.monotonic() - started < 2
    assert caught.value.message == f"{fake.base_url}/chat/completions: no answer within 0.3 s."
    assert "timeout" in str(caught.value.hint)


@pytest.mark.parametrize("style", ["parts", "think"])
def test_answers_in_parts_or_with_reasoning_are_cleaned(fake, style):
    fake.style = style
    captioner = create(base_url=fake.base_url)

    captions = captioner.caption([square(RED), square(GREEN)])

    assert [c.text for c in captions] == ["a red square", "a green square"]


def test_a_model_that_thinks_until_max_tokens_says_to_raise_it(fake):
    fake.style = "thinking-forever"
    captioner = create(base_url=fake.base_url)

    with pytest.raises(BackendError) as caught:
        captioner.caption([square(RED)])

    assert "max_tokens" in caught.value.message
    assert "Raise [plugins.openai] max_tokens" in str(caught.value.hint)


def test_an_empty_batch_sends_nothing(fake):
    captioner = create(base_url=fake.base_url)

    assert captioner.caption([]) == []
    assert fake.chats() == []


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ('  "A woman in a red coat."\n', "A woman in a red coat."),
        ("“A man smiling.”", "A man smiling."),
        ('"Hi" she said, "bye"', '"Hi" she said, "bye"'),
        ("A dog\n\non a beach.", "A dog on a beach."),
        ("<think>red?\nyes</think>A red wall.", "A red wall."),
        ("weighing options…</think>\n\nA red wall.", "A red wall."),
        ("<think>still going", ""),
    ],
)
def test_clean_caption(raw, clean):
    assert clean_caption(raw) == clean


def test_the_record_is_ready_and_says_its_licence():
    manager = make_plugin_manager(
        entry_points=[], extra_plugins=[(beaver_openai, "openai")], env={}
    )
    spec = manager.captioners().get("openai")

    assert spec.readiness() is None
    assert spec.licence == "code MIT; the model is whatever your server runs"
    assert spec.requires == ()


@pytest.mark.shared_data
def test_real_photos(fake, shared_faces: Path):
    with (shared_faces / "MANIFEST.csv").open(encoding="utf-8") as handle:
        files = [row["file"] for row in csv.DictReader(handle)][:4]
    photos = [open_image(shared_faces / name) for name in files]
    fake.max_side = 512

    captions = create(base_url=fake.base_url, image_size=512).caption(photos)

    assert len(captions) == len(photos)
    assert all(c.text.endswith(" square") for c in captions)
    assert len(fake.sizes) == len(photos)
    assert all(max(size) == 512 for size in fake.sizes)


def test_an_error_in_a_200_answer_is_reported(fake):
    fake.style = "error-in-200"
    captioner = create(base_url=fake.base_url)

    with pytest.raises(BackendError) as caught:
        captioner.caption([square(RED)])

    assert caught.value.message.endswith("answered with an error: the model crashed.")


def test_a_request_too_big_for_a_proxy_says_to_reduce_the_photos(fake):
    fake.always = 413
    fake.error = {"message": "Request Entity Too Large"}
    captioner = create(base_url=fake.base_url)

    with pytest.raises(BackendError) as caught:
        captioner.caption([square(RED)])

    assert "413 Request Entity Too Large: Request Entity Too Large" in caught.value.message
    assert "lower [plugins.openai] image_size" in str(caught.value.hint)


@pytest.mark.shared_data
def test_beaver_caption_end_to_end_on_real_photos(
    fake: Fake, shared_faces: Path, tmp_path: Path
) -> None:
    from beaver.testing.captioncli import caption_photos

    photos = sorted(shared_faces.rglob("*.jpg"))[:4]
    config = f'[caption]\ncaptioner = "openai"\n\n[plugins.openai]\nbase_url = "{fake.base_url}"\n'
    data = caption_photos(photos, tmp_path, "openai", config=config)
    assert data["captioner"] == "openai"
    assert all(entry["raw"] for entry in data["images"].values())
