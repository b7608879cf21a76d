"""Publication figures drawn from the report's tables (meding2022, hacohen2020).

`style` holds the shared look (one colour per condition, journal column widths,
integer ticks, `save_figure` to PDF/SVG/PNG); `split`, `dynamics`, `images` and
`similarity` draw one family of figures each, and `paper` names the set an audit
allows. The functions take tables and arrays, never an audit directory, and
return matplotlib Figures without pyplot.
"""
