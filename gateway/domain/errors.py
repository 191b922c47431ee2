"""What a domain operation raises when it refuses. Plain exceptions, no HTTP: the API maps them
to problem+json (gateway/errors.py), the pages show ``fields`` next to the form, the CLI prints
them."""

from __future__ import annotations


class DomainError(Exception):
    """A refused operation; ``str(exc)`` is a sentence for a person."""


class ValidationFailed(DomainError):
    """The input breaks a rule. ``fields`` maps each field to its messages, in the order the
    checks ran (the first one is the summary)."""

    def __init__(self, fields: dict[str, list[str]], detail: str | None = None) -> None:
        if detail is None:
            name, messages = next(iter(fields.items()))
            detail = f"{name} {messages[0]}"
        super().__init__(detail)
        self.fields = fields
        self.detail = detail

    def messages(self) -> list[str]:
        """Every message, each after its field name: ``["name can't be blank", …]``."""
        return [f"{k} {m}" for k, msgs in self.fields.items() for m in msgs]


class NotFound(DomainError):
    """The thing does not exist (or belongs to another tenant: the same answer)."""

    def __init__(self, what: str = "Not Found") -> None:
        super().__init__(what)


class Conflict(DomainError):
    """The thing exists but its state refuses the change; ``code`` names the state."""

    def __init__(self, detail: str, code: str = "conflict") -> None:
        super().__init__(detail)
        self.detail = detail
        self.code = code


class Forbidden(DomainError):
    """The actor may not make this change."""

    def __init__(self, detail: str, code: str = "forbidden") -> None:
        super().__init__(detail)
        self.detail = detail
        self.code = code


class TooLarge(DomainError):
    """The thing is over a size limit (HTTP 413); ``code`` names the limit."""

    def __init__(self, detail: str, code: str = "payload_too_large") -> None:
        super().__init__(detail)
        self.detail = detail
        self.code = code


class Unprocessable(DomainError):
    """Well-formed input that cannot be used as it is (HTTP 422); ``code`` names why (a
    template that was never synced, or whose parameters do not fit)."""

    def __init__(self, detail: str, code: str = "unprocessable") -> None:
        super().__init__(detail)
        self.detail = detail
        self.code = code
