"""One module per lab: what the lab computes, from settings to a result, without any Streamlit.

Every lab has the same five files (tests/test_lab_shape.py checks the first four for each lab in
explorer.ui.nav.LABS); a new lab starts as a copy of the smallest one:

- ``explorer/labs/<lab>.py``: a frozen ``<Lab>Settings`` dataclass of everything the student controls, whose
  ``validate()`` is the only place those values are checked (with explorer.checks, raising ValueError with a
  sentence for the student); the result dataclasses, holding numpy arrays and plain values (cheap to cache,
  nothing a caller could change on a shared object); and ``run(settings, ...) -> Outcome`` (explorer.labs.outcome),
  which never raises for bad input: the outcome carries the result, or the sentence and the fallback shown instead.
  A part of the lab that depends on fewer settings is a function of its own, so it is cached on its own. A lab on
  a real model takes an ``explorer.models.LoadedModel``.
- ``explorer/viz/<lab>.py``: plotly figures drawn from the lab's results only (no torch, nothing computed that the
  result does not hold); pieces several labs draw (heatmaps, grids, labels) live in their own explorer/viz module.
- ``explorer/ui/<lab>.py``: the lab's Streamlit glue: its ``st.cache_data`` / ``st.cache_resource`` wrappers and the
  widgets that build the settings.
- ``labs/<lab>.py``: the thin page: header, widgets (from the ui module), the outcome's error and fallback, the
  figures and the text around them.
- ``tests/test_<lab>*.py``: the library against independent references, and an AppTest that moves the controls.

Data flows one way: widgets -> settings -> run -> outcome -> figures -> page.
"""
