"""Tiny generated models and images for the tests of beaver and of third-party plugins.

Nothing here downloads anything; models are built with ``onnx`` on the fly.
"""
