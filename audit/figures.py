"""Former home of the report's figures; they are drawn in `audit.plots` now.

Kept for code that still imports `new_figure` and `MANY_BARS` from here; new
code imports them from `audit.plots.style` and `audit.plots.split`.
"""

from audit.plots.split import MANY_BARS
from audit.plots.style import new_figure

__all__ = ["MANY_BARS", "new_figure"]
