"""Research studies: they call the training jobs, take their data paths as arguments, and are
not installed with the product. Run them from the repository root: ``python -m studies.<name>``.
"""
