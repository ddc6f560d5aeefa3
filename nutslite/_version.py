"""The package version, importable before anything else."""

__version__ = "0.1.0"
