"""The window's look: sv-ttk's light or dark theme (the system's choice, as darkdetect reads it, unless --theme
says), and the conversation's colors for each, every name readable on both. The palettes are pure; `apply`
needs Tk.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from ... import render

if TYPE_CHECKING:  # the palettes are pure; only `apply` needs Tk (a Python without tkinter tests them too)
    import tkinter as tk

Mode = Literal["light", "dark"]
READABLE = 4.5  # WCAG's contrast ratio for body text (AA): every name and notice has at least this


def _linear(channel: float) -> float:
    return channel / 12.92 if channel <= 0.04045 else ((channel + 0.055) / 1.055) ** 2.4


def _rgb(color: str) -> tuple[float, float, float]:
    return int(color[1:3], 16) / 255, int(color[3:5], 16) / 255, int(color[5:7], 16) / 255


def luminance(color: str) -> float:
    """WCAG's relative luminance of "#rrggbb"."""
    red, green, blue = (_linear(channel) for channel in _rgb(color))
    return 0.2126 * red + 0.7152 * green + 0.0722 * blue


def contrast(one: str, other: str) -> float:
    """WCAG's contrast ratio of two colors, 1 to 21."""
    lighter, darker = sorted((luminance(one), luminance(other)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


def readable(color: str, background: str, ratio: float = READABLE) -> str:
    """The color with its hue kept, made darker (on a light background) or lighter (on a dark one) until it
    reads on `background`."""
    hue, lightness, saturation = colorsys.rgb_to_hls(*_rgb(color))
    step = -0.01 if luminance(background) > 0.5 else 0.01
    while contrast(color, background) < ratio and 0.0 < lightness < 1.0:
        lightness = min(1.0, max(0.0, lightness + step))
        color = "#" + "".join(f"{round(channel * 255):02x}"
                              for channel in colorsys.hls_to_rgb(hue, lightness, saturation))
    return color


@dataclass(frozen=True)
class Palette:
    """The conversation's colors in one mode. `names`: one per render.NAME_COLORS, the same hues in both."""
    mode: Mode
    background: str
    foreground: str
    grey: str  # time stamps, notices, who is reconnecting
    own: str
    error: str
    private: str
    private_line: str
    mention_line: str
    selection: str
    names: tuple[str, ...]


def palette(mode: Mode) -> Palette:
    # The backgrounds are sv-ttk's own, so the conversation and the theme's frames are one surface.
    if mode == "dark":
        background = "#1c1c1c"
        colors = dict(foreground="#e8e8e8", grey="#9a9da3", own="#8ae234", error="#ff6b6b", private="#e29ddc",
                      private_line="#3a2740", mention_line="#3d3821", selection="#2f60d8")
    else:
        background = "#fafafa"
        colors = dict(foreground="#1c1c1c", grey="#676a70", own="#3f7d05", error="#c01c28", private="#9b2393",
                      private_line="#f6e7f5", mention_line="#fbf1c7", selection="#cfdcf7")
    names = tuple(readable(render.color_rgb(color), background) for color in render.NAME_COLORS)
    return Palette(mode, background, names=names, **colors)


def system_mode() -> Mode:
    """The system's dark or light setting (Windows, macOS, GNOME's), light when it cannot be told."""
    import darkdetect  # here: only the window needs it, and it asks the system when imported

    return "dark" if darkdetect.theme() == "Dark" else "light"


def apply(root: tk.Tk, mode: Mode) -> Palette:
    """Put sv-ttk's theme in that mode on the window and its dialogs; the conversation's colors for it."""
    from tkinter import ttk

    import sv_ttk

    sv_ttk.set_theme(mode, root)
    colors = palette(mode)
    style = ttk.Style(root)
    style.configure("Error.TLabel", foreground=colors.error)
    style.configure("Hint.TLabel", foreground=colors.grey)
    style.configure("Status.TLabel", foreground=colors.grey, padding=(10, 3))
    return colors
