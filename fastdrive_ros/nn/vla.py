"""The VLA bundle: vision encoder + ReconPruner + planner + tokenizer, saved and loaded as one.

A bundle folder holds config.json (a VLAConfig), model.safetensors (vision and planner weights),
tokenizer.json and, when there is one, pruner/ (ReconPruner's own files). `VLA.from_pretrained`
also reads a real Qwen2.5-VL / Impromptu-VLA Hugging Face checkpoint folder (config.json +
safetensors shards + tokenizer.json), never the hub. Safetensors only: no pickle anywhere.
"""

from __future__ import annotations

import copy
import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from fastdrive_ros.core_types import CAMERA_NAMES, DEFAULT_MAX_NEW_TOKENS, EgoState, PlanResult
from fastdrive_ros.nn.decision_reader import DecisionReader
from fastdrive_ros.nn.frame_memory import FrameSlot
from fastdrive_ros.nn.integrity import verify_file, write_manifest
from fastdrive_ros.nn.llm_stage import mrope_section_of, text_config_of
from fastdrive_ros.nn.planner import WAYPOINT_PRIORS, HeadChoice, VLAPlanner, tick, tock
from fastdrive_ros.nn.prompt import PROMPT_STYLES, PromptStyle
from fastdrive_ros.nn.selection import Selection, VisualTokens, keep_count
from fastdrive_ros.nn.tokenizer import (
    PlannerTokenizer,
    check_tokenizer_info,
    tokenizer_info,
    train_compact_tokenizer,
)

FORMAT = "fastdrive_ros.vla"
FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
PRUNER_DIR = "pruner"
DECISION_READER_FILE = "decision_reader.safetensors"
HeadKind = Literal["regression", "text"]
TokenizerKind = ("compact-bpe", "checkpoint")


