"""The shared UNet of RDDM and Resfusion (lucidrains design; docs/methods.md §5), written afresh.

Stem 7x7 conv; per level two ResBlocks and a residual pre-normed linear attention, then a
4x4 stride-2 conv (3x3 and no downsampling at the last level); middle ResBlock, full
attention, ResBlock; a mirrored decoder with skips concatenated before each ResBlock and
nearest x2 + 3x3 conv upsampling; the head concatenates the stem output, runs a ResBlock
and a 1x1 conv. ResBlocks use weight-standardised 3x3 convs, GroupNorm(8), SiLU and a
scale/shift from the time MLP. At dim 64, mults (1, 2, 4, 8) and 6 input channels it has
36.26M parameters, of which THOP sees 7.738M (it skips the conv subclass and the norms).

``shared_encoder=True`` gives RDDM's SM-Res-N-1Net "shared encoder" network (Table 5): one
encoder, a residual decoder without skips and a noise decoder with skips; forward then
returns (residual, noise).
"""

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class SinusoidalEmbedding(nn.Module):
    """Transformer-style sin/cos embedding of a real-valued time (integer t or alpha_bar*T)."""

    def __init__(self, dim: int):
        super().__init__()
        half = dim // 2
        scale = math.log(10000) / (half - 1)
        self.register_buffer("freqs", torch.exp(-scale * torch.arange(half)), persistent=False)

    def forward(self, time: Tensor) -> Tensor:
        angles = time.float()[:, None] * self.freqs[None]
        return torch.cat([angles.sin(), angles.cos()], dim=-1)


