"""The viewer's panels, one module each: generate, world, camera, edit, export.

A panel builds its viser GUI handles in `__init__(app)` (inside the tab the
app opened) and calls `app` and `worldgen` functions from its callbacks.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable

from worldgen.errors import WorldgenError


class Status:
    """A line of text under a panel's controls: what happened, or what went wrong."""

    def __init__(self, server, initial: str = "") -> None:
        self.handle = server.gui.add_markdown(initial or "&nbsp;")

    def __call__(self, text: str, *, error: bool = False) -> None:
        self.handle.content = f"**Error:** {text}" if error else text


def guarded(status: Status, action: Callable[..., None]) -> Callable[..., None]:
    """A GUI callback that shows a failure in the page instead of losing it in a log."""

    def callback(event) -> None:
        try:
            action(event)
        except WorldgenError as e:
            status(str(e), error=True)
        except Exception as e:  # a bug: keep the server up, say so in the page and the log
            traceback.print_exc()
            status(f"{type(e).__name__}: {e}", error=True)

    return callback
