"""SR3's UNet (Janspiry re-implementation; docs/methods.md §3), written afresh.

Noise conditioning is continuous: the network receives sqrt(gamma), embeds it WaveGrad
style (noise * exp(-ln(1e4) k / count), sin and cos concatenated), passes it through an MLP
and adds it to the features of each ResBlock without an affine transform. ResBlocks are
GroupNorm -> Swish -> 3x3 conv (plain convs). The configuration of RDDM's SR3 baseline is
``sr_sr3_64_512``: inner 64, mults (1, 2, 4, 8, 16), one ResBlock per level, no attention
at any resolution (the middle keeps its one self-attention), GroupNorm(16), no dropout:
155.29M parameters and 155.28 GMACs per step at 256x256 with 7 input channels (THOP).
"""

import math

import torch
from torch import Tensor, nn


class NoiseLevelEmbedding(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        count = dim // 2
        self.register_buffer(
            "freqs", torch.exp(-math.log(1e4) * torch.arange(count) / count), persistent=False
        )

    def forward(self, noise_level: Tensor) -> Tensor:
        angles = noise_level.float()[:, None] * self.freqs[None]
        return torch.cat([angles.sin(), angles.cos()], dim=-1)


class Swish(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return x * torch.sigmoid(x)


def _norm_act_conv(dim_in: int, dim_out: int, groups: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(
        nn.GroupNorm(groups, dim_in),
        Swish(),
        nn.Dropout(dropout) if dropout else nn.Identity(),
        nn.Conv2d(dim_in, dim_out, 3, padding=1),
    )


class SelfAttention(nn.Module):
    def __init__(self, channels: int, groups: int):
        super().__init__()
        self.norm = nn.GroupNorm(groups, channels)
        self.qkv = nn.Conv2d(channels, channels * 3, 1, bias=False)
        self.out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, c, h * w).unbind(1)
        attn = torch.einsum("bci,bcj->bij", q, k).div(math.sqrt(c)).softmax(dim=-1)
        return x + self.out(torch.einsum("bij,bcj->bci", attn, v).reshape(b, c, h, w))


class SR3ResBlock(nn.Module):
    def __init__(self, dim_in, dim_out, emb_dim, groups, dropout, with_attn=False):
        super().__init__()
        self.noise_proj = nn.Linear(emb_dim, dim_out)
        self.block1 = _norm_act_conv(dim_in, dim_out, groups, 0.0)
        self.block2 = _norm_act_conv(dim_out, dim_out, groups, dropout)
        self.skip = nn.Conv2d(dim_in, dim_out, 1) if dim_in != dim_out else nn.Identity()
        self.attn = SelfAttention(dim_out, groups) if with_attn else None

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = self.block1(x) + self.noise_proj(emb)[:, :, None, None]
        h = self.block2(h) + self.skip(x)
        return self.attn(h) if self.attn is not None else h


class SR3UNet(nn.Module):
    """SR3UNet(x, sqrt_gamma) -> epsilon prediction."""

    def __init__(
        self,
        in_channels: int = 6,
        out_channels: int = 3,
        inner_channel: int = 64,
        channel_mults: tuple[int, ...] = (1, 2, 4, 8, 16),
        res_blocks: int = 1,
        attn_res: tuple[int, ...] = (),
        norm_groups: int = 16,
        dropout: float = 0.0,
        image_size: int = 256,
    ):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        emb = inner_channel
        self.noise_mlp = nn.Sequential(
            NoiseLevelEmbedding(inner_channel),
            nn.Linear(inner_channel, inner_channel * 4),
            Swish(),
            nn.Linear(inner_channel * 4, inner_channel),
        )
        block = {"emb_dim": emb, "groups": norm_groups, "dropout": dropout}
        channels = inner_channel
        skip_channels = [channels]
        resolution = image_size
        downs: list[nn.Module] = [nn.Conv2d(in_channels, inner_channel, 3, padding=1)]
        for level, mult in enumerate(channel_mults):
            width = inner_channel * mult
            for _ in range(res_blocks):
                downs.append(
                    SR3ResBlock(channels, width, with_attn=resolution in attn_res, **block)
                )
                skip_channels.append(width)
                channels = width
            if level != len(channel_mults) - 1:
                downs.append(nn.Conv2d(channels, channels, 3, stride=2, padding=1))
                skip_channels.append(channels)
                resolution //= 2
        self.downs = nn.ModuleList(downs)
        self.mid = nn.ModuleList(
            [
                SR3ResBlock(channels, channels, with_attn=True, **block),
                SR3ResBlock(channels, channels, with_attn=False, **block),
            ]
        )
        ups: list[nn.Module] = []
        for level in reversed(range(len(channel_mults))):
            width = inner_channel * channel_mults[level]
            for _ in range(res_blocks + 1):
                ups.append(
                    SR3ResBlock(
                        channels + skip_channels.pop(),
                        width,
                        with_attn=resolution in attn_res,
                        **block,
                    )
                )
                channels = width
            if level != 0:
                ups.append(
                    nn.Sequential(
                        nn.Upsample(scale_factor=2, mode="nearest"),
                        nn.Conv2d(channels, channels, 3, padding=1),
                    )
                )
                resolution *= 2
        self.ups = nn.ModuleList(ups)
        self.final = _norm_act_conv(channels, out_channels, norm_groups, 0.0)

    def forward(self, x: Tensor, noise_level: Tensor) -> Tensor:
        emb = self.noise_mlp(noise_level)
        features = []
        for layer in self.downs:
            x = layer(x, emb) if isinstance(layer, SR3ResBlock) else layer(x)
            features.append(x)
        for layer in self.mid:
            x = layer(x, emb)
        for layer in self.ups:
            if isinstance(layer, SR3ResBlock):
                x = layer(torch.cat((x, features.pop()), dim=1), emb)
            else:
                x = layer(x)
        return self.final(x)
