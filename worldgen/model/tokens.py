"""Part tokens: one vector per part, the unordered set the world model generates.

    token = [centre (3) | extent (3) | yaw (2) | count (1) | colour (3) | kind one-hot (K + 1) | z (latent)]

- centre: asinh(c / 16 m), about linear over the 64 m footprint and compressed
  out to the sky dome (180 m -> 3.1);
- extent: log(e / 2 m) / 1.5, the part's half-sizes;
- yaw: (cos, sin) of the part's heading;
- count: (log2(n) - 6.5) / 3, the number of Gaussians its decoder grows;
- colour: 2 rgb - 1 of the part's mean colour (its splats add their own to it);
- kind: one-hot over `KINDS` plus a last "empty" class, the padding of worlds
  with fewer parts than the set has tokens (an empty token is zero elsewhere),
  at height `KIND_SCALE`: a wrong kind costs a whole part, so the flow's loss
  weighs these dimensions more;
- z: the part autoencoder's latent, standardised by the data's per-dimension
  mean and standard deviation (kept with the model's weights).

`encode_parts` and `decode_parts` are each other's inverse (up to the count's
rounding); nothing in a token says where in the set it stands.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from worldgen.errors import UsageError
from worldgen.procedural.parts import KINDS

CENTER_UNIT = 16.0  # meters
EXTENT_UNIT, EXTENT_SCALE = 2.0, 1.5
COUNT_MID, COUNT_SCALE = 6.5, 3.0
#: the padding class: index len(KINDS) of the kind one-hot
EMPTY = len(KINDS)
KIND_SCALE = 2.0
#: the most Gaussians one decoded part may have (the largest procedural part, a castle keep, has ~5.4k)
MAX_COUNT = 8192
FRAME_DIM = 12  # centre 3, extent 3, yaw 2, count 1, colour 3


def token_dim(latent: int) -> int:
    """Width of a part token for a `latent`-dimensional autoencoder."""
    return FRAME_DIM + len(KINDS) + 1 + latent


@dataclass(frozen=True)
class PartFrames:
    """Everything a token says about P parts but their latents: kind, frame, splat count and mean colour."""

    kinds: Tensor  # [P] long, index into KINDS (EMPTY: no part)
    centers: Tensor  # [P, 3] meters
    extents: Tensor  # [P, 3] meters
    yaws: Tensor  # [P] radians
    counts: Tensor  # [P] long
    colors: Tensor  # [P, 3] mean rgb in [0, 1]


def encode_parts(
    frames: PartFrames,
    z: Tensor,  # [P, latent] standardised latents
) -> Tensor:  # [P, token_dim]
    """Parts -> tokens (`frames.kinds` may hold EMPTY: those tokens are the padding token)."""
    k = torch.nn.functional.one_hot(frames.kinds, len(KINDS) + 1).to(z.dtype) * KIND_SCALE
    tok = torch.cat(
        [
            torch.asinh(frames.centers.to(z.dtype) / CENTER_UNIT),
            torch.log(frames.extents.to(z.dtype) / EXTENT_UNIT) / EXTENT_SCALE,
            torch.stack([torch.cos(frames.yaws), torch.sin(frames.yaws)], dim=-1).to(z.dtype),
            ((torch.log2(frames.counts.clamp_min(1).to(z.dtype)) - COUNT_MID) / COUNT_SCALE)[:, None],
            frames.colors.to(z.dtype) * 2 - 1,
            k,
            z,
        ],
        dim=-1,
    )
    empty = frames.kinds == EMPTY
    return torch.where(empty[:, None], padding_token(z.shape[-1], dtype=z.dtype, device=z.device), tok)


def padding_token(latent: int, *, dtype: torch.dtype = torch.float32, device=None) -> Tensor:  # [token_dim]
    """The token of "no part": the empty class, zeros elsewhere."""
    t = torch.zeros(token_dim(latent), dtype=dtype, device=device)
    t[FRAME_DIM + EMPTY] = KIND_SCALE
    return t


def decode_parts(tokens: Tensor) -> tuple[PartFrames, Tensor]:  # [P, token_dim] -> frames, z [P, latent]
    """Tokens -> kinds (argmax; EMPTY for padding), frames, counts in [1, MAX_COUNT], standardised latents."""
    if tokens.ndim != 2 or tokens.shape[-1] <= FRAME_DIM + len(KINDS) + 1:
        raise UsageError(f"part tokens must be [P, >{FRAME_DIM + len(KINDS) + 1}], got {tuple(tokens.shape)}")
    kinds = tokens[:, FRAME_DIM : FRAME_DIM + len(KINDS) + 1].argmax(-1)
    centers = torch.sinh(tokens[:, :3]) * CENTER_UNIT
    extents = torch.exp(tokens[:, 3:6].clamp(-4.0, 4.0) * EXTENT_SCALE) * EXTENT_UNIT
    yaws = torch.atan2(tokens[:, 7], tokens[:, 6])
    log2n = tokens[:, 8] * COUNT_SCALE + COUNT_MID
    counts = torch.exp2(log2n.clamp(0.0, 13.0)).round().long().clamp(1, MAX_COUNT)
    colors = ((tokens[:, 9:12] + 1) / 2).clamp(0.0, 1.0)
    z = tokens[:, FRAME_DIM + len(KINDS) + 1 :]
    return PartFrames(kinds, centers, extents, yaws, counts, colors), z


__all__ = ["EMPTY", "FRAME_DIM", "MAX_COUNT", "PartFrames", "decode_parts", "encode_parts", "padding_token", "token_dim"]
