"""gendsl.processes."""
