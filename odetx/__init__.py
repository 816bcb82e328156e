"""odetx: train, evaluate, compare and export transformers read as ODE integrators."""

__version__ = "0.1.0"
