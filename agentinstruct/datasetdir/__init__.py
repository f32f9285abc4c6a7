"""The dataset dir: its layout and atomic writes, the release step (stats, plots, card) and the ``datasets``
builder class."""
