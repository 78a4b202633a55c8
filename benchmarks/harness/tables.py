"""Markdown helpers shared by the report's sections: times, numbers and tables."""
from __future__ import annotations


def fmt_seconds(s) -> str:
    """``s`` seconds with three significant figures in s, ms, µs or ns; "—" for None."""
    if s is None:
        return "—"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6), ("ns", 1e-9)):
        if s >= scale or unit == "ns":
            v = s / scale
            return f"{v:.0f} {unit}" if v >= 100 else f"{v:.1f} {unit}" if v >= 10 else f"{v:.2f} {unit}"
    return "—"


def fmt(value, pattern) -> str:
    """``pattern.format(value)``, or "—" for None."""
    return "—" if value is None else pattern.format(value)


def mib(n) -> str:
    """``n`` bytes in MiB, or "—" for None."""
    return "—" if n is None else f"{n / 2**20:.0f} MiB"


def table(headers, rows) -> list[str]:
    """A Markdown table's lines, and an empty line after it."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return lines + [""]
