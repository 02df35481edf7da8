"""The network: CharRNN and its config, the ways its layers run, the cells from their equations."""
from .charrnn import CELLS, CharRNN, ModelConfig, detach_hidden, weight_shapes, zero_where
from .layers import LAYERS, choose_layers
from .reference import Hidden

__all__ = ["CELLS", "LAYERS", "CharRNN", "Hidden", "ModelConfig", "choose_layers", "detach_hidden", "weight_shapes",
           "zero_where"]
