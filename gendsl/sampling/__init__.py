"""gendsl.sampling."""