@dataclass
class VLAConfig:
    """Everything needed to rebuild a VLA (weights aside).

    Attributes:
        qwen: Qwen2_5_VLConfig.to_dict() (vision tower and LLM shapes, special-token ids).
        image_size: (H, W) every camera is resized to; multiples of 28 px.
        camera_names: the cameras, in CAMERA_NAMES order (Impromptu: front only, or all six).
        prompt_style: "compact" (embedded default) or "impromptu" (real checkpoints).
        head: "regression" (WaypointHead on the <plan> token) or "text" (generate + parse).
        pruner: ReconPrunerConfig.to_dict(), None for a bundle without a ReconPruner.
        default_prune_ratio: p used when none is given (fraction of visual tokens dropped).
        waypoint_scale: metres per unit of the regression head's output.
        tokenizer: {"kind": "compact-bpe" | "checkpoint", ...} plus tokenizer_info() when saved.
        resize: how cameras are resized to image_size (nn/resize.py): "bilinear" (the compact
            default), "bicubic" (Qwen's processor) or "impromptu" (Impromptu-VLA's pipeline).
        ego_encoder: ego status as numbers (EgoEncoder into the <plan> token) instead of digits.
        waypoint_prior: "kinematic": the regression head adds its output to the ego status'
            kinematic prior; "ego_mlp": to the ego-only reference MLPs' plan (their weights
            inside the planner's); "kinematic_decision": to the kinematic prior driven by
            the scene reader's decision (nn/decision_prior.py, gains in `decision_gains`);
            "none" (older bundles): absolute waypoints.
        scene_reader: a SceneReader (nn/scene_reader.py) reads the kept CAM_FRONT tokens into
            the <plan> token; False in older bundles.
        decision_reader: the scene reader's decision comes from a DecisionReader
            (nn/decision_reader.py, its own file in the bundle) with frame memory.
        decision_gains: {ego-input setting: gain} of the "kinematic_decision" prior.
        decision_form: how that prior takes the decision: "added" to the measured acceleration
            (bundles before the option) or "toward" it (nn/decision_prior.py).
    """

    qwen: dict[str, Any]
    image_size: tuple[int, int]
    camera_names: tuple[str, ...]
    prompt_style: PromptStyle
    head: HeadKind
    pruner: dict[str, Any] | None = None
    default_prune_ratio: float = 0.5
    waypoint_scale: float = 10.0
    tokenizer: dict[str, Any] = field(default_factory=lambda: {"kind": "compact-bpe"})
    resize: str = "bilinear"
    ego_encoder: bool = False
    waypoint_prior: str = "none"
    scene_reader: bool = False
    decision_reader: bool = False
    decision_gains: dict[str, float] | None = None
    decision_form: str = "added"

    def __post_init__(self) -> None:
        self.image_size = (int(self.image_size[0]), int(self.image_size[1]))
        self.camera_names = tuple(self.camera_names)
        self.validate()

    def qwen_config(self):
        """The transformers Qwen2_5_VLConfig."""
        from transformers import Qwen2_5_VLConfig

        try:
            config = Qwen2_5_VLConfig.from_dict(copy.deepcopy(self.qwen))  # it edits dicts
            if not hasattr(config, "vision_config"):  # transformers 4.x accepts a bad one
                raise TypeError(f"vision_config is {self.qwen.get('vision_config')!r}")
        except Exception as exc:  # transformers raises its own validation error types
            raise ValueError(f"the qwen config is not a valid Qwen2_5_VLConfig: {exc}") from exc
        return config

    @property
    def tokens_per_camera(self) -> int:
        vision = self.qwen_config().vision_config
        unit = vision.patch_size * vision.spatial_merge_size
        return (self.image_size[0] // unit) * (self.image_size[1] // unit)

    def validate(self) -> None:
        """Raise ValueError naming the first inconsistent field."""
        qwen = self.qwen_config()
        text, vision = text_config_of(qwen), qwen.vision_config
        unit = vision.patch_size * vision.spatial_merge_size
        height, width = self.image_size
        if height < unit or width < unit or height % unit or width % unit:
            raise ValueError(
                f"image_size {self.image_size} must be positive multiples of {unit} px "
                f"(patch {vision.patch_size} x merge {vision.spatial_merge_size})"
            )
        unknown = [c for c in self.camera_names if c not in CAMERA_NAMES]
        if (
            not self.camera_names
            or unknown
            or len(set(self.camera_names)) != len(self.camera_names)
        ):
            raise ValueError(
                f"camera_names must be distinct names from {CAMERA_NAMES}, got {self.camera_names}"
            )
        if list(self.camera_names) != [c for c in CAMERA_NAMES if c in self.camera_names]:
            raise ValueError(f"camera_names must follow CAMERA_NAMES order {CAMERA_NAMES}")
        if self.prompt_style not in PROMPT_STYLES:
            raise ValueError(
                f"prompt_style must be one of {PROMPT_STYLES}, got {self.prompt_style}"
            )
        if self.prompt_style == "impromptu" and self.camera_names not in (
            CAMERA_NAMES[:1],
            CAMERA_NAMES,
        ):
            raise ValueError("Impromptu's prompt takes CAM_FRONT alone or all six cameras")
        if self.head not in ("regression", "text"):
            raise ValueError(f"head must be 'regression' or 'text', got {self.head!r}")
        if self.head == "regression" and self.prompt_style != "compact":
            raise ValueError("the regression head reads the compact prompt's <plan> token")
        if vision.out_hidden_size != text.hidden_size:
            raise ValueError(
                f"vision out_hidden_size {vision.out_hidden_size} != LLM hidden_size "
                f"{text.hidden_size}: the merger must output the LLM's width"
            )
        head_dim = text.hidden_size // text.num_attention_heads
        section = mrope_section_of(text)
        if len(section) != 3 or sum(section) != head_dim // 2:
            raise ValueError(
                f"mrope_section {section} must be 3 parts summing to head_dim/2 = {head_dim // 2}"
            )
        if self.pruner is not None and self.pruner.get("hidden_size") != text.hidden_size:
            raise ValueError(
                f"pruner hidden_size {self.pruner.get('hidden_size')} != token width "
                f"{text.hidden_size}"
            )
        if not 0.0 <= self.default_prune_ratio < 1.0:
            raise ValueError(
                f"default_prune_ratio must be in [0, 1), got {self.default_prune_ratio}"
            )
        if self.ego_encoder and self.prompt_style != "compact":
            raise ValueError("ego_encoder needs the compact prompt (its <plan> token)")
        if self.waypoint_prior not in WAYPOINT_PRIORS:
            raise ValueError(
                f"waypoint_prior must be one of {WAYPOINT_PRIORS}, got {self.waypoint_prior!r}"
            )
        if self.waypoint_prior != "none" and self.head != "regression":
            raise ValueError("waypoint_prior needs the regression head")
        if self.scene_reader and (
            self.prompt_style != "compact" or self.camera_names[0] != "CAM_FRONT"
        ):
            raise ValueError("scene_reader needs the compact prompt and CAM_FRONT as first camera")
        if self.decision_reader and not self.scene_reader:
            raise ValueError("decision_reader feeds the scene reader: it needs scene_reader")
        if (self.waypoint_prior == "kinematic_decision") != (self.decision_gains is not None):
            raise ValueError("decision_gains go with waypoint_prior 'kinematic_decision' only")
        if self.waypoint_prior == "kinematic_decision":
            if not self.scene_reader:
                raise ValueError("the decision prior reads the scene reader's decision")
            from fastdrive_ros.nn.decision_prior import check_form, check_gains

            self.decision_gains = check_gains(self.decision_gains or {})
            check_form(self.decision_form)
        elif self.decision_form != "added":
            raise ValueError("decision_form goes with waypoint_prior 'kinematic_decision' only")
        if not self.waypoint_scale > 0:
            raise ValueError(f"waypoint_scale must be > 0, got {self.waypoint_scale}")
        from fastdrive_ros.nn.resize import check_mode

        check_mode(self.resize)
        if self.tokenizer.get("kind") not in TokenizerKind:
            raise ValueError(
                f"tokenizer kind must be one of {TokenizerKind}, got {self.tokenizer}"
            )

    def to_json(self) -> str:
        data = asdict(self)
        data["image_size"] = list(self.image_size)
        data["camera_names"] = list(self.camera_names)
        return json.dumps({"format": FORMAT, "version": FORMAT_VERSION, **data}, indent=1)

    @classmethod
    def from_json(cls, text: str) -> VLAConfig:
        data = json.loads(text)
        if data.pop("format", None) != FORMAT:
            raise ValueError(f"not a {FORMAT} config")
        version = data.pop("version", None)
        if version != FORMAT_VERSION:
            raise ValueError(
                f"{FORMAT} version {version} is not supported (need {FORMAT_VERSION})"
            )
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown VLAConfig fields {unknown}")
        return cls(**data)


class VLA(nn.Module):
    """Vision encoder, optional ReconPruner, planner and tokenizer of one model.

    Build one with `VLA.build(config)` (random weights) or `VLA.from_pretrained(folder)`.
    """

    def __init__(
        self,
        *,
        config: VLAConfig,
        tokenizer: PlannerTokenizer,
        vision: nn.Module | None = None,
        planner: VLAPlanner | None = None,
        pruner: nn.Module | None = None,
    ) -> None:
        super().__init__()
        from fastdrive_ros.nn.vision import VisionEncoder

        qwen = config.qwen_config()
        self.config = config
        self.tokenizer = tokenizer
        self.vision = vision if vision is not None else VisionEncoder(config=qwen.vision_config)
        self.planner = (
            planner
            if planner is not None
            else VLAPlanner(
                qwen_config=qwen,
                tokenizer=tokenizer,
                prompt_style=config.prompt_style,
                regression_head=config.head == "regression",
                waypoint_scale=config.waypoint_scale,
                ego_encoder=config.ego_encoder,
                waypoint_prior=config.waypoint_prior,  # type: ignore[arg-type]
                scene_reader=config.scene_reader,
                decision_gains=config.decision_gains,
                decision_form=config.decision_form,
            )
        )
        if pruner is None and config.pruner is not None:
            from fastdrive_ros.nn.recon_pruner import ReconPruner, ReconPrunerConfig

            pruner = ReconPruner(config=ReconPrunerConfig.from_dict(config.pruner))
        self.pruner = pruner

    def add_scene_reader(self) -> None:
        """Give the planner a fresh SceneReader (silent until trained: its projection is zero)."""
        if self.config.scene_reader:
            return
        from fastdrive_ros.nn.scene_reader import SceneReader

        self.config = replace(self.config, scene_reader=True)  # validates
        device = self.planner.model.embed_tokens.weight.device
        self.planner.scene_reader = SceneReader(width=self.planner.hidden_size).to(device)

    def add_decision_reader(self, reader: DecisionReader) -> None:
        """Read the scene reader's decision with `reader` (saved beside the weights)."""
        self.planner.attach_decision_reader(reader)  # checks width and that a scene reader exists
        self.config = replace(self.config, decision_reader=True)

    def use_decision_prior(self, gains: dict[str, float], form: str = "added") -> None:
        """Predict the residual over the kinematic prior driven by the read decision from now on.

        gains: {ego-input setting: gain} (train/decision_prior.fit_decision_gains); form: how
        the prior takes the decision (nn/decision_prior.py). The head keeps its weights: it was
        a residual over the kinematic prior, which this extends.
        """
        if self.config.waypoint_prior not in ("kinematic", "kinematic_decision"):
            raise ValueError(
                f"the decision prior extends the kinematic prior; this bundle's is "
                f"{self.config.waypoint_prior!r}"
            )
        self.config = replace(  # validates (needs the scene reader)
            self.config,
            waypoint_prior="kinematic_decision",
            decision_gains=dict(gains),
            decision_form=form,
        )
        self.planner.use_decision_prior(self.config.decision_gains or {}, form)

    def use_ego_mlp_prior(self, bundle: str | Path) -> None:
        """Predict the residual over `bundle`'s ego MLPs (nn/ego_mlp.EgoPrior) from now on.

        The head's output layer is zeroed, so the planner starts AS the ego-only reference and
        training can only add what the cameras and the reader tell beyond the ego status.
        """
        from fastdrive_ros.nn.ego_mlp import EgoPrior

        head = self.planner.waypoint_head
        if head is None or self.config.waypoint_prior == "none":
            raise ValueError("the ego-MLP prior replaces a residual head's prior: this has none")
        prior = EgoPrior.from_bundle(bundle)
        self.config = replace(self.config, waypoint_prior="ego_mlp")  # validates
        self.planner.waypoint_prior = "ego_mlp"
        self.planner.ego_prior = prior.to(head.mlp[-1].weight.device)
        torch.nn.init.zeros_(head.mlp[-1].weight)
        torch.nn.init.zeros_(head.mlp[-1].bias)

    @classmethod
    def build(
        cls, config: VLAConfig, *, tokenizer: PlannerTokenizer | None = None, seed: int = 0
    ) -> VLA:
        """A randomly initialised VLA (seeded); trains the compact tokenizer when none is given."""
        if tokenizer is None:
            if config.tokenizer.get("kind") != "compact-bpe":
                raise ValueError("a checkpoint-tokenizer config needs tokenizer=")
            vocab = int(
                config.tokenizer.get("vocab_size", text_config_of(config.qwen_config()).vocab_size)
            )
            tokenizer = train_compact_tokenizer(vocab_size=vocab)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return cls(config=config, tokenizer=tokenizer).eval()

    @property
    def device(self) -> torch.device:
        return self.planner.model.embed_tokens.weight.device

    # -- files ------------------------------------------------------------------------------

    def save_pretrained(self, folder: str | Path) -> Path:
        """Write config.json, model.safetensors, tokenizer.json (and pruner/) into `folder`."""
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.tokenizer.save(folder)
        config = VLAConfig(
            **{
                **asdict(self.config),
                # the pruner actually attached (training may have swapped it)
                "pruner": None if self.pruner is None else self.pruner.config.to_dict(),
                "tokenizer": {
                    "kind": self.config.tokenizer.get("kind", "compact-bpe"),
                    **tokenizer_info(self.tokenizer),
                },
            }
        )
        state = _bundle_state(self)
        save_file(state, str(folder / WEIGHTS_FILE), metadata={"format": FORMAT})
        write_manifest(folder, [WEIGHTS_FILE])  # checked at load: see nn/integrity.py
        if self.pruner is not None:
            self.pruner.save(folder / PRUNER_DIR)
        if self.planner.decision_reader is not None:
            self.planner.decision_reader.save(folder / DECISION_READER_FILE)
        (folder / CONFIG_FILE).write_text(config.to_json(), encoding="utf-8")
        return folder

    @classmethod
    def from_pretrained(
        cls,
        folder: str | Path,
        *,
        device: str | torch.device = "cpu",
        dtype: torch.dtype | None = None,
        image_size: tuple[int, int] | None = None,
        camera_names: tuple[str, ...] | None = None,
        resolution: str | None = None,
    ) -> VLA:
        """Load our bundle, or a Qwen2.5-VL / Impromptu-VLA checkpoint folder.

        For a checkpoint, `resolution` names its input size and resampling (nn/resize.py):
        None / "checkpoint" = Impromptu-VLA's own (672x392, its fine-tuning pipeline), "paper"
        = FastDriveVLA's 1596x1596 (3249 tokens); image_size overrides the size alone, and
        camera_names the default CAM_FRONT. dtype defaults to float32 (bfloat16 for
        checkpoints on CUDA).
        Missing or broken files raise FileNotFoundError / ValueError naming the file.
        """
        folder = Path(folder)
        config_path = folder / CONFIG_FILE
        if not config_path.is_file():
            raise FileNotFoundError(
                f"{config_path} is missing: pass a folder made by `fastdrive build-default` or a "
                "local Qwen2.5-VL / Impromptu-VLA checkpoint (config.json + *.safetensors)"
            )
        try:
            raw = json.loads(config_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"{config_path} is not readable JSON: {exc}") from exc
        device = torch.device(device)
        if raw.get("format") == FORMAT:
            if resolution is not None:
                raise ValueError(
                    f"resolution={resolution!r} is for real checkpoints; {folder} is a bundle "
                    "with its own image_size"
                )
            vla = _load_bundle(cls, folder, raw)
            dtype = dtype or torch.float32
        elif raw.get("model_type") == "qwen2_5_vl":
            from fastdrive_ros.nn.vla_checkpoint import load_checkpoint

            if dtype is None:
                dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
            vla = load_checkpoint(
                cls,
                folder,
                raw,
                dtype=dtype,
                image_size=image_size,
                camera_names=camera_names,
                resolution=resolution,
            )
        else:
            raise ValueError(
                f"{config_path} is neither a {FORMAT} bundle nor a Qwen2.5-VL checkpoint "
                f"(model_type {raw.get('model_type')!r})"
            )
        return vla.to(device=device, dtype=dtype).eval()

    # -- inference --------------------------------------------------------------------------

    def make_selector(self, name: str, **kwargs: Any) -> Any:
        """The selector `name` ("reconpruner" is this bundle's own ReconPruner)."""
        from fastdrive_ros.nn.registry import make_selector

        if name == "reconpruner":
            if self.pruner is None:
                raise ValueError(
                    "this model has no ReconPruner: train one (`fastdrive train-pruner`) or pick "
                    "another selector"
                )
            return make_selector("reconpruner", pruner=self.pruner, expected_width=None)
        return make_selector(name, **kwargs)

    @torch.no_grad()
    def plan_frame(
        self,
        pixels: torch.Tensor,
        ego: EgoState,
        *,
        selector_name: str = "reconpruner",
        prune_ratio: float | None = None,
        head: HeadChoice = "auto",
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
        selector: Any = None,
        memory: FrameSlot | None = None,
    ) -> tuple[PlanResult, Selection, dict[str, float]]:
        """The reference path: [C, 3, H, W] normalised pixels -> plan, kept tokens, timings (ms).

        Encoder-stage selectors pick K = keep_count(N, p) tokens before the planner; LLM-stage
        ones (FastV, SparseVLM) get all N and the same K inside the prefill. memory: the
        frame's FrameMemory slot (a planner with a decision reader compares with 0.5 s before).
        """
        ratio = self.config.default_prune_ratio if prune_ratio is None else prune_ratio
        if selector is None:
            selector = self.make_selector(selector_name)
        stage = getattr(selector, "stage", "encoder")
        attention = selector_name == "vispruner" or getattr(selector, "name", "") == "vispruner"
        device = self.device
        pixels = pixels.to(device=device, dtype=self.planner.model.embed_tokens.weight.dtype)
        start = tick(device)
        visual: VisualTokens = self.vision(pixels, return_attention=attention)
        timings = {"encode": tock(device, start)}
        n_tokens = visual.tokens.shape[0]
        keep = keep_count(n_tokens, ratio)
        if stage == "llm":
            out = self.planner.plan_detailed(
                kept_tokens=visual.tokens,
                kept_index=torch.arange(n_tokens),
                grid_thw=visual.grid_thw,
                ego=ego,
                selector=selector,
                keep=keep,
                max_new_tokens=max_new_tokens,
                head=head,
                memory=memory,
            )
            selection, timings["prune"] = out.selection, 0.0
        else:
            start = tick(device)
            selection = selector.select(visual, keep)
            timings["prune"] = tock(device, start)
            index = selection.kept_index.to(visual.tokens.device)
            out = self.planner.plan_detailed(
                kept_tokens=visual.tokens[index],
                kept_index=selection.kept_index,
                grid_thw=visual.grid_thw,
                ego=ego,
                max_new_tokens=max_new_tokens,
                head=head,
                memory=memory,
            )
        timings.update(out.result.timings_ms)
        return out.result, selection, timings


def _bundle_state(vla: VLA) -> dict[str, torch.Tensor]:
    """Vision + planner weights; a tied lm_head is stored once (as the embedding)."""
    state = {f"vision.{k}": v for k, v in vla.vision.state_dict().items()}
    for key, value in vla.planner.state_dict().items():
        if key == "lm_head.weight" and vla.planner.tied_embeddings:
            continue
        if key.startswith("decision_reader."):  # its own file (DECISION_READER_FILE)
            continue
        state[f"planner.{key}"] = value
    return {k: v.detach().contiguous().cpu() for k, v in state.items()}


def _load_bundle(cls, folder: Path, raw: dict[str, Any]) -> VLA:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        config = VLAConfig.from_json(json.dumps(raw))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{folder / CONFIG_FILE}: {exc}") from exc
    tokenizer = PlannerTokenizer.load(folder)
    check_tokenizer_info(tokenizer, config.tokenizer)
    pruner = None
    if config.pruner is not None:
        from fastdrive_ros.nn.recon_pruner import ReconPruner

        width = text_config_of(config.qwen_config()).hidden_size
        if not (folder / PRUNER_DIR).is_dir():
            raise FileNotFoundError(
                f"{folder / PRUNER_DIR} is missing but config.json names a ReconPruner: copy it "
                "back or rebuild the bundle"
            )
        pruner = ReconPruner.load(folder / PRUNER_DIR, expected_width=width)
    vla = cls(config=config, tokenizer=tokenizer, pruner=pruner)
    path = folder / WEIGHTS_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing: rebuild the bundle (`fastdrive build-default`)"
        )
    verify_file(
        path,
        remedy="restore it (`git checkout` for the shipped models/default) or rebuild the bundle "
        "(`fastdrive build-default`)",
    )
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise ValueError(f"{path} is corrupt or truncated ({exc}): rebuild the bundle") from exc
    expected = set(_bundle_state(vla))
    missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing or unexpected:
        raise ValueError(
            f"{path} does not match {CONFIG_FILE}: {len(missing)} missing (e.g. {missing[:3]}), "
            f"{len(unexpected)} unexpected (e.g. {unexpected[:3]})"
        )
    try:
        vla.vision.load_state_dict(_strip(state, "vision."))
        vla.planner.load_state_dict(_strip(state, "planner."), strict=False)
    except RuntimeError as exc:  # shape mismatches
        raise ValueError(f"{path} does not fit {CONFIG_FILE}: {exc}") from exc
    if config.decision_reader:
        vla.planner.attach_decision_reader(DecisionReader.load(folder / DECISION_READER_FILE))
    return vla


def _strip(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
