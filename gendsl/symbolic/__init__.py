"""gendsl.symbolic."""
