"""The capsule explorer (``src/explore.py``): a trained CapsNet in a local web page."""
