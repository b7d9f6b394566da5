"""Chat formats: how a conversation becomes one string a language model can continue.

A base model only continues text. To make it answer, fine-tuning shows it conversations written
in a fixed format, with the reply always in the same place and always ending the same way; at
inference the format is written up to where the reply begins, and the model writes the rest.

Two formats:

- `PlainFormat`, glassformer's own, for models whose vocabulary is only the 65 characters of
  TinyShakespeare (every marker below is one of them):

      &user: Who speaks? ROMEO: But soft!
      &bot: ROMEO$

  each message is "&" + role + ": " + content + newline, except that an assistant ("bot") message
  ends with "$" (a character that occurs once in all of TinyShakespeare) instead of the newline.
- `TemplateFormat`: the Jinja chat template a pretrained model's tokenizer files carry
  (tokenizer_config.json's "chat_template", or chat_template.jinja), rendered as Hugging Face
  `transformers` renders it (a sandboxed Jinja environment, `add_generation_prompt`).

Both give `segments(messages)`: the conversation as pieces of text, each marked as written by the
assistant (a reply: the loss is taken on it by default) or not.

    >>> PlainFormat().segments([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"}])
    [('&user: Hi\\n&bot: ', False), ('Yo$', True)]
"""

from __future__ import annotations

import json
from pathlib import Path

Message = dict[str, str]   # {"role": "system" | "user" | "assistant", "content": str}
ROLES = ("system", "user", "assistant")


def check_messages(messages: list[Message], where: str = "conversation") -> None:
    """A list of {"role", "content"} dicts with known roles and string contents, or a ValueError naming `where`."""
    if not isinstance(messages, list) or not messages:
        raise ValueError(f"{where}: 'messages' must be a non-empty list")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or set(m) - {"role", "content"} or not {"role", "content"} <= set(m):
            raise ValueError(f"{where}: message {i} must be an object with exactly 'role' and 'content'")
        if m["role"] not in ROLES:
            raise ValueError(f"{where}: message {i} has role {m['role']!r}; roles are {ROLES}")
        if not isinstance(m["content"], str):
            raise ValueError(f"{where}: message {i}'s content must be a string")


class PlainFormat:
    """glassformer's template for character-level models (see the module docstring)."""

    name = "plain"
    ROLE_NAMES = {"system": "system", "user": "user", "assistant": "bot"}
    MARK = "&"          # starts every message
    END = "$"           # ends every assistant message: where the reply stops

    def markers(self) -> str:
        """Every character the format itself writes (a tokenizer must be able to encode them all)."""
        text = "".join(f"{self.MARK}{r}: \n" for r in self.ROLE_NAMES.values()) + self.END
        return "".join(sorted(set(text)))

    def check_content(self, text: str, where: str) -> None:
        if self.END in text:
            raise ValueError(f"{where}: the text contains {self.END!r}, which the plain chat format reserves "
                             f"for the end of a reply")

    def _head(self, role: str) -> str:
        return f"{self.MARK}{self.ROLE_NAMES[role]}: "

    def segments(self, messages: list[Message]) -> list[tuple[str, bool]]:
        """The conversation as (text, is_reply) pieces; adjacent non-reply pieces are merged."""
        check_messages(messages)
        pieces: list[tuple[str, bool]] = []
        for i, m in enumerate(messages):
            self.check_content(m["content"], f"message {i}")
            if m["role"] == "assistant":
                pieces += [(self._head("assistant"), False), (m["content"] + self.END, True)]
                if i < len(messages) - 1:
                    pieces.append(("\n", False))
            else:
                pieces.append((self._head(m["role"]) + m["content"] + "\n", False))
        return merge(pieces)

    def prompt(self, messages: list[Message]) -> str:
        """Everything before the reply the model is asked to write (the messages, then the reply's head)."""
        return "".join(text for text, _ in self.segments(messages)) + self._head("assistant")

    def reply(self, generated: str) -> tuple[str, bool]:
        """(the reply, whether it ended as the format says): the text up to the end marker."""
        end = generated.find(self.END)
        return (generated, False) if end < 0 else (generated[:end], True)


