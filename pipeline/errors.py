"""Errors a user can act on: printed as one line by the CLI, never as a traceback."""


class UserError(Exception):
    """Bad input or missing resource, with a message that says what to do."""


class StageError(RuntimeError):
    """A stage raised; carries the stage's name. The original exception is the __cause__."""

    def __init__(self, stage: str, exc: BaseException):
        super().__init__(f"stage '{stage}' failed: {type(exc).__name__}: {exc}")
        self.stage = stage
