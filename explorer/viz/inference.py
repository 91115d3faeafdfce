"""What the inference lab's tabs draw alike: one height and margin for their charts (so the first chart of any tab
sits on the first screen under the page's header and tab row), and one colour per attention layout, so MHA is the
same blue in the KV-cache chart as wherever another tab names it.

Pure functions: figures in, figures out; nothing is computed here."""
from __future__ import annotations

import plotly.graph_objects as go

CHART_HEIGHT = 380  # px: header + tab row + this fit above the fold at 1366x768 (tests/browser, HELPER_RULES)
LAYOUT_COLORS = {"mha": "#4C78A8", "gqa": "#F58518", "mqa": "#54A24B", "mla": "#B279A2", "custom": "#E45756"}


def tab_layout(fig: go.Figure, *, height: int = CHART_HEIGHT, legend_top: bool = True) -> go.Figure:
    """``fig`` sized for a tab: compact margins, the legend in a row above the plot (not eating its width)."""
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=60, b=10), hovermode="x unified",
                      title_y=0.99, title_yanchor="top")  # the title at the top, the legend between it and the plot
    if legend_top:
        # room for both at projector size (presenter mode raises every text to 18 px)
        fig.update_layout(margin_t=95, legend=dict(orientation="h", yanchor="bottom", y=1.0, xanchor="left", x=0))
    return fig
