"""gendsl.frontend."""
