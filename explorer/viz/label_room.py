"""Room for tick labels, in pixels, so heatmaps never overlap or skip them.

Plotly places subplots by fractions of the figure, and Streamlit stretches each figure to its column, so the
pixels a fraction buys depend on the screen. Heights are ours (every figure sets its height), so vertical room is
exact; horizontal room is planned for the narrowest column a chart is drawn in on a 1280-px projector with the
sidebar open (measured in Chromium: a full-width chart is 820 px wide, the right column of the attention lab's
steps 484 px, one of two columns 402 px) and is only more generous on wider screens.

Widths of labels are estimated from their characters: a CJK character is one em wide, anything else at most
0.62 em in the app's font (Source Sans: digits and most letters are about 0.5 em, "m" and "W" about 0.8).
"""
from __future__ import annotations

import math
import unicodedata
from collections.abc import Sequence

FULL_WIDTH_PX = 820
STEP_WIDTH_PX = 484
COLORBAR_PX = 90  # a colour bar with its tick labels and title, beside the plot
TICK_FONT_PX = 10
LINE_PX = 1.3  # a line of text is about 1.3 times its font size tall
TICK_PAD_PX = 6  # between a tick label and its axis


def text_px(label: str, font_px: float = TICK_FONT_PX) -> float:
    """An upper estimate of a label's width in pixels."""
    return font_px * sum(1.0 if unicodedata.east_asian_width(ch) in "WF" else 0.62 for ch in str(label))


def upright_title_px(title: str, font_px: float) -> float:
    """The plot height a vertical axis title needs: turned upright, its width becomes its height. A title taller
    than a short plot (a heatmap of three rows) runs into the figure's title."""
    return text_px(title, font_px) + 2 * TICK_PAD_PX if title else 0.0


def widest_px(labels: Sequence[str], font_px: float = TICK_FONT_PX) -> float:
    return max((text_px(s, font_px) for s in labels), default=0.0)


def row_font_px(rows: int) -> int:
    """Tick font of a category axis with ``rows`` labels: 10 px, 9 px once there are many of them."""
    return TICK_FONT_PX if rows <= 24 else TICK_FONT_PX - 1


def row_px(rows: int) -> float:
    """Height a row needs for its own label, one line of text."""
    return math.ceil(row_font_px(rows) * LINE_PX)


def x_label_room_px(labels: Sequence[str], font_px: float = TICK_FONT_PX) -> float:
    """Height below an axis that holds its tick labels at any angle Plotly picks (0 or 90 degrees, see
    ``X_TICK_ANGLES``): the widest label standing upright."""
    return max(widest_px(labels, font_px), font_px * LINE_PX) + TICK_PAD_PX


# Plotly may turn crowded x labels; straight up (never 30 degrees) keeps each label above its own column,
# so labels of neighbouring panels cannot cross, and the room above is known. Too many still thin out.
X_TICK_ANGLES = [0, 90]


def all_category_ticks(labels: Sequence[str], font_px: float) -> dict:
    """Axis settings that show every category's label (Plotly thins crowded category labels by itself, which
    left out a sentence's tokens): the caller makes sure ``row_px`` fits each of them."""
    return dict(tickmode="array", tickvals=list(labels), ticktext=list(labels), tickfont=dict(size=font_px))
