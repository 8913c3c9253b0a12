"""An example Fitboard plugin: the ``mobilenet`` model and the ``shapes`` data set."""

__version__ = "0.1.0"
