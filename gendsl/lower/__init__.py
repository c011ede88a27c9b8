"""gendsl.lower."""
