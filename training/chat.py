"""Chat formats for training: the Llama-2-chat format AgentLM used, or a base model's own chat template.

A conversation is rendered once as text, and the character span of every
trained assistant turn is found by rendering turn prefixes: the prompt up to
turn j with the generation prompt, then up to and including turn j. This needs
no ``{% generation %}`` markers (SmolLM2's template has none) and works for any
template whose renders of longer prefixes extend the shorter ones; a template
that breaks that is rejected, since its spans could cover prompt text.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

AGENTLM_SYSTEM_PROMPT = "You are a helpful, respectful and honest assistant."
"""The fixed system prompt AgentLM was trained with (AgentTuning maintainers)."""

# The Llama-2-chat format: <s>[INST] <<SYS>>\n{system}\n<</SYS>>\n\n{user} [/INST] {assistant} </s><s>[INST] ...
# Contents are stripped as Meta's reference chat_completion does. DEFAULT_SYSTEM is replaced by a string literal (or
# none), so a checkpoint's saved template puts AgentLM's system prompt in at inference exactly as in training.
_LLAMA2_CHAT_TEMPLATE = (
    "{%- if messages[0]['role'] == 'system' -%}"
    "{%- set system = messages[0]['content'] -%}{%- set messages = messages[1:] -%}"
    "{%- else -%}{%- set system = DEFAULT_SYSTEM -%}{%- endif -%}"
    "{%- for message in messages -%}"
    "{%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}"
    "{{ raise_exception('Llama-2-chat needs alternating user/assistant messages starting with user') }}"
    "{%- endif -%}"
    "{%- if message['role'] == 'user' -%}"
    "{%- set content = message['content'] | trim -%}"
    "{%- if loop.first and system is not none -%}"
    "{%- set content = '<<SYS>>\\n' + system + '\\n<</SYS>>\\n\\n' + content -%}"
    "{%- endif -%}"
    "{{ bos_token + '[INST] ' + content + ' [/INST]' }}"
    "{%- else -%}"
    "{{ ' ' + message['content'] | trim + ' ' + eos_token }}"
    "{%- endif -%}"
    "{%- endfor -%}"
)

ROLE = {"human": "user", "gpt": "assistant"}


class TemplateError(ValueError):
    """A chat template that cannot give a trustworthy loss mask."""


@dataclass(frozen=True)
class ChatFormat:
    """How conversations become text: a Jinja chat template and an optional system prompt put first."""

    name: str
    template: str
    system_prompt: str | None = None

    def messages(self, conversations: list[dict[str, Any]]) -> list[dict[str, str]]:
        """ShareGPT turns as chat messages, the system prompt first when the format has one.

        Example:
            >>> llama2_chat().messages([{"from": "human", "value": "hi", "loss": None}])
            [{'role': 'user', 'content': 'hi'}]
        """
        head = [{"role": "system", "content": self.system_prompt}] if self.system_prompt is not None else []
        return head + [{"role": ROLE[t["from"]], "content": t["value"]} for t in conversations]

    def render(self, tokenizer: Any, messages: list[dict[str, str]], add_generation_prompt: bool = False) -> str:
        """The text of ``messages`` under this format (bos/eos strings come from ``tokenizer``)."""
        return tokenizer.apply_chat_template(
            messages, chat_template=self.template, tokenize=False, add_generation_prompt=add_generation_prompt
        )

    def render_spans(self, tokenizer: Any, conversations: list[dict[str, Any]]) -> tuple[str, list[tuple[int, int]], list[int]]:
        """Render a conversation; return the text, the character span of each trained turn, and turn ends.

        A turn is trained when it is a gpt turn with ``loss`` true. Its span runs
        from the end of the generation prompt to the end of the turn's render with
        trailing whitespace removed, so it holds the reply and the end-of-turn
        token and never the role header. ``ends[i]`` is where turn i's render ends.

        Example (needs a model's tokenizer):
            >>> text, spans, ends = llama2_chat().render_spans(tok, conv)  # doctest: +SKIP
            >>> text[spans[0][0]:spans[0][1]]  # doctest: +SKIP
            ' Ok. </s>'
        """
        msgs = self.messages(conversations)
        offset = len(msgs) - len(conversations)
        text = self.render(tokenizer, msgs)
        spans, ends = [], []
        for i, turn in enumerate(conversations):
            j = offset + i
            upto = self.render(tokenizer, msgs[: j + 1]) if i + 1 < len(conversations) else text
            if not text.startswith(upto):
                raise TemplateError(f"{self.name}: rendering turns 0..{i} is not a prefix of the whole conversation; "
                                    "the template cannot give per-turn loss spans")
            ends.append(len(upto))
            if turn["from"] == "gpt" and turn["loss"] is True:
                prompt = self.render(tokenizer, msgs[:j], add_generation_prompt=True)
                if not upto.startswith(prompt):
                    raise TemplateError(f"{self.name}: the generation prompt before turn {i} is not a prefix of the "
                                        "rendered reply; trained spans would cover prompt text")
                end = len(upto.rstrip())
                reply = turn["value"].strip()
                body = text[len(prompt):end].lstrip()
                if reply and not body.startswith(reply):
                    raise TemplateError(f"{self.name}: turn {i} renders as {body[:60]!r}..., which does not start with "
                                        "the reply; the trained span would include prompt or template text")
                spans.append((len(prompt), end))
        return text, spans, ends


def llama2_chat(system_prompt: str | None = AGENTLM_SYSTEM_PROMPT) -> ChatFormat:
    """The Llama-2-chat format; its template puts ``system_prompt`` (default AgentLM's) first when none is given.

    Example:
        >>> "respectful and honest" in llama2_chat().template
        True
    """
    literal = "none" if system_prompt is None else json.dumps(system_prompt, ensure_ascii=False)
    return ChatFormat("llama2-chat", _LLAMA2_CHAT_TEMPLATE.replace("DEFAULT_SYSTEM", literal))


def model_chat(tokenizer: Any, system_prompt: str | None = None) -> ChatFormat:
    """The base model's own chat template (as its tokenizer carries it).

    Example (needs a model's tokenizer):
        >>> model_chat(tok).name  # doctest: +SKIP
        'model'
    """
    template = getattr(tokenizer, "chat_template", None)
    if not template:
        raise TemplateError("the tokenizer has no chat template; use chat_format: llama2-chat or give one")
    return ChatFormat("model", template, system_prompt)


def chat_format(name: str, tokenizer: Any, system_prompt: str | None = None) -> ChatFormat:
    """The format called ``name``: ``llama2-chat`` (AgentLM; default system prompt AgentLM's) or ``model``.

    Example:
        >>> chat_format("llama2-chat", None).name
        'llama2-chat'
    """
    if name == "llama2-chat":
        return llama2_chat(AGENTLM_SYSTEM_PROMPT if system_prompt is None else system_prompt)
    if name == "model":
        return model_chat(tokenizer, system_prompt)
    raise ValueError(f"unknown chat format {name!r}; expected llama2-chat or model")
