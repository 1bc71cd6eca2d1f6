"""`fastdrive train-pruner` (AFBR) and `fastdrive train-planner` (compact planner).

Both run on one process or under `torchrun --nproc_per_node N` (data parallel; NCCL on GPUs), show
progress, validate periodically, checkpoint (resumable: run the same command again) and fix a seed.
Heavy imports stay inside the commands so `fastdrive --help` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

Opt = typer.Option


def _fail(message: str) -> typer.Exit:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(code=2)


def parse_size(text: str | None) -> tuple[int, int] | None:
    """'504x280' (W x H, as every --image-size) -> (280, 504), the model's (H, W)."""
    from fastdrive_ros.cli import parse_image_size

    if text is None:
        return None
    width, height = parse_image_size(text)
    return height, width


def _dist_context(device: str):
    """DistContext.from_env, with a bad or unavailable --device as `error:` and exit 2."""
    from fastdrive_ros.train.distributed import DistContext

    if device not in ("auto", "cpu") and not device.startswith("cuda"):
        raise typer.BadParameter(f"use auto, cpu or cuda, got {device!r}", param_hint="--device")
    try:
        return DistContext.from_env(device=device)
    except RuntimeError as exc:  # --device cuda without a CUDA GPU, a failed process group
        raise _fail(f"{exc}; use --device cpu (or auto) on this machine") from exc


def parse_cameras(text: str | None) -> tuple[str, ...] | None:
    from fastdrive_ros.core_types import CAMERA_NAMES

    if text is None:
        return None
    names = tuple(c.strip() for c in text.split(",") if c.strip())
    bad = [c for c in names if c not in CAMERA_NAMES]
    if not names or bad:
        raise typer.BadParameter(f"--cameras takes names from {', '.join(CAMERA_NAMES)}")
    return tuple(c for c in CAMERA_NAMES if c in names)


def scene_labels(*dataroots: Path | None):
    """The world's scene labels of every given dataroot ({} for real nuScenes)."""
    from fastdrive_ros.data.world_labels import read_scene_labels

    labels = {}
    for root in dataroots:
        if root is not None:
            labels.update(read_scene_labels(root))
    return labels


