"""Controllers: real action (+ the state it acts from) -> the latent action the world model understands.

The paper (digest 2.4) fits a small network with L2 to the frozen IDM's latent, z_t = g(s_t, s_{t+1}),
so a latent-action world model can be driven, and planned through, with real actions.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from lawm.models.predictor import Predictor
from lawm.models.real_actions import TakesRealActions
from lawm.nn import KV, Block, CrossAttentionBlock, grid_positions, rope_angles


def action_mlp(action_dim: int, dim: int) -> nn.Sequential:
    """The 3-layer MLP that embeds a real action."""
    return nn.Sequential(nn.Linear(action_dim, dim), nn.GELU(), nn.Linear(dim, dim),
                         nn.GELU(), nn.Linear(dim, dim))


class Controller(TakesRealActions):
    """The paper's controller: z_t = c(a_t, s_t).

    The previous state's tokens go through two self-attention blocks (2-D RoPE over the grid); the
    action, embedded by a 3-layer MLP, is the query of a cross-attention block over those tokens;
    a linear layer maps the one output token to the latent size. Actions enter at unit scale
    (TakesRealActions). Only the single previous state is seen, as in the paper.
    """

    def __init__(self, token_dim: int, grid: Sequence[int], action_dim: int, latent_dim: int, dim: int,
                 heads: int, mlp_ratio: float, action_scale: Sequence[float]):
        super().__init__(action_scale)
        self.grid, self.heads = tuple(grid), heads
        self.inp = nn.Linear(token_dim, dim)
        self.blocks = nn.ModuleList(Block(dim, heads, mlp_ratio) for _ in range(2))
        self.action_embed = action_mlp(action_dim, dim)
        self.cross = CrossAttentionBlock(dim, heads, mlp_ratio)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, latent_dim)

    def memory(self, states: Tensor) -> Tensor:
        """states [B, N, D] -> the processed tokens [B, N, dim] the action reads."""
        return self.memory_of(self.inp(states))

    def memory_of(self, x: Tensor) -> Tensor:
        """`memory` from the projected states x = inp(states) [B, N, dim]."""
        angles = rope_angles(grid_positions(1, self.grid, x.device), x.shape[-1] // self.heads)  # [N, hd/2]
        for block in self.blocks:
            x = block(x, angles)
        return x

    def read(self, memory: Tensor, actions: Tensor) -> Tensor:
        """memory [B, N, dim] (from `memory`), actions [B, A] -> latents [B, L]."""
        q = self.action_embed(self.unit_actions(actions))[:, None]  # [B, 1, dim]
        return self.head(self.norm(self.cross(q, memory)[:, 0]))  # [B, L]

    def forward(self, states: Tensor, actions: Tensor) -> Tensor:
        """states [B, N, D], actions [B, A] -> latents [B, L]."""
        return self.read(self.memory(states), actions)


class ActionOnlyController(TakesRealActions):
    """The ablation the paper reports failing: z_t = MLP(a_t), blind to the state (digest 2.4)."""

    def __init__(self, action_dim: int, latent_dim: int, dim: int, action_scale: Sequence[float]):
        super().__init__(action_scale)
        self.net = nn.Sequential(action_mlp(action_dim, dim), nn.GELU(), nn.Linear(dim, latent_dim))

    def forward(self, states: Tensor, actions: Tensor) -> Tensor:
        """states [B, N, D] (ignored), actions [B, A] -> latents [B, L]."""
        return self.net(self.unit_actions(actions))


class ControlledWorldModel(nn.Module):
    """A latent-action predictor driven by real actions through a controller:
    s_{i+1} = p(s_{0:i}, c(a_i, s_i)), the controller seeing the (predicted) state it acts from."""

    def __init__(self, predictor: Predictor, controller: nn.Module):
        super().__init__()
        self.predictor, self.controller = predictor, controller

    def step(self, state: Tensor, action: Tensor, past: list[KV] | None = None) -> tuple[Tensor, list[KV]]:
        """state [B, N, D], real action [B, A] -> (next state [B, N, D], cache)."""
        return self.predictor.step(state, self.controller(state, action), past)

    def readers(self) -> list[nn.Linear]:
        """The layers that read a state (folded planning, lawm.planning.cem), in `step_hidden`'s
        order: the predictor's input projection, then the controller's (if it sees the state)."""
        return [self.predictor.inp, *([self.controller.inp] if isinstance(self.controller, Controller) else [])]

    def context(self, x: list[Tensor]) -> list[Tensor]:
        """What a step computes from the state before it sees the action, from the readers' outputs
        x [B, N, dim] each: the predictor's projection and the controller's memory. Planning computes
        it once per episode for the first step, where every sample starts from the same state."""
        if not isinstance(self.controller, Controller):  # blind to the state: the ActionOnlyController
            return x
        return [x[0], self.controller.memory_of(x[1])]  # 2 x [B, N, dim]

    def step_hidden(self, context: list[Tensor], action: Tensor, past: list[KV] | None = None
                    ) -> tuple[Tensor, list[KV]]:
        """`step` from the state's `context` -> (h [B, N, dim], cache): s' = s + predictor.change(h)."""
        if not isinstance(self.controller, Controller):
            return self.predictor.step_hidden(context[0], self.controller(None, action), past)
        z = self.controller.read(context[1], action)  # [B, L]
        return self.predictor.step_hidden(context[0], z, past)
