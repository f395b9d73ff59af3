"""simlab: exact finite-support tests of robust LLM-alignment theory."""
__version__ = "0.1.0"
