"""Charts of a plan, drawn with matplotlib's object API (no pyplot state, safe in any thread)."""

from __future__ import annotations

from matplotlib.figure import Figure

SAVING = "#2a7f62"
COST = "#c0392b"


def saving_by_term_chart(savings: list[tuple[str, float]], horizon_h: int) -> Figure:
    """Horizontal bars, one per score term: what the plan saves (green) or costs (red) on it."""
    figure = Figure(figsize=(6.4, 2.6), dpi=90, layout="constrained")
    axes = figure.add_subplot()
    labels = [term for term, _ in savings]
    values = [value for _, value in savings]
    axes.barh(labels, values, color=[SAVING if v >= 0 else COST for v in values])
    axes.axvline(0, color="black", linewidth=0.8)
    axes.invert_yaxis()
    for y, value in enumerate(values):
        axes.annotate(
            f"{value:,.2f}",
            (value, y),
            xytext=(3 if value >= 0 else -3, 0),
            textcoords="offset points",
            va="center",
            ha="left" if value >= 0 else "right",
            fontsize=8,
        )
    axes.set_xlabel(f"saving over {horizon_h} h (current host minus target), all moves")
    axes.set_title("Plan saving by score term", fontsize=10)
    axes.margins(x=0.2)
    return figure
