"""The device library: the `uota` package in this folder is copied onto the board as it is
(`package.json` lists its files for mip)."""
