"""The chat's small error vocabulary; consumers and the API turn these into frames or JSON."""


class ChatError(Exception):
    """An error with a contract code and a human-readable detail.

    `command` is set when the error answers a command (a `message` frame gets a `response`
    frame, not an `error` frame); `client_id` is echoed in that response when it was read.
    """

    code = 400

    def __init__(
        self,
        detail: str,
        *,
        code: int | None = None,
        command: str | None = None,
        client_id: str | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code
        self.command = command
        self.client_id = client_id


class ProtocolError(ChatError):
    """A client frame that is not valid JSON, not an object, or has wrong fields (400)."""


class NotFound(ChatError):
    code = 404


class TooLong(ChatError):
    code = 413

    def __init__(self, detail: str, *, client_id: str | None = None) -> None:
        super().__init__(detail, command="message", client_id=client_id)


class RateLimited(ChatError):
    code = 429

    def __init__(self, detail: str, *, retry_after: float, client_id: str | None = None) -> None:
        super().__init__(detail, command="message", client_id=client_id)
        self.retry_after = retry_after