class TemplateFormat:
    """A pretrained model's own Jinja chat template.

    The reply to assistant message i is what rendering messages[:i + 1] adds to rendering
    messages[:i] with the generation prompt: the template decides every marker, and the
    reply includes the template's end-of-turn token (the model must learn to stop)."""

    name = "template"

    def __init__(self, template: str, special: dict[str, str] | None = None) -> None:
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        env.globals["raise_exception"] = _raise
        env.filters["tojson"] = lambda x, **kw: json.dumps(x, ensure_ascii=False, **kw)
        self.template = env.from_string(template)
        self.special = dict(special or {})        # bos_token, eos_token: variables the templates use
        self.end = self.special.get("eos_token") or None

    def render(self, messages: list[Message], add_generation_prompt: bool) -> str:
        return self.template.render(messages=messages, add_generation_prompt=add_generation_prompt, **self.special)

    def segments(self, messages: list[Message]) -> list[tuple[str, bool]]:
        check_messages(messages)
        pieces: list[tuple[str, bool]] = []
        done = ""
        for i, m in enumerate(messages):
            if m["role"] != "assistant":
                continue
            before = self.render(messages[:i], add_generation_prompt=True)
            after = self.render(messages[:i + 1], add_generation_prompt=False)
            if not before.startswith(done) or not after.startswith(before):
                raise ValueError("the chat template renders a conversation differently from its beginning, so the "
                                 "reply cannot be located in it")
            pieces += [(before[len(done):], False), (after[len(before):], True)]
            done = after
        full = self.render(messages, add_generation_prompt=False)
        if not full.startswith(done):
            raise ValueError("the chat template renders a conversation differently from its beginning")
        pieces.append((full[len(done):], False))
        return merge(pieces)

    def prompt(self, messages: list[Message]) -> str:
        check_messages(messages)
        return self.render(messages, add_generation_prompt=True)

    def reply(self, generated: str) -> tuple[str, bool]:
        if self.end is None:
            return generated, False
        end = generated.find(self.end)
        return (generated, False) if end < 0 else (generated[:end], True)


def _raise(message: str):
    raise ValueError(f"chat template: {message}")


def merge(pieces: list[tuple[str, bool]]) -> list[tuple[str, bool]]:
    """Drop empty pieces and join neighbours of the same kind."""
    out: list[tuple[str, bool]] = []
    for text, is_reply in pieces:
        if not text:
            continue
        if out and out[-1][1] == is_reply:
            out[-1] = (out[-1][0] + text, is_reply)
        else:
            out.append((text, is_reply))
    return out


def find_chat_template(folder: str | Path) -> TemplateFormat | None:
    """The chat template in a pretrained model's folder (chat_template.jinja, or tokenizer_config.json's
    "chat_template": a string, or a list of {"name", "template"} whose "default" is taken), else None."""
    folder = Path(folder)
    config_file = folder / "tokenizer_config.json"
    config = json.loads(config_file.read_text()) if config_file.exists() else {}
    template = None
    if (folder / "chat_template.jinja").exists():
        template = (folder / "chat_template.jinja").read_text()
    elif isinstance(config.get("chat_template"), str):
        template = config["chat_template"]
    elif isinstance(config.get("chat_template"), list):
        named = {t.get("name"): t.get("template") for t in config["chat_template"] if isinstance(t, dict)}
        template = named.get("default")
    if not template:
        return None
    special = {}
    for key in ("bos_token", "eos_token"):
        value = config.get(key)
        if isinstance(value, dict):          # older files: {"content": "<|endoftext|>", ...}
            value = value.get("content")
        if isinstance(value, str):
            special[key] = value
    return TemplateFormat(template, special)
