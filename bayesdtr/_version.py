"""The package version, importable by any module without importing the package's public names."""

__version__ = "0.1.0"
