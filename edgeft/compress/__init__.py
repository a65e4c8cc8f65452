"""The codec of split fine-tuning: top-k sparsification, unbiased stochastic quantisation and
lossless coding of a tensor into real bytes (docs/sft.md section 4). Torch is allowed here."""

from edgeft.compress.codec import Codec

__all__ = ["Codec"]