def train_planner_command(
    model: Annotated[
        Path, Opt(help="VLA bundle to start from (its vision tower is frozen and cached).")
    ],
    dataroot: Annotated[Path, Opt(help="Training dataroot (nuScenes layout, e.g. synthetic).")],
    version: Annotated[str, Opt(help="Table version of --dataroot: v1.0-synth, v1.0-mini...")],
    out: Annotated[Path, Opt(help="Output folder: model/ (the trained bundle), run/, summary.")],
    split: Annotated[str, Opt(help="Training scenes: train, val or all.")] = "train",
    val_dataroot: Annotated[
        Path | None, Opt(help="Validation dataroot (default: --dataroot).")
    ] = None,
    val_version: Annotated[str | None, Opt(help="Table version of --val-dataroot.")] = None,
    val_split: Annotated[str, Opt(help="Validation scenes: val, train or all.")] = "val",
    work_dir: Annotated[
        Path | None, Opt(help="Records and token caches (default OUT/work; share it to reuse).")
    ] = None,
    epochs: Annotated[int, Opt(help="Epochs of the all-token phase.")] = 4,
    batch_size: Annotated[int, Opt(help="Samples per step and process.")] = 8,
    lr: Annotated[float, Opt(help="Peak learning rate (AdamW, warm-up then cosine).")] = 3e-4,
    warmup_steps: Annotated[int, Opt(help="Linear warm-up steps.")] = 20,
    weight_decay: Annotated[float, Opt(help="AdamW weight decay.")] = 0.01,
    text_epochs: Annotated[
        int, Opt(help="Epochs of the prompt-only warm-up phase before it (0 = none).")
    ] = 0,
    text_batch_size: Annotated[int, Opt(help="Batch size of the prompt-only phase.")] = 32,
    text_lr: Annotated[float, Opt(help="Peak learning rate of the prompt-only phase.")] = 1e-3,
    text_warmup_steps: Annotated[int, Opt(help="Warm-up steps of the prompt-only phase.")] = 30,
    keep_min: Annotated[
        float,
        Opt(help="Token-drop augmentation: keep a random share in [keep_min, 1] (1 = off)."),
    ] = 1.0,
    subset_keep_min: Annotated[
        float | None,
        Opt(
            help="Partial token sets (issue 8): keep a share in [this, 1] chosen by random, "
            "per-camera, foreground-, background- or norm-ranked selection (off when unset)."
        ),
    ] = None,
    subset_full_share: Annotated[
        float, Opt(help="With --subset-keep-min: share of samples that keep every token.")
    ] = 0.25,
    ego_dropout: Annotated[
        float,
        Opt(help="Share of training samples restricted to the minimal ego inputs (0 = off)."),
    ] = 0.0,
    event_weight: Annotated[
        int,
        Opt(help="Repeat keyframes the ego status cannot explain this many times (1 = off)."),
    ] = 1,
    val_settings: Annotated[
        str, Opt(help="Ego-input settings to validate in, comma-separated: full,minimal.")
    ] = "full",
    max_items: Annotated[
        int | None,
        Opt(help="All-token phase: at most this many samples per epoch (seeded subset)."),
    ] = None,
    max_samples: Annotated[
        int | None,
        Opt(help="All-token phase: at most this many training keyframes (spread over scenes)."),
    ] = None,
    text_max_samples: Annotated[
        int | None, Opt(help="Prompt-only phase: at most this many keyframes (default: all).")
    ] = None,
    max_val_samples: Annotated[int | None, Opt(help="At most this many val keyframes.")] = 64,
    val_every: Annotated[int, Opt(help="Validate every N steps (0: at epoch ends only).")] = 0,
    scene_reader: Annotated[
        bool,
        Opt(help="Give the planner a SceneReader over the kept front tokens if it has none."),
    ] = False,
    ego_mlp_prior: Annotated[
        bool,
        Opt(
            help="Predict the residual over the model's ego MLPs (<model>/ego_mlp, `fastdrive "
            "train-ego-mlp`) instead of its kinematic prior: the head restarts at zero, so the "
            "planner starts as the ego-only reference."
        ),
    ] = False,
    decision_prior: Annotated[
        bool,
        Opt(
            help="Predict the residual over the kinematic prior driven by the decision the "
            "planner's decision reader reads (nn/decision_prior.py): one gain per ego-input "
            "setting is fitted on the training keyframes first. Needs a bundle with a decision "
            "reader (`python -m fastdrive_ros.train.pruned_reading --bundle-out`), best one "
            "fitted on another world."
        ),
    ] = False,
    decision_form: Annotated[
        str,
        Opt(
            help="How --decision-prior's prior takes the decision: 'added' to the measured "
            "acceleration, or 'toward' (the acceleration moves a share gain of the way from the "
            "measured one to the decision; the forms agree with the minimal ego inputs)."
        ),
    ] = "added",
    prior_folds: Annotated[
        int,
        Opt(
            help="With the ego-MLP prior: train over the plans of this many ego MLPs, each "
            "fitted without the scenes it plans (cross-fitting; 0 = over the bundle's own, whose "
            "plans on these keyframes are fits)."
        ),
    ] = 5,
    fact_weight: Annotated[
        float,
        Opt(help="Weight of the reader's fact terms (world labels) in the all-token phase."),
    ] = 1.0,
    reader_epochs: Annotated[
        int, Opt(help="Epochs of a reader-only phase before the all-token phase (0 = none).")
    ] = 0,
    reader_lr: Annotated[float, Opt(help="Peak learning rate of the reader-only phase.")] = 1e-3,
    reader_dataroot: Annotated[
        list[Path] | None,
        Opt(
            help="More labelled worlds (same --version, all scenes) for the reader-only phase, "
            "repeatable: the reader learns what binds the ego from more scenes (a front-camera "
            "token cache each, no LLM step)."
        ),
    ] = None,
    loss_beta: Annotated[
        float,
        Opt(help="Smooth-L1 beta in metres: errors below it are squared (small: closer to L1)."),
    ] = 1.0,
    seed: Annotated[int, Opt(help="Seed of everything (data order, init, augmentation).")] = 0,
    device: Annotated[str, Opt(help="auto, cpu or cuda.")] = "auto",
    threads: Annotated[int | None, Opt(help="Torch CPU threads per process.")] = None,
    cache_workers: Annotated[
        int, Opt(help="CPU processes that build the token cache (no torchrun).")
    ] = 1,
    progress: Annotated[bool, Opt(help="Show progress bars.")] = True,
) -> None:
    """Train the compact VLA planner (LLM + regression head) on frozen, cached visual tokens.

    A planner with a SceneReader (or --scene-reader) also learns the world's labels of what binds
    the ego (synth/scenes/*.json; real nuScenes has none: the reader then learns from the
    trajectory alone).
    """
    import json

    import torch

    from fastdrive_ros.data.world_labels import read_worlds_labels
    from fastdrive_ros.nn.vla import VLA
    from fastdrive_ros.train.loop import TrainConfig
    from fastdrive_ros.train.planner import train_planner
    from fastdrive_ros.train.token_cache import TokenCache
    from fastdrive_ros.train.token_subsets import SubsetPolicy
    from fastdrive_ros.train.workspace import DataSpec, Workspace

    if not loss_beta > 0:
        raise typer.BadParameter(f"must be > 0, got {loss_beta}", param_hint="--loss-beta")
    if prior_folds == 1 or prior_folds < 0:
        raise typer.BadParameter(
            f"must be 0 (no cross-fitting) or >= 2, got {prior_folds}", param_hint="--prior-folds"
        )
    if not 0.0 < keep_min <= 1.0:  # a share of the tokens: 2 or -0.5 kept nothing sensible
        raise typer.BadParameter(f"must be in (0, 1], got {keep_min}", param_hint="--keep-min")
    if threads is not None:
        torch.set_num_threads(threads)
    dist = _dist_context(device)
    try:
        vla = VLA.from_pretrained(model)
        if vla.planner.waypoint_head is None:
            raise ValueError(f"{model} has a text head: train-planner trains the regression head")
        if scene_reader:
            vla.add_scene_reader()
        if ego_mlp_prior and vla.config.waypoint_prior != "ego_mlp":
            vla.use_ego_mlp_prior(model)
        if decision_prior:  # refused before any token is cached
            _check_decision_prior(vla, ego_mlp_prior, decision_form)
        elif decision_form != "added":
            raise ValueError(
                "--decision-form shapes --decision-prior's prior: add --decision-prior"
            )
        reader_roots = list(reader_dataroot or [])
        if reader_roots and reader_epochs <= 0:
            raise ValueError(
                "--reader-dataroot trains the reader-only phase: give --reader-epochs"
            )
        labels = (  # a world given twice (or as --dataroot too) is refused, not weighted double
            {**scene_labels(val_dataroot), **read_worlds_labels([dataroot, *reader_roots])}
            if vla.config.scene_reader
            else {}
        )
        reader_config = (
            TrainConfig(
                epochs=reader_epochs,
                batch_size=32,
                lr=reader_lr,
                warmup_steps=20,
                weight_decay=weight_decay,
                seed=seed,
            )
            if reader_epochs > 0
            else None
        )
        if reader_config is not None and not labels:
            raise ValueError(
                f"--reader-epochs needs the world's scene labels, and {dataroot} has none "
                "(synth/scenes/*.json): drop --reader-epochs for real data"
            )
        config = TrainConfig(
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            warmup_steps=warmup_steps,
            weight_decay=weight_decay,
            val_every=val_every,
            seed=seed,
        )
        text_config = (
            TrainConfig(
                epochs=text_epochs,
                batch_size=text_batch_size,
                lr=text_lr,
                warmup_steps=text_warmup_steps,
                weight_decay=weight_decay,
                seed=seed,
            )
            if text_epochs > 0
            else None
        )
        subsets = (
            SubsetPolicy(keep_min=subset_keep_min, full_share=subset_full_share)
            if subset_keep_min is not None
            else None
        )
        settings = tuple(v.strip() for v in val_settings.split(",") if v.strip())
    except (ValueError, FileNotFoundError) as exc:
        raise _fail(str(exc)) from exc
    vla.vision.to(dist.device)
    vla.planner.to(dist.device)
    space = Workspace(work_dir or out / "work")
    cameras = vla.config.camera_names
    train_data = DataSpec(Path(dataroot), version, split, max_samples=max_samples)
    val_data = DataSpec(
        Path(val_dataroot or dataroot), val_version or version, val_split, None, max_val_samples
    )
    train_records = space.records(train_data, cameras=cameras, progress=progress)
    text_data = DataSpec(Path(dataroot), version, split, max_samples=text_max_samples)
    text_records = space.records(text_data, cameras=cameras, progress=False)
    val_records = space.records(val_data, cameras=cameras, progress=progress)
    size = vla.config.image_size

    def cached(data: DataSpec, records: list) -> TokenCache:
        return space.token_cache(
            encoder=vla.vision,
            data=data,
            records=records,
            image_size=size,
            dist=dist,
            workers=cache_workers,
            threads=threads or 1,
            progress=progress,
        )

    prior_shift = None
    if vla.config.waypoint_prior == "ego_mlp" and prior_folds:
        try:
            keyframes = [*train_records, *text_records]
            prior_shift = cross_fitted_shift(Path(model), keyframes, prior_folds)
        except ValueError as exc:
            raise _fail(f"--prior-folds {prior_folds}: {exc}") from exc
    caches = [cached(train_data, train_records), cached(val_data, val_records)]
    reader_worlds = []
    for root in reader_roots:  # the reader-only phase's other worlds: every keyframe, front only
        data = DataSpec(Path(root), version, "all")
        records = space.records(data, cameras=cameras[:1], progress=progress)
        reader_worlds.append((cached(data, records), records))
    chain = None
    if vla.config.decision_reader:  # it compares each keyframe with the one before
        from fastdrive_ros.train.records import sample_chain

        chain = {
            **sample_chain(train_data.dataroot, train_data.version),
            **sample_chain(val_data.dataroot, val_data.version),
        }
    if decision_prior and chain is not None:  # _check_decision_prior: it has the reader
        _fit_decision_prior(vla, caches[0], train_records, chain, decision_form)
    summaries = train_planner(
        planner=vla.planner,
        train_cache=caches[0],
        train_records=train_records,
        val_cache=caches[1],
        val_records=val_records,
        out_dir=out / "run",
        config=config,
        text_config=text_config,
        text_records=text_records,
        keep_min=keep_min,
        subsets=subsets,
        ego_dropout=ego_dropout,
        event_weight=event_weight,
        val_settings=settings,
        max_items=max_items,
        labels=labels,
        fact_weight=fact_weight,
        reader_config=reader_config,
        reader_worlds=reader_worlds,
        prior_shift=prior_shift,
        chain=chain,
        beta=loss_beta,
        dist=dist,
        progress=progress,
    )
    if dist.is_main:
        vla.to("cpu").save_pretrained(out / "model")
        if vla.config.waypoint_prior == "ego_mlp":
            _keep_ego_mlps(Path(model), out / "model")
        report = {
            name: {
                "steps": s.steps,
                "seconds": round(s.seconds, 1),
                "best_val": s.best_val,
                "last_val": s.val_history[-1] if s.val_history else {},
            }
            for name, s in summaries.items()
        }
        report["samples"] = {
            "train": len(train_records),
            "text": len(text_records) if text_config else 0,
            "val": len(val_records),
        }
        (out / "summary.json").write_text(json.dumps(report, indent=1))
        typer.echo(f"wrote the trained bundle to {out / 'model'}")
    dist.close()


