"""The network library: shape-inferred builders for MLPs, residual MLPs, ConvNets and UNets,
time and label embeddings, spectral normalisation and ControlNet branches."""

from gendsl.nn.base import ShapedNet
from gendsl.nn.builder import NETWORKS, build_network
from gendsl.nn.control import ControlBranch, copy_for_control
from gendsl.nn.conv import ConvNet
from gendsl.nn.embeddings import (
    FourierEmbedding,
    LabelEmbedding,
    SinusoidalEmbedding,
    gaussian_fourier_features,
    sinusoidal_embedding,
)
from gendsl.nn.layers import count_parameters, zero_module
from gendsl.nn.mlp import MLP, ResNet
from gendsl.nn.pixelcnn import PixelCNN
from gendsl.nn.tables import Embedding, TimeFeatures
from gendsl.nn.unet import UNet

__all__ = [
    "MLP",
    "NETWORKS",
    "ControlBranch",
    "ConvNet",
    "Embedding",
    "FourierEmbedding",
    "LabelEmbedding",
    "PixelCNN",
    "ResNet",
    "ShapedNet",
    "SinusoidalEmbedding",
    "TimeFeatures",
    "UNet",
    "build_network",
    "copy_for_control",
    "count_parameters",
    "gaussian_fourier_features",
    "sinusoidal_embedding",
    "zero_module",
]
