"""``make soak``: the long reliability scenarios of issue 5 (see ``soak/soak.py``)."""
