"""Errors the API answers with, typed by what went wrong (RFC 9457 problem details)."""

from __future__ import annotations

from typing import Any, Dict, Optional


class MominError(Exception):
    """A failed API call. ``status`` is the HTTP status, ``detail`` the server's message (the
    same as the momin command line's for the same failure), ``problem`` the whole object."""

    def __init__(self, status: int, detail: str, problem: Optional[Dict[str, Any]] = None):
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.problem = problem or {}

    @property
    def title(self) -> str:
        return str(self.problem.get("title", ""))


class BadRequest(MominError):
    """The request was wrong (400, 405, 411, 413, 415): nothing was done."""


class Unauthorized(MominError):
    """Over TCP, the request carried no token the server knows (401): check token= or MOMIN_API_TOKEN."""


class Forbidden(MominError):
    """This caller may not do that (403): not the server's owner, or not in its group."""


class PolicyDenied(Forbidden):
    """The sandbox's policy denied the call; it never reached the guest. ``rule`` names the rule
    that decided (a policy section and index, or a limit), ``reason`` says why."""

    @property
    def rule(self) -> str:
        return str(self.problem.get("rule", ""))

    @property
    def reason(self) -> str:
        return str(self.problem.get("reason", ""))


class NotFound(MominError):
    """No such sandbox (404)."""


class Conflict(MominError):
    """The sandbox cannot be changed that way now (409), e.g. stopping a sub-agent directly."""


class GuestError(MominError):
    """The guest refused the call (422): no such file or program, or permission denied there."""

    @property
    def missing(self) -> bool:
        """Whether the guest said the file, directory or program is not there (ENOENT)."""
        return "no such file" in self.detail.lower()


class NoRoom(MominError):
    """The host has no room for the sandbox now (503); try again later."""


class VMFailed(MominError):
    """The VM, its VMM or the connection to its guest failed (502)."""


DENIED = "https://mominai.dev/problems/denied"


def from_problem(status: int, problem: Dict[str, Any]) -> MominError:
    """The typed error for a problem details object."""
    detail = str(problem.get("detail", "")) or f"HTTP {status}"
    if problem.get("type") == DENIED:
        return PolicyDenied(status, detail, problem)
    kind = {400: BadRequest, 401: Unauthorized, 403: Forbidden, 404: NotFound, 405: BadRequest, 408: BadRequest, 409: Conflict,
            411: BadRequest, 413: BadRequest, 415: BadRequest, 422: GuestError, 502: VMFailed, 503: NoRoom}.get(status, MominError)
    return kind(status, detail, problem)
