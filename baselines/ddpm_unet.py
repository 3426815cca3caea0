"""The DDPM CIFAR-10 UNet (Ho et al. 2020, Appendix B), written afresh (docs/methods.md §2 "CIFAR-10").

Resfusion's CIFAR-10 generation runs use it (the official ``DDIM_Unet``, itself the ermongroup
port of Ho et al.'s TensorFlow model). Layout, at base width ``ch`` and multipliers
``ch_mult`` (128 and (1, 2, 2, 2) for CIFAR-10):

- time: sinusoidal(ch) -> Linear(ch, 4ch) -> Swish -> Linear(4ch, 4ch);
- a 3x3 stem conv to ch channels;
- per level ``num_res_blocks`` ResBlocks to ch * mult, each followed by self-attention when the
  level's resolution is in ``attention_resolutions`` (16 for a 32x32 input, i.e. level 1),
  then (except at the last level) a 3x3 stride-2 conv padded on the bottom/right only, which
  is what TensorFlow's "SAME" padding does for an even input;
- middle: ResBlock, attention, ResBlock;
- a mirrored decoder with ``num_res_blocks + 1`` ResBlocks per level, each taking one skip
  (the stem output, every encoder ResBlock output and every downsampled map) by channel
  concatenation, and nearest x2 + 3x3 conv upsampling;
- head: GroupNorm, Swish, 3x3 conv.

ResBlock: GroupNorm -> Swish -> conv3x3, plus Linear(Swish(temb)) added per channel, then
GroupNorm -> Swish -> dropout -> conv3x3, and a 1x1 conv on the shortcut when the width
changes. Attention: GroupNorm, 1x1 q/k/v, softmax(q^T k / sqrt(C)) over all positions, a 1x1
output projection and a residual add. GroupNorm uses 32 groups (eps 1e-6); widths below 32
(test-scale networks) use gcd(32, width) groups. Initialisation is PyTorch's default, as in the
official Resfusion module (Ho et al. zero-initialise the last conv of each block; not done here).
"""

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from baselines.unet import SinusoidalEmbedding


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(32, channels), channels, eps=1e-6)


class DDPMResBlock(nn.Module):
    """Pre-activation residual block with an additive time embedding (Ho et al., App. B)."""

    def __init__(self, dim_in: int, dim_out: int, time_dim: int, dropout: float):
        super().__init__()
        self.norm1 = _norm(dim_in)
        self.conv1 = nn.Conv2d(dim_in, dim_out, 3, padding=1)
        self.time_proj = nn.Linear(time_dim, dim_out)
        self.norm2 = _norm(dim_out)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(dim_out, dim_out, 3, padding=1)
        self.shortcut = nn.Conv2d(dim_in, dim_out, 1) if dim_in != dim_out else nn.Identity()

    def forward(self, x: Tensor, time_emb: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.time_proj(F.silu(time_emb))[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return self.shortcut(x) + h


class DDPMAttention(nn.Module):
    """Single-head softmax self-attention over all positions, with a residual add."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm = _norm(channels)
        self.q = nn.Conv2d(channels, channels, 1)
        self.k = nn.Conv2d(channels, channels, 1)
        self.v = nn.Conv2d(channels, channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        normed = self.norm(x)
        q, k, v = (f(normed).reshape(b, c, h * w) for f in (self.q, self.k, self.v))
        weights = torch.einsum("bci,bcj->bij", q, k).mul(c**-0.5).softmax(dim=-1)
        out = torch.einsum("bij,bcj->bci", weights, v).reshape(b, c, h, w)
        return x + self.proj(out)


class Downsample(nn.Module):
    """3x3 stride-2 conv, zero-padded by one row/column at the bottom/right."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class Upsample(nn.Sequential):
    def __init__(self, channels: int):
        super().__init__(
            nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(channels, channels, 3, padding=1)
        )


class Level(nn.Module):
    """One resolution level: ResBlocks, each optionally followed by attention."""

    def __init__(self, dims_in: list[int], dim_out: int, time_dim, dropout, attention: bool):
        super().__init__()
        self.blocks = nn.ModuleList(DDPMResBlock(d, dim_out, time_dim, dropout) for d in dims_in)
        self.attentions = nn.ModuleList(
            DDPMAttention(dim_out) if attention else nn.Identity() for _ in dims_in
        )


class DDPMUNet(nn.Module):
    """DDPMUNet(x, time) -> prediction; ``time`` is a (B,) tensor of real values (the integer
    step index for Resfusion). With the defaults and 3 input and output channels it has
    35,746,307 parameters, the figure of Ho et al.'s CIFAR-10 model (35.7M)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int = 3,
        ch: int = 128,
        ch_mult: tuple[int, ...] = (1, 2, 2, 2),
        num_res_blocks: int = 2,
        attention_resolutions: tuple[int, ...] = (16,),
        image_size: int = 32,
        dropout: float = 0.1,
    ):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        time_dim = 4 * ch
        self.time_mlp = nn.Sequential(
            SinusoidalEmbedding(ch),
            nn.Linear(ch, time_dim),
            nn.SiLU(),
            nn.Linear(time_dim, time_dim),
        )
        self.stem = nn.Conv2d(in_channels, ch, 3, padding=1)
        widths = [ch * m for m in ch_mult]
        last = len(widths) - 1
        self.encoder = nn.ModuleList()
        self.downsamples = nn.ModuleList()
        skip_widths = [ch]  # channels of each map the decoder concatenates, in push order
        width, resolution = ch, image_size
        for level, out in enumerate(widths):
            dims_in = [width] + [out] * (num_res_blocks - 1)
            attend = resolution in attention_resolutions
            self.encoder.append(Level(dims_in, out, time_dim, dropout, attend))
            width = out
            skip_widths += [out] * num_res_blocks
            if level != last:
                self.downsamples.append(Downsample(out))
                skip_widths.append(out)
                resolution //= 2
        self.mid_block1 = DDPMResBlock(width, width, time_dim, dropout)
        self.mid_attention = DDPMAttention(width)
        self.mid_block2 = DDPMResBlock(width, width, time_dim, dropout)
        self.decoder = nn.ModuleList()
        self.upsamples = nn.ModuleList()
        for level in range(last, -1, -1):
            out = widths[level]
            dims_in = []
            for _ in range(num_res_blocks + 1):
                dims_in.append(width + skip_widths.pop())
                width = out
            attend = resolution in attention_resolutions
            self.decoder.append(Level(dims_in, out, time_dim, dropout, attend))
            if level != 0:
                self.upsamples.append(Upsample(out))
                resolution *= 2
        self.head = nn.Sequential(
            _norm(width), nn.SiLU(), nn.Conv2d(width, out_channels, 3, padding=1)
        )

    def forward(self, x: Tensor, time: Tensor) -> Tensor:
        t = self.time_mlp(time)
        skips = [self.stem(x)]
        h = skips[0]
        for level, stage in enumerate(self.encoder):
            for block, attention in zip(stage.blocks, stage.attentions, strict=True):
                h = attention(block(h, t))
                skips.append(h)
            if level < len(self.downsamples):
                h = self.downsamples[level](h)
                skips.append(h)
        h = self.mid_block2(self.mid_attention(self.mid_block1(h, t)), t)
        for level, stage in enumerate(self.decoder):
            for block, attention in zip(stage.blocks, stage.attentions, strict=True):
                h = attention(block(torch.cat([h, skips.pop()], dim=1), t))
            if level < len(self.upsamples):
                h = self.upsamples[level](h)
        return self.head(h)
