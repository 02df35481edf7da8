"""The one error type the library raises for problems a user can fix.

The CLI turns a ChargenError into a one-line message, its hint, and exit code 1;
anything else escaping the library is a bug and keeps its traceback.
"""


class ChargenError(Exception):
    """A domain error: bad input, a missing file, a corrupt checkpoint.

    `hint` is one short sentence telling the user what to do next.
    """

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message
