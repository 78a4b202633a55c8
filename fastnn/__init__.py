"""fastnn: the fastest way to train a multilayer perceptron on a CPU from Python."""
__version__ = "0.1.0"
