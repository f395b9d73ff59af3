"""A scenario file that raises while loading: reported in one line, the other files still load."""
raise ImportError("a missing dependency")

SCENARIO = None
