"""Path values in config: relative to the working directory, never Windows-style.

PillSnap runs on Linux and WSL2. A ``C:\\...`` path pasted from Windows Explorer would be
read as a relative file name with backslashes in it; refuse it and show the WSL spelling.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Annotated

from pydantic import AfterValidator

_DRIVE = re.compile(r"^[A-Za-z]:([\\/]|$)")


def windows_path_hint(value: str) -> str | None:
    """Return a friendly refusal for a Windows path, or None when the path is fine."""
    if _DRIVE.match(value):
        win = PureWindowsPath(value)
        drive = win.drive[0].lower()
        rest = PurePosixPath(*win.parts[1:]) if len(win.parts) > 1 else PurePosixPath()
        wsl = f"/mnt/{drive}/{rest}".rstrip("/") if str(rest) != "." else f"/mnt/{drive}"
        return (
            f"{value!r} is a Windows path; PillSnap runs under Linux/WSL2, "
            f"where this drive is {wsl!r}"
        )
    if value.startswith("\\\\"):
        return f"{value!r} is a Windows network (UNC) path; mount the share and use its Linux path"
    if "\\" in value:
        return f"{value!r} contains backslashes; use forward slashes (/) in paths"
    return None


def _check_path(value: Path) -> Path:
    hint = windows_path_hint(str(value))
    if hint:
        raise ValueError(hint)
    return value


def _check_optional(value: Path | None) -> Path | None:
    return None if value is None else _check_path(value)


ConfigPath = Annotated[Path, AfterValidator(_check_path)]
OptionalConfigPath = Annotated[Path | None, AfterValidator(_check_optional)]
