class DomainError(Exception):
    """A command the domain refuses; `reason` is safe to show to a user."""

    status = "rejected"

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class InvalidCommand(DomainError):
    status = "invalid"


class NothingToChange(DomainError):
    status = "no-op"


class UserIsDeleted(DomainError):
    status = "deleted"
