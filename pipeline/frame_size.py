"""The frame sizes the chain works with: a floor below which no face can be found, and a working size
that bounds the time and memory one frame costs (sources scale larger inputs down to it)."""
from __future__ import annotations

from pipeline.errors import UserError

MIN_FRAME_SIDE = 16                 # px: smaller frames hold no usable face (MediaPipe's own floor)
MAX_WORKING_SIDE = 1920             # px on the long side: an 8000×6000 photo would cost seconds and GBs per frame


def working_size(width: int, height: int, max_side: int = MAX_WORKING_SIDE) -> tuple[int, int]:
    """(width, height) scaled down, aspect kept, so that the long side is at most `max_side`."""
    long_side = max(width, height)
    if long_side <= max_side:
        return width, height
    scale = max_side / long_side
    return max(round(width * scale), 1), max(round(height * scale), 1)


def check_input_size(width: int, height: int, what: str) -> None:
    """A UserError when `what` (an input) is too small to hold a face."""
    if min(width, height) < MIN_FRAME_SIDE:
        raise UserError(f"{what} is {width}×{height} pixels; frames must be at least "
                        f"{MIN_FRAME_SIDE}×{MIN_FRAME_SIDE} to hold a face")


def describe_working_size(width: int, height: int) -> str | None:
    """One line saying that an input is edited (and written) at a smaller working size, else None."""
    scaled = working_size(width, height)
    if scaled == (width, height):
        return None
    return (f"input is {width}×{height}: editing and writing it at {scaled[0]}×{scaled[1]} "
            f"(the working size: long side at most {MAX_WORKING_SIDE} px)")
