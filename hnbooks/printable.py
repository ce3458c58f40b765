"""Stored data made safe to print: no control character, escape sequence or bidirectional override
from an imported text, name or id ever reaches a terminal.

Every program that prints data (the TUI, `hnbooks stats`, `hnbooks queue`, error lines) goes through
`printable`, which returns a copy of equal length (one character replaced by one), so every offset
computed on the stored text — spans, candidates, search matches — is valid on the copy shown.
`inert_json` is the same promise for JSON output: exact JSON, with those characters escaped.
"""

from __future__ import annotations

import json
import re
from typing import Any

ESCAPE_PICTURE = "␛"
CONTROL_PLACEHOLDER = "·"
NEWLINE_PICTURE = "␤"


def control_translation() -> dict[int, str]:
    table: dict[int, str] = {}
    for code in range(0x20):
        table[code] = chr(0x2400 + code)  # U+2400.. "control pictures": ␀ ␁ … ␟
    table[0x1B] = ESCAPE_PICTURE
    table[ord("\n")] = "\n"
    # Tabs and carriage returns are layout, not content: a space keeps the width predictable.
    table[ord("\t")] = " "
    table[ord("\r")] = " "
    table[0x7F] = "␡"
    for code in range(0x80, 0xA0):  # C1 controls, including the 8-bit CSI and OSC introducers
        table[code] = CONTROL_PLACEHOLDER
    # Bidirectional overrides and isolates can reorder what is shown (a "Trojan source" spoof).
    for code in [*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200E, 0x200F, 0x061C]:
        table[code] = CONTROL_PLACEHOLDER
    table[0x2028] = " "
    table[0x2029] = " "
    return table


CONTROL_TRANSLATION = control_translation()
LINE_TRANSLATION = {**CONTROL_TRANSLATION, ord("\n"): NEWLINE_PICTURE}

# json.dumps escapes U+0000..U+001F itself; these are the rest of the characters above.
_JSON_UNSAFE = re.compile(
    "[" + "".join(re.escape(chr(code)) for code in CONTROL_TRANSLATION if code >= 0x7F) + "]"
)


def printable(text: str) -> str:
    """`text` with every control character replaced one-for-one by a visible placeholder."""
    return text.translate(CONTROL_TRANSLATION)


def printable_line(text: str) -> str:
    """`printable`, and a newline shown as ␤: a value that must stay on one line (a table cell,
    a name) cannot start a line of its own that looks like the program's."""
    return text.translate(LINE_TRANSLATION)


def inert_json(value: Any, **options: Any) -> str:
    """`json.dumps(value, ensure_ascii=False, **options)` with DEL, C1 controls, bidirectional
    controls and line separators written as \\u escapes: the same JSON value, readable UTF-8
    elsewhere, and nothing a terminal would act on."""
    text = json.dumps(value, ensure_ascii=False, **options)
    return _JSON_UNSAFE.sub(lambda match: f"\\u{ord(match.group()):04x}", text)
