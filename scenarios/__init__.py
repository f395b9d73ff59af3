"""The registered simlab studies: one scenario file per study (see CONTRIBUTING.md)."""