def _check_decision_prior(vla, ego_mlp_prior: bool, form: str) -> None:
    """ValueError unless --decision-prior can drive this bundle's plan."""
    from fastdrive_ros.nn.decision_prior import check_form

    check_form(form)
    if vla.planner.decision_reader is None:  # a scene head's own decision is trained later
        raise ValueError(
            "--decision-prior drives the plan with the decision reader's decision and this "
            "bundle has none: attach one with `python -m fastdrive_ros.train.pruned_reading "
            "--bundle-out`"
        )
    if ego_mlp_prior or vla.config.waypoint_prior not in ("kinematic", "kinematic_decision"):
        raise ValueError(
            "--decision-prior extends the kinematic prior: drop --ego-mlp-prior (this bundle's "
            f"prior is {vla.config.waypoint_prior!r})"
        )


def _fit_decision_prior(vla, cache, records: list, chain: dict[str, str], form: str) -> None:
    """Fit the decision prior's gains on the training keyframes and switch the planner to it."""
    from fastdrive_ros.train.decision_prior import fit_decision_gains, read_decisions

    decisions = read_decisions(vla.planner, cache, records, chain)
    fits = fit_decision_gains(records, decisions, form)
    for setting, fit in fits.items():
        typer.echo(
            f"decision prior, {setting} ego inputs: gain {fit['gain']:.3f} ({form}), L2 of "
            f"the prior on the training keyframes {fit['l2_kinematic']:.3f} -> "
            f"{fit['l2_driven']:.3f} m"
        )
    vla.use_decision_prior({s: fit["gain"] for s, fit in fits.items()}, form)


