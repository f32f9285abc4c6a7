"""Keeping credentials out of what a training run writes and pushes.

A token can reach the output three ways: written in the recipe YAML, given on
the command line (``--hub_token``), or pickled with the ``TrainingArguments``
into ``training_args.bin``. ``redact_recipe`` masks secret-named fields and
token-shaped values in the recipe text that is saved and shown on the card;
the entry point clears ``hub_token`` from the arguments before the trainer
pickles them; and ``find_secrets`` scans every file about to be pushed for the
secrets the process knows, so a leak found anywhere stops the push.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

REDACTED = "<redacted>"
# Field names that hold credentials. Tokenizer fields (eos_token, pad_token) end in "token" too and are not secret.
SECRET_NAME = re.compile(r"^(token|hub_token|hf_token|[a-z_]*(api_key|apikey|secret|password|access_token|auth_token))$",
                         re.IGNORECASE)
# Values shaped like credentials wherever they appear: Hugging Face and OpenAI-style keys.
SECRET_VALUE = re.compile(r"\b(hf_[A-Za-z0-9]{16,}|sk-[A-Za-z0-9_-]{16,})\b")
_YAML_FIELD = re.compile(r"^(\s*-?\s*)([A-Za-z_][A-Za-z0-9_]*)(\s*:\s*)(\S.*?)?(\s+#.*)?$")


def is_secret_name(name: str) -> bool:
    """Whether a recipe field or environment variable name holds a credential.

    Example:
        >>> is_secret_name("hub_token"), is_secret_name("OPENAI_API_KEY"), is_secret_name("eos_token")
        (True, True, False)
    """
    return bool(SECRET_NAME.match(name.lstrip("-")))


def redact_args(args: list[str]) -> list[str]:
    """Command-line arguments with the values of secret-named flags and token-shaped values masked.

    Example:
        >>> redact_args(["--max_steps", "3", "--hub_token", "hf_abcdefghijklmnopqrstu", "--api_key=sk-1234567890abcdefgh"])
        ['--max_steps', '3', '--hub_token', '<redacted>', '--api_key=<redacted>']
    """
    out: list[str] = []
    for i, arg in enumerate(args):
        flag, eq, _ = arg.partition("=")
        if arg.startswith("--") and eq and is_secret_name(flag):
            out.append(f"{flag}={REDACTED}")
        elif i > 0 and args[i - 1].startswith("--") and "=" not in args[i - 1] and is_secret_name(args[i - 1]):
            out.append(REDACTED)
        else:
            out.append(SECRET_VALUE.sub(REDACTED, arg))
    return out


def redact_recipe(text: str) -> str:
    """Recipe YAML with secret-named fields' values and token-shaped values masked, comments and layout kept.

    Example:
        >>> print(redact_recipe("max_steps: 3\\nhub_token: hf_abcdefghijklmnopqrstu  # mine\\nnote: sk-1234567890abcdefgh"))
        max_steps: 3
        hub_token: <redacted>  # mine
        note: <redacted>
    """
    lines = []
    for line in text.splitlines():
        match = _YAML_FIELD.match(line)
        if match and match.group(4) and is_secret_name(match.group(2)):
            line = f"{match.group(1)}{match.group(2)}{match.group(3)}{REDACTED}{match.group(5) or ''}"
        lines.append(SECRET_VALUE.sub(REDACTED, line))
    return "\n".join(lines) + ("\n" if text.endswith("\n") else "")


def known_secrets(*given: str | None) -> set[str]:
    """The secrets this process knows: ``given`` values, the Hub token, and secret-named environment variables.

    Example:
        >>> "hf_abcdefghijklmnopqrstu" in known_secrets("hf_abcdefghijklmnopqrstu")
        True
    """
    from huggingface_hub import get_token

    found = {g for g in given if g}
    found |= {v for k, v in os.environ.items() if is_secret_name(k) or k.upper().endswith("_TOKEN")}
    token = get_token()
    if token:
        found.add(token)
    # short values (flags like "1") would match everywhere and protect nothing
    return {s for s in found if len(s) >= 8}


def _scanned_bytes(path: Path) -> bytes:
    """A file's bytes to scan; for safetensors only the JSON header (the tensors are numbers, and can be huge)."""
    if path.suffix == ".safetensors":
        with path.open("rb") as f:
            size = int.from_bytes(f.read(8), "little")
            return f.read(min(size, 100_000_000))
    return path.read_bytes()


def find_secrets(files: list[Path], secrets: set[str]) -> list[str]:
    """Names of the files that contain any of ``secrets`` (the secrets themselves are never returned).

    Example:
        >>> p = Path("card.md"); _ = p.write_text("token: hf_abcdefghijklmnopqrstu")
        >>> find_secrets([p], {"hf_abcdefghijklmnopqrstu"}), find_secrets([p], {"hf_other0123456789"})
        (['card.md'], [])
    """
    needles = [s.encode() for s in secrets] + [json.dumps(s).encode() for s in secrets]
    leaks = []
    for path in files:
        data = _scanned_bytes(path)
        if any(n in data for n in needles):
            leaks.append(path.name)
    return leaks
