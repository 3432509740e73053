"""One colour per value of each factor, the same in every figure of every report, and legends that show the
line styles.

A report colours its lines by one factor (``report.color_by``: ``norm``, ``optimizer``, ``batch_size``, …);
``FACTOR_COLOURS`` gives each value of each factor its colour once, so ``bn1`` is orange wherever ``norm``
colours a figure, and batch sizes run from dark (small) to light (large) on the viridis scale. The table is
written once, into ``reports/README.md`` (``colour_table``); a figure's caption names its factor and says
whether every value came from the table (``colour_sentence``). A value the table lacks (a user's own
study) gets a colour of that report only, never one the table gives to another value in the same figure.
Different factors may share a colour: a figure colours by one factor only, named in its caption.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from bn_study.report.collect import Condition

Colour = tuple[str, str]  # (hex, the colour in words)

# batch sizes: viridis at 0.85 · log2(batch) / 10 (1 → dark purple, 1024 → lime), fixed here for the values used
BATCH_SIZES: dict[str, Colour] = {
    "1": ("#440154", "dark purple"), "4": ("#443a83", "indigo"), "16": ("#306a8e", "slate blue"),
    "32": ("#277e8e", "petrol"), "64": ("#20928c", "teal"), "128": ("#22a785", "jade"), "256": ("#3bbb75", "green"),
    "512": ("#65cb5e", "grass green"), "1024": ("#9bd93c", "lime"),
}
FACTOR_COLOURS: dict[str, dict[str, Colour]] = {
    "norm": {"none": ("#1f77b4", "blue"), "bn1": ("#ff7f0e", "orange"), "bn2": ("#2ca02c", "green"),
             "bn3": ("#d62728", "red"), "bn4": ("#9467bd", "purple"), "bn1_before": ("#8c564b", "brown"),
             "ln": ("#e377c2", "pink")},
    "optimizer": {"sgd": ("#000000", "black"), "sgd_plain": ("#7f7f7f", "grey"), "adam": ("#bcbd22", "olive"),
                  "adam_keras": ("#17becf", "cyan"), "adamw": ("#393b79", "navy"), "rmsprop": ("#ad494a", "brick")},
    "batch_size": BATCH_SIZES,
    "act": {"sigmoid": ("#1b9e77", "teal"), "relu": ("#d95f02", "rust"), "leaky_relu": ("#7570b3", "slate"),
            "tanh": ("#e7298a", "magenta")},
    "loss": {"ce": ("#4e79a7", "steel blue"), "mse": ("#f28e2b", "amber"), "bce": ("#59a14f", "leaf green")},
    "design": {"epochs": ("#4e79a7", "steel blue"), "equal_steps": ("#e15759", "coral"),
               "linear_lr": ("#76b7b2", "sea green")},
    "variant": {"book_baseline": ("#1f77b4", "blue"), "book_bce": ("#ff7f0e", "orange"),
                "book_leaky_relu": ("#2ca02c", "green"), "book_leaky_relu_hidden": ("#d62728", "red"),
                "book_adam": ("#9467bd", "purple"), "book_layernorm": ("#8c564b", "brown"),
                "book_all_four": ("#e377c2", "pink")},
}
ALIASES = {"loss.name": "loss", "act.name": "act"}  # a run param that names the same choice as a group
# colours of one report only (no color_by, or values the table lacks): matplotlib's tab20, in order
OWN = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
       "#17becf", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94", "#f7b6d2", "#c7c7c7",
       "#dbdb8d", "#9edae5")
LINE_STYLES = ("-", "--", ":", "-.")
STYLE_WORDS = {"-": "solid", "--": "dashed", ":": "dotted", "-.": "dash-dot"}
LEGEND_HANDLE = 4.0  # legend lines this many font sizes long: a dash and its gap show (matplotlib's 2 hides them)


def table_of(factor: str | None) -> dict[str, Colour]:
    return FACTOR_COLOURS.get(ALIASES.get(factor or "", factor or ""), {})


def values_in_order(conditions: Sequence[Condition], key: str | None) -> list[str]:
    seen: list[str] = []
    for c in conditions:
        v = c.choices.get(key, "") if key else c.key
        if v not in seen:
            seen.append(v)
    return seen


def value_colours(conditions: Sequence[Condition], color_by: str | None) -> dict[str, str]:
    """Each value of ``color_by`` (each condition key without it) → its colour: the table's, else one of this
    report's own that no value in the table took here."""
    table = table_of(color_by)
    values = values_in_order(conditions, color_by)
    out = {v: table[v][0] for v in values if v in table}
    spare = [c for c in OWN if c not in out.values()]
    for v in (v for v in values if v not in table):
        out[v] = spare.pop(0) if spare else OWN[len(out) % len(OWN)]
    return out


