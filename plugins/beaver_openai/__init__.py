"""First-party captioner: any OpenAI-compatible chat-completions server with image input.

A local llama.cpp server, vLLM, Ollama or LM Studio (or a hosted API) captions each photo
from one chat request. Only the standard library talks to it, so the core install is
enough; nothing is sent anywhere until the user sets ``[plugins.openai] base_url``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from beaver import CaptionerSpec, hookimpl

if TYPE_CHECKING:
    from beaver_openai._captioner import OpenAICaptioner

DEFAULT_PROMPT = (
    "Describe this photo in one detailed sentence for an image-generation training caption: "
    "the person, clothing, pose, expression, setting and lighting. "
    "Do not mention the photo itself."
)


class OpenAIOptions(BaseModel):
    """Options of the ``openai`` captioner, read from ``[plugins.openai]``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    base_url: str | None = Field(
        None,
        min_length=1,
        description=(
            "The server's OpenAI API root, e.g. http://127.0.0.1:8080/v1 (llama.cpp) or "
            "http://localhost:11434/v1 (Ollama); nothing is sent until this is set."
        ),
    )
    model: str | None = Field(
        None,
        min_length=1,
        description=(
            "Model name to ask the server for (--model); None: the only model the server "
            "lists, else none is sent and the server uses its default."
        ),
    )
    api_key_env: str = Field(
        "OPENAI_API_KEY",
        min_length=1,
        description="Environment variable holding the API key, sent as a Bearer token if set.",
    )
    prompt: str = Field(
        DEFAULT_PROMPT, min_length=1, description="The instruction sent with each photo."
    )
    system: str | None = Field(None, min_length=1, description="Optional system message.")
    max_tokens: int = Field(300, ge=1, description="Most tokens the model may write per caption.")
    temperature: float = Field(0.2, ge=0, le=2, description="Sampling temperature (0: greedy).")
    timeout: float = Field(
        120, gt=0, description="Seconds to wait for each answer (and at most 10 s to connect)."
    )
    concurrency: int = Field(
        4, ge=1, le=64, description="Requests in flight at once (one photo per request)."
    )
    image_size: int = Field(
        1024, ge=64, le=8192, description="Photos are sent as JPEG with the long side at most this."
    )
    retries: int = Field(
        2, ge=0, le=10, description="Retries after a 429, a 5xx or a dropped connection."
    )


def create_captioner(options: OpenAIOptions) -> OpenAICaptioner:
    """The factory: checks that the endpoint answers, then builds the captioner."""
    from beaver_openai._captioner import load_captioner

    return load_captioner(options)


def check() -> str | None:
    """Always ready: it needs no extra package, and the first run checks the endpoint.

    The check sees no settings, so it cannot tell whether ``base_url`` is set; the
    factory says so (and tries the endpoint) when the captioner is picked.
    """
    return None


@hookimpl
def beaver_captioners() -> Iterator[CaptionerSpec]:
    """The OpenAI-compatible endpoint captioner."""
    yield CaptionerSpec(
        name="openai",
        factory=create_captioner,
        options=OpenAIOptions,
        description=(
            "any OpenAI-compatible chat endpoint with image input "
            "(llama.cpp server, vLLM, Ollama, LM Studio)"
        ),
        licence="code MIT; the model is whatever your server runs",
        check=check,
    )
