"""The sending engine (to be built)."""
