"""Chat templates: how a conversation becomes the one prompt a character policy was trained on.

A Hugging Face chat model carries its own template (Jinja in tokenizer_config.json); our policies are
character models trained on single prompts in their env's own format (`47+85=` for arithmetic, `how
do i make tea? ` for assistant), with no roles and no turns. So the template belongs to the env the
policy was trained on, and it is deliberately small: the last user message is the env's prompt,
written the way the env writes it; system, developer and earlier messages are ignored, because the
policy has never seen any. Per env:

    arithmetic   the last user message, surrounding whitespace removed, '=' appended unless present
                 ("47+85" -> "47+85=")
    assistant    the last user message, surrounding whitespace removed, then one space (the env's
                 prompts end with the space the response follows)
    any other    the last user message as it is (also a policy directory served outside its run)

The assistant's reply is the completion as generated (for arithmetic, the chain of thought and the
answer after ` >`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class ChatTemplate:
    """`format(last user message) -> prompt`, with a one-line description for `/v1/models`."""

    name: str
    description: str
    format: Callable[[str], str]


def _arithmetic(text: str) -> str:
    text = text.strip()
    return text if text.endswith("=") else text + "="


TEMPLATES = {
    "arithmetic": ChatTemplate("arithmetic", "the last user message, stripped, with '=' appended unless it ends "
                                             "with one", _arithmetic),
    "assistant": ChatTemplate("assistant", "the last user message, stripped, followed by one space",
                              lambda text: text.strip() + " "),
}
PLAIN = ChatTemplate("plain", "the last user message as it is", lambda text: text)


def template_for(env: str | None) -> ChatTemplate:
    """The template of the env a policy was trained on (None: unknown, the plain one)."""
    return TEMPLATES.get(env or "", PLAIN)


def message_text(content) -> str:
    """A message's content as text: a string, or the text parts of a list of content parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(part.text for part in content)


def chat_prompt(template: ChatTemplate, messages) -> str | None:
    """The prompt for `messages` (objects with `role` and `content`), or None without a user message."""
    for message in reversed(messages):
        if message.role == "user":
            return template.format(message_text(message.content))
    return None
