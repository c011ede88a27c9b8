"""gendsl.data."""
