"""The TUI's remembered preferences (the theme): one small JSON file per user.

Kept per user under the XDG config directory (`$XDG_CONFIG_HOME/hnbooks/tui.json`, by default
`~/.config/hnbooks/tui.json`), not in the database: a theme suits a person and their terminal, while
one database is shared by several annotators (and by read-only copies), whose choices must not
overwrite each other's. Plain Python: no Textual here.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

PREFERENCES_FILE = "tui.json"


def default_preferences_path() -> Path:
    """`$XDG_CONFIG_HOME/hnbooks/tui.json`, or `~/.config/hnbooks/tui.json` without it."""
    config_home = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config_home) / "hnbooks" / PREFERENCES_FILE


def read_preferences(path: Path) -> dict[str, str]:
    """The preferences stored at `path`; none when it is missing or unreadable (a preference is
    never worth refusing to start over)."""
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(loaded, dict):
        return {}
    return {str(k): v for k, v in loaded.items() if isinstance(v, str)}


def write_preference(path: Path, name: str, value: str) -> None:
    """Store `name = value` at `path`, keeping the others; written beside it and renamed into place,
    so two sessions quitting at once leave one whole file."""
    preferences = read_preferences(path)
    preferences[name] = value
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tui-", suffix=".json")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            json.dump(preferences, file, indent=2, sort_keys=True)
            file.write("\n")
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