def train_pruner_command(
    model: Annotated[
        Path,
        Opt(help="Our VLA bundle (e.g. models/default) or a Qwen2.5-VL / Impromptu checkpoint."),
    ],
    dataroot: Annotated[Path, Opt(help="nuScenes (or synthetic) dataroot.")],
    version: Annotated[str, Opt(help="Table version: v1.0-trainval, v1.0-mini, v1.0-synth...")],
    out: Annotated[Path, Opt(help="Output folder: pruner/ (ReconPruner files), run/, summary.")],
    masks: Annotated[
        Path | None,
        Opt(help="Where `fastdrive masks` wrote fg_masks/ (default: the dataroot)."),
    ] = None,
    split: Annotated[str, Opt(help="Training scenes: train, val or all.")] = "train",
    val_split: Annotated[str, Opt(help="Validation scenes (same dataroot).")] = "val",
    val_dataroot: Annotated[
        Path | None, Opt(help="Validation dataroot (default: --dataroot).")
    ] = None,
    val_version: Annotated[str | None, Opt(help="Table version of --val-dataroot.")] = None,
    cameras: Annotated[
        str | None,
        Opt(help="Comma-separated cameras (default: the bundle's; CAM_FRONT for checkpoints)."),
    ] = None,
    image_size: Annotated[
        str | None,
        Opt(
            help="WxH input size, e.g. 504x280 (default: the bundle's; for checkpoints their "
            "own 672x392; 1596x1596 is the paper's)."
        ),
    ] = None,
    work_dir: Annotated[
        Path | None, Opt(help="Records and token caches (default OUT/work; share it to reuse).")
    ] = None,
    cache: Annotated[
        bool, Opt(help="Cache the frozen encoder's tokens on disk (fp16) instead of re-encoding.")
    ] = True,
    epochs: Annotated[int, Opt(help="Epochs (the paper: 10).")] = 10,
    batch_size: Annotated[int, Opt(help="Camera images per step and process.")] = 8,
    lr: Annotated[float, Opt(help="Peak learning rate (the paper: 2e-5 for 3B).")] = 2e-5,
    warmup_steps: Annotated[int, Opt(help="Linear warm-up steps before the cosine decay.")] = 0,
    weight_decay: Annotated[float, Opt(help="AdamW weight decay.")] = 0.0,
    decoder_layers: Annotated[
        int,
        Opt(help="Reconstruction decoder layers (the paper's 6; the compact default used 2)."),
    ] = 6,
    decoder_width: Annotated[
        int | None,
        Opt(
            help="Decoder width (default: the token width D = the LLM width, the paper's size: "
            "2048 at 3B; the compact default used D = 256)."
        ),
    ] = None,
    decoder_warmup_steps: Annotated[
        int,
        Opt(
            help="Steps that first teach the decoder to paint the whole image from all tokens "
            "(150: what the shipped default used; 0 collapsed to dropping every token)."
        ),
    ] = 150,
    min_kept_fraction: Annotated[
        float,
        Opt(
            help="Stop when the share of tokens with S > 0 stays below this for "
            "--collapse-patience steps (a collapsed pruner; 0 = never)."
        ),
    ] = 0.01,
    collapse_patience: Annotated[
        int, Opt(help="Training steps of a collapsed kept fraction before stopping.")
    ] = 50,
    alpha: Annotated[float, Opt(help="Weight of the foreground term (paper: 0.5).")] = 0.5,
    lam: Annotated[float, Opt(help="SSIM weight in each term (paper: 0.2).")] = 0.2,
    max_samples: Annotated[int | None, Opt(help="At most this many training keyframes.")] = None,
    max_train_images: Annotated[
        int | None, Opt(help="At most this many training camera images per epoch (spread).")
    ] = None,
    max_val_samples: Annotated[
        int | None, Opt(help="At most this many validation keyframes (spread).")
    ] = 64,
    max_val_images: Annotated[int, Opt(help="Validation camera images (spread).")] = 96,
    val_every: Annotated[int, Opt(help="Validate every N steps (0: at epoch ends only).")] = 0,
    seed: Annotated[int, Opt(help="Seed of everything (data order, init).")] = 0,
    device: Annotated[str, Opt(help="auto, cpu or cuda.")] = "auto",
    threads: Annotated[int | None, Opt(help="Torch CPU threads per process.")] = None,
    cache_workers: Annotated[
        int, Opt(help="CPU processes that build the token cache (no torchrun).")
    ] = 1,
    install: Annotated[
        bool, Opt(help="Also write the trained pruner into the --model bundle (ours only).")
    ] = False,
    progress: Annotated[bool, Opt(help="Show progress bars.")] = True,
) -> None:
    """Train ReconPruner with adversarial foreground/background reconstruction (AFBR)."""
    import torch

    from fastdrive_ros.train.loop import TrainConfig
    from fastdrive_ros.train.pruner_job import PrunerJob, run_pruner_job

    if threads is not None:
        torch.set_num_threads(threads)
    dist = _dist_context(device)
    try:
        job = PrunerJob(
            model=model,
            dataroot=dataroot,
            version=version,
            out=out,
            mask_root=masks,
            split=split,
            val_split=val_split,
            val_dataroot=val_dataroot,
            val_version=val_version,
            cameras=parse_cameras(cameras),
            image_size=parse_size(image_size),
            work_dir=work_dir,
            cache=cache,
            config=TrainConfig(
                epochs=epochs,
                batch_size=batch_size,
                lr=lr,
                warmup_steps=warmup_steps,
                weight_decay=weight_decay,
                val_every=val_every,
                seed=seed,
            ),
            decoder_layers=decoder_layers,
            decoder_width=decoder_width,
            decoder_warmup_steps=decoder_warmup_steps,
            min_kept_fraction=min_kept_fraction,
            collapse_patience=collapse_patience,
            alpha=alpha,
            lam=lam,
            max_samples=max_samples,
            max_train_images=max_train_images,
            max_val_samples=max_val_samples,
            max_val_images=max_val_images,
            cache_workers=cache_workers,
            threads=threads or 1,
            install=install,
        )
        result = run_pruner_job(job, dist=dist, progress=progress)
    except (ValueError, FileNotFoundError) as exc:
        raise _fail(str(exc)) from exc
    finally:
        dist.close()
    if dist.is_main:
        typer.echo(f"wrote the trained ReconPruner to {result}")


