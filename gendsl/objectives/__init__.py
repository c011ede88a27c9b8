"""gendsl.objectives."""
