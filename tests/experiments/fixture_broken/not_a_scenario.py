"""An unrelated helper script in a scenario folder: it defines no SCENARIO and must be skipped."""
raise RuntimeError("must never be executed")
