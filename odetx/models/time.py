"""Time-dependent fields (``model.time``): how a group's weights depend on the depth time t.

The vector field of the ODE reading of a transformer may depend on t (a
non-autonomous field, dx/dt = f(x; θ(t))). A group's layers are built from the two
kinds of parametrised parts below, each called as ``part(x, t)``:

- ``none``: the autonomous block; t is ignored (the state dict is the usual one).
- ``film``: every norm's output is scaled and shifted by a small MLP of
  sinusoidal features of t (adaLN of DiT, Peebles & Xie 2023; FiLM, Perez et al.
  2018). The MLP's last layer starts at zero, so a fresh model is the autonomous one.
- ``basis``: every weight matrix and bias is ``W(t) = Σ_k φ_k(s) W_k`` with ``φ_k``
  the Legendre polynomials of the group's span mapped to s ∈ [-1, 1] (the Galerkin
  layers of Massaroli et al. 2020; the time-parametrised weights of qkvflow).
  ``φ_0 = 1``, so ``model.time_basis`` K = 1 is the autonomous block; the higher
  coefficients start at zero, so a fresh model is the autonomous one too.

Every part is TorchScript-compatible: t is a Python float in the fixed-step
integrator and the basis values are plain float arithmetic.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from odetx.models.norms import NORMS, NormKind
from odetx.registry import Registry

# FiLM: sinusoidal features of t (FILM_FREQS frequencies, sine and cosine), one hidden layer.
FILM_FREQS = 8
FILM_HIDDEN = 16
# The slowest frequency's period, in layers: beyond the deepest preset, so no two depths
# up to it share their features.
FILM_PERIOD = 64.0

LAYERNORM = NORMS["layernorm"]


class TimeLinear(nn.Linear):
    """``nn.Linear`` called as ``(x, t)``; t is ignored (the autonomous part)."""

    def forward(self, x: Tensor, t: float = 0.0) -> Tensor:
        return F.linear(x, self.weight, self.bias)


class TimeNorm(nn.Module):
    """A norm of kind ``kind`` (``model.norm``) called as ``(x, t)``; t is ignored (the
    autonomous part). Its parameters are ``weight`` and, if the kind has one, ``bias``."""

    def __init__(self, dim: int, kind: NormKind = LAYERNORM, eps: float | None = None) -> None:
        super().__init__()
        self.kind = kind.name
        self.weight = nn.Parameter(torch.ones(dim))
        if kind.bias:
            self.bias = nn.Parameter(torch.zeros(dim))
        else:
            self.register_parameter("bias", None)
        self.fn = kind.fn(dim, kind.eps if eps is None else eps)

    def forward(self, x: Tensor, t: float = 0.0) -> Tensor:
        return self.fn(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"{self.kind}, {tuple(self.weight.shape)}, eps={self.fn.eps}"


class NoNorm(nn.Module):
    """The identity called as ``(x, t)``: the place of a norm that is shared with another."""

    def forward(self, x: Tensor, t: float = 0.0) -> Tensor:
        return x


class FiLM(nn.Module):
    """``t -> (scale, shift)``, each ``(dim,)``: sinusoidal features, a SiLU layer and a
    last layer that starts at zero (kept as raw parameters, so the backbones' ViT
    initialisation of every ``nn.Linear`` leaves it at zero)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        freqs = 2 * math.pi / FILM_PERIOD * 2.0 ** torch.arange(FILM_FREQS, dtype=torch.float32)
        self.register_buffer("freqs", freqs, persistent=False)
        self.hidden = nn.Linear(2 * FILM_FREQS, FILM_HIDDEN)
        self.out_weight = nn.Parameter(torch.zeros(2 * dim, FILM_HIDDEN))
        self.out_bias = nn.Parameter(torch.zeros(2 * dim))

    def forward(self, t: float) -> tuple[Tensor, Tensor]:
        angles = self.freqs.to(self.out_weight.dtype) * t  # (FILM_FREQS,)
        feats = torch.cat([torch.sin(angles), torch.cos(angles)])  # (2 * FILM_FREQS,)
        out = F.linear(F.silu(self.hidden(feats)), self.out_weight, self.out_bias)  # (2 * dim,)
        scale, shift = out.chunk(2)
        return scale, shift


class FiLMNorm(TimeNorm):
    """A norm whose output is ``norm(x) · (1 + scale(t)) + shift(t)``."""

    def __init__(self, dim: int, kind: NormKind = LAYERNORM, eps: float | None = None) -> None:
        super().__init__(dim, kind, eps)
        self.film = FiLM(dim)

    def forward(self, x: Tensor, t: float = 0.0) -> Tensor:
        y = self.fn(x, self.weight, self.bias)
        scale, shift = self.film(t)
        return y * (1.0 + scale) + shift


def legendre(s: float, k: int) -> list[float]:
    """``P_0(s) … P_{k-1}(s)`` by Bonnet's recursion."""
    out: list[float] = [1.0]
    prev, cur = 1.0, s
    for n in range(1, k):
        out.append(cur)
        prev, cur = cur, ((2 * n + 1) * s * cur - n * prev) / (n + 1)
    return out


class _Basis(nn.Module):
    """Coefficients ``(K, …)`` combined as ``Σ_k P_k(s) W_k`` with s the position of t
    in the span ``[t0, t1]`` mapped to [-1, 1]."""

    def __init__(self, k: int, t0: float, t1: float) -> None:
        super().__init__()
        self.k = k
        self.t0 = t0
        self.t1 = t1

    def combine(self, coef: Tensor, t: float) -> Tensor:
        phi = legendre(2.0 * (t - self.t0) / (self.t1 - self.t0) - 1.0, self.k)
        w = coef[0]  # P_0 = 1: K = 1 is the autonomous weight itself
        for i in range(1, self.k):
            w = w + phi[i] * coef[i]
        return w


