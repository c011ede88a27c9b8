"""gendsl.nn."""
