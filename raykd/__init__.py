"""raykd: distil large scoring models into tiny, fast students on Ray."""

__version__ = "0.1.0"