def palette(conditions: Sequence[Condition], color_by: str | None = None) -> dict[str, str]:
    """Condition key → colour: one per value of ``color_by`` (the shared table's), or one per condition."""
    colours = value_colours(conditions, color_by)
    return {c.key: colours[c.choices.get(color_by, "") if color_by else c.key] for c in conditions}


def line_styles(conditions: Sequence[Condition], style_by: str | None = None) -> dict[str, str]:
    if not style_by:
        return {c.key: "-" for c in conditions}
    values = values_in_order(conditions, style_by)
    return {c.key: LINE_STYLES[values.index(c.choices.get(style_by, "")) % len(LINE_STYLES)] for c in conditions}


def colour_sentence(conditions: Sequence[Condition], color_by: str | None) -> str:
    """What the colours of a report's figures mean, true for this report: a caption's sentence."""
    if not color_by:
        return " One colour per condition, in this report only (it sets no `report.color_by`)."
    table = table_of(color_by)
    values = values_in_order(conditions, color_by)
    shared = [v for v in values if v in table]
    text = f" Colour marks `{color_by}`"
    if shared:
        text += " (" + ", ".join(f"{v or '—'} {table[v][1]}" for v in shared) + "), as in every report that "\
                "colours by it (the table in reports/README.md)"
    own = [v or "(not set)" for v in values if v not in table]
    if own:
        text += f"; {', '.join(own)}: {'colours' if len(own) > 1 else 'a colour'} of this report only"
    return text + "."


def style_sentence(conditions: Sequence[Condition], style_by: str | None,
                   drawn: Sequence[Condition] | None = None) -> str:
    """What the line styles mean (as ``line_styles`` gives them over all ``conditions``), for the values of the
    conditions ``drawn`` (default: all)."""
    if not style_by:
        return ""
    values = values_in_order(conditions, style_by)
    present = set(values_in_order(conditions if drawn is None else drawn, style_by))
    shown = ", ".join(f"{STYLE_WORDS[LINE_STYLES[i % len(LINE_STYLES)]]}: {v or '(not set)'}"
                      for i, v in enumerate(values) if v in present)
    return f" Line style marks `{style_by}` ({shown})."


def legend(ax, *sources, extra: Sequence[tuple] = (), **kw) -> None:
    """``ax``'s legend for the lines drawn on ``sources`` (each label once), then ``extra`` (handle, label)
    pairs: each entry a line of the plotted colour and style, long enough to show a dash, without the marker
    that would cover it."""
    from matplotlib.lines import Line2D

    found: dict[str, object] = {}
    for source in sources:
        for h, label in zip(*source.get_legend_handles_labels()):
            found.setdefault(label, h)
    pairs = [*found.items(), *((label, h) for h, label in extra)]
    if not pairs:
        return
    lines = [Line2D([], [], color=h.get_color(), ls=h.get_linestyle(), lw=h.get_linewidth())
             if isinstance(h, Line2D) and h.get_linestyle() not in ("None", "") else h for _, h in pairs]
    ax.legend(lines, [label for label, _ in pairs], loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8,
              frameon=False, handlelength=LEGEND_HANDLE, **kw)


def colour_table() -> list[str]:
    """``reports/README.md``'s section: every factor's colours, written once for every report."""
    out = ["## Colours and line styles", "",
           "Each figure colours its lines by one factor, named in its caption and its legend; each value of a factor "
           "has one colour in every report (values not listed get a colour of their report only, and the caption "
           "says so). Different factors may reuse a colour: no figure colours by two. Line style marks a second "
           "factor where a report sets one (`report.style_by`: solid for its first value, dashed for the second, "
           "dotted, dash-dot), shown in the legend. Batch sizes follow the viridis scale, dark (small) to "
           "light (large), at 0.85 · log2(batch) / 10.", "",
           "| factor | value | colour |", "|---|---|---|"]
    for factor, values in FACTOR_COLOURS.items():
        out += [f"| `{factor}` | `{v}` | {name} (`{hex_}`) |" for v, (hex_, name) in values.items()]
    return out


def scale_hex(batch: int) -> str:
    """The rule behind ``BATCH_SIZES`` (tests check the table against it)."""
    from matplotlib import colormaps, colors

    return colors.to_hex(colormaps["viridis"](0.85 * math.log2(batch) / 10))
