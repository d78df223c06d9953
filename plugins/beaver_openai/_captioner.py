"""The captioner: one chat-completions request per photo, a batch's requests in parallel."""

from __future__ import annotations

import base64
import io
import json
import os
import re
from collections.abc import Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from typing import TYPE_CHECKING, Any

from PIL import Image

from beaver.errors import BackendError, ConfigError
from beaver.interfaces import Caption
from beaver_openai._client import SECTION, Endpoint, normalise_base_url, server_message

if TYPE_CHECKING:
    from beaver_openai import OpenAIOptions

JPEG_QUALITY = 90
_THINK = re.compile(r"<think>.*?</think>", re.DOTALL | re.IGNORECASE)
_QUOTES = {'"': '"', "'": "'", "“": "”", "‘": "’", "«": "»", "`": "`"}  # noqa: RUF001


def load_captioner(options: OpenAIOptions) -> OpenAICaptioner:
    """Check the options and that the endpoint answers; pick the model when it serves one."""
    if options.base_url is None:
        raise ConfigError(
            f"The openai captioner needs an endpoint: {SECTION} base_url is not set.",
            hint=f'Set {SECTION} base_url = "http://127.0.0.1:8080/v1" in beaver.toml '
            "(a local llama.cpp, vLLM, Ollama or LM Studio server; Ollama listens on "
            '"http://localhost:11434/v1").',
        )
    endpoint = Endpoint(
        normalise_base_url(options.base_url),
        api_key=os.environ.get(options.api_key_env) or None,
        api_key_env=options.api_key_env,
        timeout=options.timeout,
        retries=options.retries,
    )
    served = endpoint.list_models()
    model = options.model or (served[0] if len(served) == 1 else None)
    return OpenAICaptioner(endpoint, model, options)


class OpenAICaptioner:
    """Captions photos through an OpenAI-compatible ``/chat/completions`` endpoint."""

    def __init__(self, endpoint: Endpoint, model: str | None, options: OpenAIOptions) -> None:
        self.endpoint = endpoint
        self.model = model
        self.model_id = f"{model or 'default'}@{endpoint.base_url}"
        self.image_size = options.image_size
        self.concurrency = options.concurrency
        self.options = options

    def caption(self, images: Sequence[Image.Image]) -> list[Caption]:
        """One caption per image, in order; up to ``concurrency`` requests at once."""
        if not images:
            return []
        for image in images:
            image.load()  # a lazily decoded image shared by two workers would race
        pool = ThreadPoolExecutor(
            max_workers=min(self.concurrency, len(images)), thread_name_prefix="beaver-openai"
        )
        try:
            futures = [pool.submit(self.caption_one, image) for image in images]
            wait(futures, return_when=FIRST_EXCEPTION)
            failure = _first_failure(futures)
            if failure is not None:
                pool.shutdown(wait=True, cancel_futures=True)
                raise failure
            return [future.result() for future in futures]
        finally:
            pool.shutdown(wait=False, cancel_futures=True)

    def caption_one(self, image: Image.Image) -> Caption:
        """Send one photo and read its caption."""
        answer = self.endpoint.post_json("chat/completions", self.payload(image))
        return read_caption(answer, self.endpoint.url("chat/completions"))

    def payload(self, image: Image.Image) -> dict[str, Any]:
        """The chat-completions request for one photo."""
        content = [
            {"type": "image_url", "image_url": {"url": data_url(image, self.image_size)}},
            {"type": "text", "text": self.options.prompt},
        ]
        messages: list[dict[str, Any]] = []
        if self.options.system:
            messages.append({"role": "system", "content": self.options.system})
        messages.append({"role": "user", "content": content})
        payload: dict[str, Any] = {
            "messages": messages,
            "max_tokens": self.options.max_tokens,
            "temperature": self.options.temperature,
            "stream": False,
        }
        if self.model:
            payload["model"] = self.model
        return payload


def data_url(image: Image.Image, size: int) -> str:
    """``image`` as a JPEG data URL, reduced so that its long side is at most ``size``."""
    picture = image if image.mode == "RGB" else image.convert("RGB")
    longest = max(picture.size)
    if longest > size:
        scale = size / longest
        width, height = picture.size
        picture = picture.resize(
            (max(1, round(width * scale)), max(1, round(height * scale))),
            Image.Resampling.LANCZOS,
            reducing_gap=3.0,
        )
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def read_caption(answer: Any, url: str) -> Caption:
    """The Caption in a chat-completions answer; BackendError when there is none."""
    choices = answer.get("choices") if isinstance(answer, dict) else None
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        if isinstance(answer, dict) and answer.get("error"):
            detail = server_message(json.dumps(answer).encode("utf-8"))
            raise BackendError(
                f"{url}: the server answered with an error: {detail}.",
                hint="See the server's log.",
            )
        raise BackendError(
            f"{url}: the answer has no choices; this is not a chat-completions endpoint.",
            hint=f"Check {SECTION} base_url: it is the server's OpenAI API root, usually …/v1.",
        )
    choice = choices[0]
    message = choice.get("message")
    content = message.get("content") if isinstance(message, dict) else None
    text = clean_caption(_content_text(content))
    finish = choice.get("finish_reason")
    if not text:
        if finish == "length":
            raise BackendError(
                f"{url}: the model wrote no caption before reaching max_tokens.",
                hint=f"Raise {SECTION} max_tokens (a reasoning model spends tokens thinking).",
            )
        raise BackendError(
            f"{url}: the model answered with an empty caption.",
            hint=f"Check {SECTION} prompt, and that the model accepts images.",
        )
    extra = {"finish_reason": finish, "usage": answer.get("usage")}
    return Caption(text=text, extra={k: v for k, v in extra.items() if v is not None})


def _content_text(content: Any) -> str:
    """The text of a message's content: a string, or a list of parts of which text ones count."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [
            part if isinstance(part, str) else part.get("text")
            for part in content
            if isinstance(part, str) or (isinstance(part, dict) and part.get("type") == "text")
        ]
        return " ".join(t for t in texts if isinstance(t, str))
    return ""


def clean_caption(text: str) -> str:
    """One line, without a reasoning model's ``<think>`` block or quotes around it all."""
    text = _THINK.sub(" ", text)
    lowered = text.lower()
    if "</think>" in lowered:
        # the chat template opened the block, so only its end is in the answer
        text = text[lowered.rindex("</think>") + len("</think>") :]
    elif lowered.lstrip().startswith("<think>"):
        return ""  # still thinking when max_tokens ran out
    text = " ".join(text.split())
    while len(text) >= 2 and _QUOTES.get(text[0]) == text[-1]:
        inner = text[1:-1]
        if text[0] in inner or text[-1] in inner:
            break  # "a" and "b": the quotes belong to the words
        text = inner.strip()
    return text


def _first_failure(futures: Sequence[Future[Caption]]) -> BaseException | None:
    """The error of the first request, in batch order, that failed."""
    for future in futures:
        if future.done() and not future.cancelled():
            error = future.exception()
            if error is not None:
                return error
    return None
