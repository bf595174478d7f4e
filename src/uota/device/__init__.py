"""The device library: `uota.py` in this folder is copied onto the board as it is."""
