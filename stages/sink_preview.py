"""Preview sink: shows frames in an OpenCV window (needs a display), then hands them to an optional next sink."""
from __future__ import annotations

import os
import sys

import cv2

from pipeline.errors import UserError
from pipeline.packets import FramePacket
from pipeline.stage import Sink


def has_display() -> bool:
    """Whether a window can open: always on Windows/macOS, on Linux only with X11 or Wayland."""
    if not sys.platform.startswith("linux"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


class PreviewSink(Sink):
    """Draws each frame in a window named `title`; `then` (e.g. a FileSink) also gets every packet.

    Closing the window (or pressing q/Esc) does not stop the run; `closed_by_user` reports it.
    """

    name = "preview"

    def __init__(self, title: str = "live3dpe", then: Sink | None = None):
        self.title, self.then = title, then
        self.closed_by_user = False
        if not has_display():
            raise UserError("--preview needs a display (set DISPLAY, or run without --preview)")

    async def start(self) -> None:
        if self.then is not None:
            await self.then.start()

    def write(self, packet: FramePacket) -> None:
        if not self.closed_by_user:
            cv2.imshow(self.title, cv2.cvtColor(packet.out_frame, cv2.COLOR_RGB2BGR))
            key = cv2.waitKey(1) & 0xFF
            if key in (ord("q"), 27):
                self.closed_by_user = True
                cv2.destroyWindow(self.title)
            elif cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) < 1:   # its close button
                self.closed_by_user = True      # imshow would otherwise open it again
        if self.then is not None:
            self.then.write(packet)

    async def close(self) -> None:
        if not self.closed_by_user:
            cv2.destroyAllWindows()
        if self.then is not None:
            await self.then.close()
