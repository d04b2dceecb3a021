"""The server's adapter folder (`serve --adapters DIR`): the `.safetensors` styles `live3dpe adapt` wrote.

The page picks an adapter by name; the name is looked up in the folder, so no path ever comes in over
the network. The folder is read again on each listing: adapters added while serving show up.
"""
from __future__ import annotations

import re
from pathlib import Path

from pipeline.errors import UserError
from threedpe.adapter import SUFFIX

_NAME = re.compile(r"[\w\-. ]{1,100}")


class AdapterFolder:
    def __init__(self, folder: str | Path):
        self.folder = Path(folder).expanduser()
        if not self.folder.is_dir():
            raise UserError(f"--adapters: no such folder: {self.folder}")

    def names(self) -> list[str]:
        """Adapter names (file names without the suffix), sorted."""
        return sorted(p.name[:-len(SUFFIX)] for p in self.folder.glob(f"*{SUFFIX}")
                      if p.is_file() and not p.name.startswith(".") and _NAME.fullmatch(p.name[:-len(SUFFIX)]))

    def path(self, name: object) -> Path:
        """The file of adapter `name`; ValueError when there is no such adapter in the folder."""
        if not isinstance(name, str) or not _NAME.fullmatch(name) or name not in self.names():
            raise ValueError(f"no adapter named {str(name)[:100]!r} on this server")
        return self.folder / f"{name}{SUFFIX}"
