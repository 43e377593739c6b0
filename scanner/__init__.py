"""provscan: find copied model code and check that it is credited."""

__version__ = "0.1.0"
