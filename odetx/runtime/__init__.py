"""Where and how a model runs: device, precision, processes, data loaders, compilation.

Shared by training and evaluation, so neither has to import the other.
"""
