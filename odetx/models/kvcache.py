"""A key/value cache for generation: each attention evaluation keeps its keys and values.

With a causal field, the state of every earlier token at every solver stage is
independent of the tokens after it. So the n-th attention evaluation of one forward
pass (a given group, step, sub-step and stage) sees, for the earlier tokens, exactly
the keys and values it saw in the previous pass: feeding only the new token and
appending its keys and values to those of the n-th evaluation computes the same
logits. That holds for every arch and every fixed-step solver; adaptive solvers
choose their steps from the error of the whole sequence, so their evaluations do
not line up across passes and they cannot use the cache.

With rotary positions (``model.pos: rope``) or none, the cache can also *roll*
(:meth:`KVCache.drop_oldest`): keys are stored already rotated at their absolute
positions and attention depends on relative positions only, so once the window is
full the oldest key and value can leave and the new token is fed alone, its position
continuing. That is the usual sliding-window cache; for a model of more than one
attention evaluation it differs from recomputing the window, since the states a
deeper evaluation cached were computed while older tokens were still in view.
Learned positions are absolute: once the window slides, they must be recomputed.

The cache patches the forward of each :class:`~odetx.models.fields.SelfAttend` of an
eager model while it is open; the model itself (and what it exports) is unchanged.
With grouped-query attention it holds the ``kv_heads`` keys and values, not their
repetition over the query heads.
"""

from __future__ import annotations

import types

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from odetx.models.fields import SelfAttend


class KVCache:
    """``with KVCache(model) as cache: …`` — call :meth:`begin` before each forward pass.

    ``length`` is the number of tokens fed so far, the absolute position of the next
    one; the cache holds the keys and values of all of them but those
    :meth:`drop_oldest` let go.
    """

    def __init__(self, model: nn.Module) -> None:
        self.cores = [m for m in model.modules() if isinstance(m, SelfAttend)]
        self.slots: dict[int, list[tuple[Tensor, Tensor]]] = {}
        self.calls: dict[int, int] = {}
        self.length = 0

    def __enter__(self) -> KVCache:
        for core in self.cores:
            core.forward = types.MethodType(self._attend_cached, core)
        self.clear()
        return self

    def __exit__(self, *exc: object) -> None:
        for core in self.cores:
            del core.forward  # the class's own forward again

    def clear(self) -> None:
        self.slots = {id(c): [] for c in self.cores}
        self.length = 0
        self.begin()

    def drop_oldest(self, n: int = 1) -> None:
        """Roll: forget the keys and values of the ``n`` oldest held tokens; positions go on.

        Only right for positions that are not absolute (rotary or none): see the module's
        docstring for how this differs from recomputing the window.
        """
        for key, slots in self.slots.items():
            self.slots[key] = [(k[:, :, n:], v[:, :, n:]) for k, v in slots]

    def begin(self) -> None:
        """Start a forward pass: evaluations are matched to slots by their order."""
        self.calls = {id(c): 0 for c in self.cores}

    def commit(self, new_tokens: int) -> None:
        """End a forward pass over ``new_tokens`` tokens; every evaluation must have
        found its slot (a pass that evaluated attention differently cannot be cached)."""
        for core in self.cores:
            if self.calls[id(core)] != len(self.slots[id(core)]):
                raise RuntimeError("attention was evaluated in another pattern than before")
        self.length += new_tokens

    def _attend_cached(self, core: SelfAttend, qkv: Tensor, mask: Tensor | None = None) -> Tensor:
        N = qkv.shape[1]
        q, k, v = core.split(qkv)  # q (B, heads, N, head_dim); k, v (B, kv_heads, N, head_dim)
        # The new tokens sit at absolute positions length, length + 1, …
        q, k = core.rope(q, self.length), core.rope(k, self.length)
        key = id(core)
        j = self.calls[key]
        self.calls[key] = j + 1
        slots = self.slots[key]
        if j < len(slots):
            k = torch.cat([slots[j][0], k], dim=2)  # (B, kv_heads, L, head_dim)
            v = torch.cat([slots[j][1], v], dim=2)
            slots[j] = (k, v)
        else:
            slots.append((k, v))
        L = k.shape[2]
        k, v = core.expand(k), core.expand(v)  # (B, heads, L, head_dim)
        if L == N:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=core.causal)
        else:  # query i is the held key L - N + i and sees the keys up to it
            allowed = (
                torch.arange(L, device=q.device)[None, :]
                <= torch.arange(L - N, L, device=q.device)[:, None]
            )  # (N, L)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)
        return y.transpose(1, 2).flatten(2)  # (B, N, heads * head_dim)
