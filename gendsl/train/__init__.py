"""gendsl.train."""
