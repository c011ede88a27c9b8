"""The gendsl standard library: one ``.gen`` spec per model family, shipped as ``gendsl.stdlib``."""
