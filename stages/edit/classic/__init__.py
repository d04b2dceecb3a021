"""The weight-free `classic` engine: a depth-proxy virtual camera for the whole frame and head styles."""
from stages.edit.classic.engine import ClassicEngine, ClassicScene
from stages.edit.classic.styles import PRESETS, Preset

__all__ = ["ClassicEngine", "ClassicScene", "PRESETS", "Preset"]
