"""gendsl.metrics."""
