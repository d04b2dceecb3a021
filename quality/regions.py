"""Where the meter looks in an input frame: the face box, the hair above it, and the background away from
the person — all from the input (its face landmarks and its person mask), never from the edit."""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from pipeline.packets import FaceObservation

HAIR_HEIGHT = 0.8                   # the hair region reaches this many face-box heights above the box
HAIR_SIDES = 0.25                   # … and this many face-box widths beyond each side
PERSON_MARGIN = 0.35                # the person mask grown by this many face widths before "background"
MIN_HAIR_PIXELS = 50


@dataclass
class Regions:
    """Boolean (H, W) masks of one input frame."""

    face: np.ndarray
    hair: np.ndarray | None         # None: no hair above the face (bald, cropped, ...)
    background: np.ndarray


def face_box_mask(face: FaceObservation, shape: tuple[int, int]) -> np.ndarray:
    h, w = shape
    x0, y0, x1, y1 = (int(round(v)) for v in face.box)
    mask = np.zeros((h, w), bool)
    mask[max(y0, 0):max(min(y1, h), 0), max(x0, 0):max(min(x1, w), 0)] = True
    return mask


def frame_regions(face: FaceObservation, person: np.ndarray) -> Regions:
    """The regions of a frame with tracked `face` and soft `person` mask (H, W) in [0, 1]."""
    h, w = person.shape
    x0, y0, x1, y1 = face.box
    bw, bh = x1 - x0, y1 - y0
    body = person > 0.5
    above = np.zeros((h, w), bool)
    top = int(np.clip(round(y0 - HAIR_HEIGHT * bh), 0, h))
    left, right = (int(np.clip(round(v), 0, w)) for v in (x0 - HAIR_SIDES * bw, x1 + HAIR_SIDES * bw))
    above[top:int(np.clip(round(y0), 0, h)), left:right] = True
    hair = above & body
    grow = max(3, int(round(PERSON_MARGIN * bw)))
    near_person = cv2.dilate(body.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1,) * 2))
    return Regions(face=face_box_mask(face, (h, w)), hair=hair if hair.sum() >= MIN_HAIR_PIXELS else None,
                   background=near_person == 0)
