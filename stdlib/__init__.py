"""The gendsl standard library: one ``.gen`` spec per model family (``gendsl.stdlib``)."""