class BasisLinear(_Basis):
    """A linear layer whose weight and bias are Legendre expansions in t."""

    def __init__(
        self, in_features: int, out_features: int, bias: bool, k: int, t0: float, t1: float
    ) -> None:
        super().__init__(k, t0, t1)
        self.in_features, self.out_features = in_features, out_features
        self.weight = nn.Parameter(torch.zeros(k, out_features, in_features))
        if bias:
            self.bias = nn.Parameter(torch.zeros(k, out_features))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """ViT initialisation for the constant term; the higher terms start at zero."""
        with torch.no_grad():
            self.weight.zero_()
            nn.init.trunc_normal_(self.weight[0], std=0.02)
            if self.bias is not None:
                self.bias.zero_()

    def forward(self, x: Tensor, t: float = 0.0) -> Tensor:
        bias = self.bias
        if bias is None:
            return F.linear(x, self.combine(self.weight, t))
        return F.linear(x, self.combine(self.weight, t), self.combine(bias, t))


class BasisNorm(_Basis):
    """A norm whose gain (and bias, if its kind has one) are Legendre expansions in t."""

    def __init__(
        self,
        dim: int,
        k: int,
        t0: float,
        t1: float,
        kind: NormKind = LAYERNORM,
        eps: float | None = None,
    ) -> None:
        super().__init__(k, t0, t1)
        self.kind = kind.name
        self.weight = nn.Parameter(torch.zeros(k, dim))
        if kind.bias:
            self.bias = nn.Parameter(torch.zeros(k, dim))
        else:
            self.register_parameter("bias", None)
        self.fn = kind.fn(dim, kind.eps if eps is None else eps)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        with torch.no_grad():
            self.weight.zero_()
            self.weight[0].fill_(1.0)
            if self.bias is not None:
                self.bias.zero_()

    def forward(self, x: Tensor, t: float = 0.0) -> Tensor:
        bias = self.bias
        w = self.combine(self.weight, t)
        if bias is None:
            return self.fn(x, w, None)
        return self.fn(x, w, self.combine(bias, t))

    def extra_repr(self) -> str:
        return f"{self.kind}, {tuple(self.weight.shape)}, eps={self.fn.eps}"


@dataclass(frozen=True)
class TimeParts:
    """The parts of one group: ``mode`` over the span ``[t0, t1]`` (``basis`` K terms)."""

    mode: str = "none"
    basis: int = 1
    t0: float = 0.0
    t1: float = 1.0

    def linear(self, in_features: int, out_features: int, bias: bool = True) -> nn.Module:
        return TIME_MODES[self.mode].linear(in_features, out_features, bias, self)

    def norm(self, dim: int, kind: str = "layernorm", eps: float | None = None) -> nn.Module:
        """A norm of kind ``kind`` (:data:`~odetx.models.norms.NORMS`); ``eps`` None takes
        the kind's own."""
        norm = NORMS[kind]
        return TIME_MODES[self.mode].norm(dim, self, norm, norm.eps if eps is None else eps)


@dataclass(frozen=True)
class TimeMode:
    """How a group's parts depend on t.

    Args:
        name: registry name (``model.time``).
        linear: ``(in, out, bias, parts) -> module`` called as ``(x, t)``.
        norm: ``(dim, parts, kind, eps) -> module`` called as ``(x, t)``.
        extra: ``(group params, dim, norms, K) -> params`` the mode adds per group.
        description: one line for docs and listings.
    """

    name: str
    linear: Callable[[int, int, bool, TimeParts], nn.Module]
    norm: Callable[[int, TimeParts, NormKind, float], nn.Module]
    extra: Callable[[float, float, int, int], float]
    description: str


def film_params(dim: float) -> float:
    """Parameters of one :class:`FiLM`."""
    return 2 * FILM_FREQS * FILM_HIDDEN + FILM_HIDDEN + (FILM_HIDDEN + 1) * 2 * dim


TIME_MODES: Registry[TimeMode] = Registry("time mode")
for _m in (
    TimeMode(
        "none",
        lambda i, o, bias, p: TimeLinear(i, o, bias),
        lambda d, p, kind, eps: TimeNorm(d, kind, eps),
        lambda group, d, norms, k: 0.0,
        "autonomous: one set of weights for the whole span",
    ),
    TimeMode(
        "film",
        lambda i, o, bias, p: TimeLinear(i, o, bias),
        lambda d, p, kind, eps: FiLMNorm(d, kind, eps),
        lambda group, d, norms, k: norms * film_params(d),
        "each norm's output scaled and shifted by an MLP of t (zero at start)",
    ),
    TimeMode(
        "basis",
        lambda i, o, bias, p: BasisLinear(i, o, bias, p.basis, p.t0, p.t1),
        lambda d, p, kind, eps: BasisNorm(d, p.basis, p.t0, p.t1, kind, eps),
        lambda group, d, norms, k: (k - 1) * group,
        "every weight W(t) = sum of K Legendre polynomials of t times W_k (model.time_basis)",
    ),
):
    TIME_MODES.register(_m.name, _m)

AUTONOMOUS = TimeParts()


def init_time_parts(module: nn.Module) -> None:
    """ViT initialisation of the basis parts (``module.apply`` calls it on each)."""
    if isinstance(module, (BasisLinear, BasisNorm)):
        module.reset_parameters()