def cross_fitted_shift(model: Path, records: list, folds: int) -> dict:
    """train/ego_mlp.cross_fitted_prior_shift for these keyframes (each token once)."""
    import time

    from fastdrive_ros.train.ego_mlp import EgoExample, cross_fitted_prior_shift

    start = time.perf_counter()
    examples = {
        r.token: (EgoExample(r.ego, r.future_xy, r.future_valid), r.scene) for r in records
    }
    shift = cross_fitted_prior_shift(model, examples, folds)
    typer.echo(
        f"ego-MLP prior cross-fitted over {folds} folds of scenes for {len(examples)} keyframes "
        f"({time.perf_counter() - start:.0f} s)"
    )
    return shift


def _keep_ego_mlps(model: Path, bundle: Path) -> None:
    """Copy the model's ego MLPs into the trained bundle.

    The eval's ego_mlp reference row is then exactly the prior the planner adds its residual to.
    """
    import shutil

    from fastdrive_ros.nn.ego_mlp import FOLDER

    if (model / FOLDER).is_dir():
        shutil.copytree(model / FOLDER, bundle / FOLDER, dirs_exist_ok=True)


def register(app: typer.Typer) -> None:
    """Add `train-pruner` and `train-planner` to `app`."""
    app.command(name="train-pruner")(train_pruner_command)
    app.command(name="train-planner")(train_planner_command)