class WeightStandardizedConv2d(nn.Conv2d):
    """Conv whose filters are standardised to zero mean, unit variance per output channel.

    Without gradients (sampling, evaluation) the standardised filters are computed once and
    kept until the weights change: the key is the weight's storage, in-place version counter
    (optimizer steps, ``load_state_dict``), dtype and device, and the input dtype (which
    picks eps). The kept tensor is the very result of the same computation, so outputs are
    bitwise those of standardising on every forward."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._standardised: Tensor | None = None
        self._standardised_for: tuple | None = None

    def standardised_weight(self, dtype: torch.dtype) -> Tensor:
        w = self.weight
        if (torch.is_grad_enabled() and w.requires_grad) or w.is_meta:  # meta: counting only
            return _standardise(w, dtype)
        # under autocast the convolution runs in the autocast dtype: keep the filters in it
        # too, or every forward casts them again
        device = w.device.type
        cast = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else None
        key = (w.data_ptr(), w._version, w.dtype, w.device, dtype, cast)
        if self._standardised_for != key:
            standardised = _standardise(w.detach(), dtype)
            self._standardised = standardised if cast is None else standardised.to(cast)
            self._standardised_for = key
        return self._standardised

    def forward(self, x: Tensor) -> Tensor:
        weight = self.standardised_weight(x.dtype)
        return F.conv2d(x, weight, self.bias, self.stride, self.padding)


def _standardise(w: Tensor, dtype: torch.dtype) -> Tensor:
    eps = 1e-5 if dtype == torch.float32 else 1e-3
    mean = w.mean(dim=(1, 2, 3), keepdim=True)
    var = w.var(dim=(1, 2, 3), unbiased=False, keepdim=True)
    return (w - mean) * (var + eps).rsqrt()


class ChannelLayerNorm(nn.Module):
    """Gain-only LayerNorm over the channel axis of a feature map."""

    def __init__(self, channels: int):
        super().__init__()
        self.gain = nn.Parameter(torch.ones(1, channels, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        eps = 1e-5 if x.dtype == torch.float32 else 1e-3
        var, mean = torch.var_mean(x, dim=1, unbiased=False, keepdim=True)
        return (x - mean) * (var + eps).rsqrt() * self.gain


class ResBlock(nn.Module):
    def __init__(self, dim_in: int, dim_out: int, time_dim: int, groups: int = 8):
        super().__init__()
        self.time_mlp = nn.Sequential(nn.SiLU(), nn.Linear(time_dim, dim_out * 2))
        self.conv1 = WeightStandardizedConv2d(dim_in, dim_out, 3, padding=1)
        self.norm1 = nn.GroupNorm(groups, dim_out)
        self.conv2 = WeightStandardizedConv2d(dim_out, dim_out, 3, padding=1)
        self.norm2 = nn.GroupNorm(groups, dim_out)
        self.skip = nn.Conv2d(dim_in, dim_out, 1) if dim_in != dim_out else nn.Identity()

    def forward(self, x: Tensor, time_emb: Tensor) -> Tensor:
        scale, shift = self.time_mlp(time_emb)[:, :, None, None].chunk(2, dim=1)
        h = F.silu(self.norm1(self.conv1(x)) * (scale + 1) + shift)
        h = F.silu(self.norm2(self.conv2(h)))
        return h + self.skip(x)


def _split_heads(t: Tensor, heads: int) -> Tensor:
    b, c, h, w = t.shape
    return t.reshape(b, heads, c // heads, h * w)


class LinearAttention(nn.Module):
    def __init__(self, dim: int, heads: int = 4, dim_head: int = 32):
        super().__init__()
        self.heads, self.scale = heads, dim_head**-0.5
        hidden = heads * dim_head
        self.to_qkv = nn.Conv2d(dim, hidden * 3, 1, bias=False)
        self.to_out = nn.Sequential(nn.Conv2d(hidden, dim, 1), ChannelLayerNorm(dim))

    def forward(self, x: Tensor) -> Tensor:
        b, _, h, w = x.shape
        q, k, v = (_split_heads(t, self.heads) for t in self.to_qkv(x).chunk(3, dim=1))
        q = q.softmax(dim=-2) * self.scale
        k = k.softmax(dim=-1)
        # the official networks average the values over the h*w positions before forming the
        # context (docs/official-code.md, "Linear attention"); without it every context entry
        # is h*w times larger and the network is a different function of its weights
        context = torch.einsum("bhdn,bhen->bhde", k, v / (h * w))
        out = torch.einsum("bhde,bhdn->bhen", context, q)
        return self.to_out(out.reshape(b, -1, h, w))


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int = 4, dim_head: int = 32):
        super().__init__()
        self.heads, self.scale = heads, dim_head**-0.5
        hidden = heads * dim_head
        self.to_qkv = nn.Conv2d(dim, hidden * 3, 1, bias=False)
        self.to_out = nn.Conv2d(hidden, dim, 1)

    def forward(self, x: Tensor) -> Tensor:
        b, _, h, w = x.shape
        q, k, v = (_split_heads(t, self.heads) for t in self.to_qkv(x).chunk(3, dim=1))
        attn = torch.einsum("bhdi,bhdj->bhij", q * self.scale, k).softmax(dim=-1)
        out = torch.einsum("bhij,bhdj->bhdi", attn, v)
        return self.to_out(out.reshape(b, -1, h, w))


class PreNormResidual(nn.Module):
    """x + fn(LayerNorm(x))."""

    def __init__(self, dim: int, fn: nn.Module):
        super().__init__()
        self.norm, self.fn = ChannelLayerNorm(dim), fn

    def forward(self, x: Tensor) -> Tensor:
        return x + self.fn(self.norm(x))


class Upsample(nn.Sequential):
    def __init__(self, dim_in: int, dim_out: int):
        super().__init__(
            nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(dim_in, dim_out, 3, padding=1)
        )


class Decoder(nn.Module):
    """Mirrored decoder; ``skips=False`` drops every skip (encoder features and stem output)."""

    def __init__(self, dims: list[int], time_dim: int, out_channels: int, skips: bool):
        super().__init__()
        self.skips = skips
        in_out = list(zip(dims[:-1], dims[1:], strict=True))
        self.levels = nn.ModuleList()
        for i, (d_in, d_out) in enumerate(reversed(in_out)):
            is_last = i == len(in_out) - 1
            block_in = d_out + d_in if skips else d_out
            self.levels.append(
                nn.ModuleList(
                    [
                        ResBlock(block_in, d_out, time_dim),
                        ResBlock(block_in, d_out, time_dim),
                        PreNormResidual(d_out, LinearAttention(d_out)),
                        nn.Conv2d(d_out, d_in, 3, padding=1) if is_last else Upsample(d_out, d_in),
                    ]
                )
            )
        dim = dims[0]
        self.final_block = ResBlock(dim * 2 if skips else dim, dim, time_dim)
        self.final_conv = nn.Conv2d(dim, out_channels, 1)

    def forward(self, x: Tensor, stem: Tensor, features: list[Tensor], t: Tensor) -> Tensor:
        features = list(features)
        for block1, block2, attn, upsample in self.levels:
            x = block1(torch.cat((x, features.pop()), 1) if self.skips else x, t)
            x = block2(torch.cat((x, features.pop()), 1) if self.skips else x, t)
            x = upsample(attn(x))
        x = self.final_block(torch.cat((x, stem), 1) if self.skips else x, t)
        return self.final_conv(x)


class UNet(nn.Module):
    """UNet(x, time) -> prediction. ``time`` is a (B,) tensor of real values."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int = 3,
        dim: int = 64,
        dim_mults: tuple[int, ...] = (1, 2, 4, 8),
        shared_encoder: bool = False,
    ):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.stem = nn.Conv2d(in_channels, dim, 7, padding=3)
        time_dim = dim * 4
        self.time_mlp = nn.Sequential(
            SinusoidalEmbedding(dim),
            nn.Linear(dim, time_dim),
            nn.GELU(),
            nn.Linear(time_dim, time_dim),
        )
        dims = [dim, *(dim * m for m in dim_mults)]
        in_out = list(zip(dims[:-1], dims[1:], strict=True))
        self.encoder = nn.ModuleList()
        for i, (d_in, d_out) in enumerate(in_out):
            is_last = i == len(in_out) - 1
            self.encoder.append(
                nn.ModuleList(
                    [
                        ResBlock(d_in, d_in, time_dim),
                        ResBlock(d_in, d_in, time_dim),
                        PreNormResidual(d_in, LinearAttention(d_in)),
                        nn.Conv2d(d_in, d_out, 3, padding=1)
                        if is_last
                        else nn.Conv2d(d_in, d_out, 4, stride=2, padding=1),
                    ]
                )
            )
        mid = dims[-1]
        self.mid_block1 = ResBlock(mid, mid, time_dim)
        self.mid_attn = PreNormResidual(mid, Attention(mid))
        self.mid_block2 = ResBlock(mid, mid, time_dim)
        self.decoder = Decoder(dims, time_dim, out_channels, skips=True)
        self.residual_decoder = (
            Decoder(dims, time_dim, out_channels, skips=False) if shared_encoder else None
        )

    def forward(self, x: Tensor, time: Tensor) -> Tensor | tuple[Tensor, Tensor]:
        x = self.stem(x)
        stem = x
        t = self.time_mlp(time)
        features = []
        for block1, block2, attn, downsample in self.encoder:
            x = block1(x, t)
            features.append(x)
            x = attn(block2(x, t))
            features.append(x)
            x = downsample(x)
        x = self.mid_block2(self.mid_attn(self.mid_block1(x, t)), t)
        if self.residual_decoder is None:
            return self.decoder(x, stem, features, t)
        return self.residual_decoder(x, stem, features, t), self.decoder(x, stem, features, t)
