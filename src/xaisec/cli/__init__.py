"""The ``xaisec`` command line."""
