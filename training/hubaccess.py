"""Checks made before training starts so that the push at the end cannot fail for a reason known at step 0.

A recipe's ``hub_model_id`` may lack a namespace (``AgentLM-7b-agentinstruct``);
the Hub would put it under the token's user, but only at push time, hours
later. ``check_push`` resolves it now through ``whoami`` and checks that the
token exists, is valid and may write to that namespace (a read token, a
fine-grained token without ``repo.write`` there, or a namespace that is neither
the user nor one of its orgs is refused with the reason).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class PushCheckError(ValueError):
    """The checkpoint could not be pushed where the recipe says; raised before training."""


@dataclass(frozen=True)
class PushTarget:
    """Where the checkpoint goes: the full repo id and the user the token belongs to."""

    repo_id: str
    user: str


def _fine_grained_can_write(access: dict[str, Any], namespace: str) -> bool:
    fine = access.get("fineGrained") or {}
    if "repo.write" in (fine.get("global") or []):
        return True
    return any((s.get("entity") or {}).get("name") == namespace and "repo.write" in (s.get("permissions") or [])
               for s in fine.get("scoped") or [])


def writable_target(whoami: dict[str, Any], repo_id: str) -> PushTarget:
    """The full repo id for ``repo_id`` under a ``whoami`` answer, or ``PushCheckError`` when the token cannot write it.

    Example:
        >>> me = {"name": "ada", "orgs": [{"name": "lab", "roleInOrg": "read"}],
        ...       "auth": {"accessToken": {"role": "write"}}}
        >>> writable_target(me, "AgentLM-7b").repo_id
        'ada/AgentLM-7b'
        >>> writable_target(me, "lab/AgentLM-7b")
        Traceback (most recent call last):
        ...
        agentinstruct.training.hubaccess.PushCheckError: the token's user ada has only the read role in the org lab: it cannot create or write lab/AgentLM-7b
    """
    user = whoami.get("name")
    if not user:
        raise PushCheckError("the Hub's whoami answer names no user; cannot tell where to push")
    namespace, _, name = repo_id.rpartition("/")
    full = repo_id if namespace else f"{user}/{name}"
    namespace = namespace or user
    access = (whoami.get("auth") or {}).get("accessToken") or {}
    role = access.get("role")
    if role == "read":
        raise PushCheckError(f"the Hugging Face token of {user} is read-only: it cannot push {full}; "
                             "use a token with the write role")
    if role == "fineGrained" and not _fine_grained_can_write(access, namespace):
        raise PushCheckError(f"the fine-grained token of {user} has no repo.write permission on {namespace}: "
                             f"it cannot push {full}")
    if namespace != user:
        orgs = {o.get("name"): o.get("roleInOrg") for o in whoami.get("orgs") or []}
        if namespace not in orgs:
            known = ", ".join(sorted(o for o in orgs if o)) or "none"
            raise PushCheckError(f"{namespace} is neither the token's user {user} nor one of its orgs ({known}): "
                                 f"it cannot push {full}")
        if orgs[namespace] == "read":
            raise PushCheckError(f"the token's user {user} has only the read role in the org {namespace}: it cannot "
                                 f"create or write {full}")
    return PushTarget(full, user)


def check_push(repo_id: str, token: str | None) -> PushTarget:
    """Resolve ``repo_id`` against the Hub and check the push is allowed; ``token`` None means the usual sources.

    Example (needs a Hub server):
        >>> check_push("AgentLM-7b-agentinstruct", None).repo_id  # doctest: +SKIP
        'ada/AgentLM-7b-agentinstruct'
    """
    import httpx2
    from huggingface_hub import HfApi, get_token
    from huggingface_hub.errors import HfHubHTTPError

    token = token or get_token()
    if token is None:
        raise PushCheckError("push_to_hub is on but there is no Hugging Face token: set HF_TOKEN, run "
                             "`hf auth login` or pass --hub_token (or train with --push_to_hub false)")
    try:
        whoami = HfApi(token=token).whoami()
    except HfHubHTTPError as exc:
        status = getattr(exc.response, "status_code", None)
        reason = "the token is invalid or expired" if status == 401 else str(exc).strip().splitlines()[0]
        raise PushCheckError(f"the Hub refused the token before training ({reason}); fix it or train with "
                             "--push_to_hub false") from exc
    except (httpx2.HTTPError, OSError) as exc:
        raise PushCheckError(f"could not reach the Hub to check the push before training: {exc}") from exc
    return writable_target(whoami, repo_id)
