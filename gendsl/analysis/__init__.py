"""gendsl.analysis."""
