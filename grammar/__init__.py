"""The gendsl grammar (``gendsl.lark``), shipped inside the wheel as ``gendsl.grammar``."""
