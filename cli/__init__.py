"""The `coplay` command line and its presentation (tables and plots).

The top of the import graph: it may import every other package, and none imports it.
"""
