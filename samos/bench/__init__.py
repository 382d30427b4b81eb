"""Benchmarks (`samos bench throughput|stream|accuracy`): each subcommand is its own module."""
