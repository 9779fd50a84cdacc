"""Benchmarks (`make bench`): each module measures one aspect and writes bench/results/<name>.json."""
