"""`fastdrive eval` (open-loop planning, pruners x ratios) and `fastdrive bench` (efficiency)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fastdrive_ros.cli import fail, split_list
from fastdrive_ros.data.cli import DATAROOT_HELP, VERSION_HELP

DEFAULT_PRUNERS = "reconpruner,fastv,sparsevlm,divprune,vispruner,prune2drive,random,none"
PRUNERS_HELP = (
    "Comma-separated selectors to compare ('none' = unpruned): reconpruner, fastv, sparsevlm, "
    "divprune, vispruner, prune2drive, random, none; probes: oracle_fg (K tokens of highest "
    "ground-truth foreground share), anti_oracle (K lowest), shuffled (another scene's tokens, "
    "ratio 0 only), no_images (no visual token, ratio 0 only)."
)
DEFAULT_RATIOS = "0,0.25,0.5,0.75"
PROGRESS_HELP = "Show a progress bar."


def parse_list(text: str, *, what: str) -> list[str]:
    """Split "a, b,c" into ["a", "b", "c"]; an empty list is an error naming the option."""
    items = split_list(text)
    if not items:
        raise typer.BadParameter(f"{what} needs at least one comma-separated value")
    return items


def parse_ratios(text: str) -> list[float]:
    try:
        return [float(item) for item in parse_list(text, what="--ratios")]
    except ValueError as exc:
        raise typer.BadParameter(f"--ratios must be numbers like 0,0.25,0.5: {exc}") from exc


def _set_threads(threads: int | None) -> None:
    if threads is None:
        return
    if threads < 1:
        raise typer.BadParameter("--threads must be >= 1")
    import torch

    torch.set_num_threads(threads)


def register(app: typer.Typer) -> None:
    """Add `eval`, `camera-targets` and `bench` to `app`."""

    @app.command("eval")
    def eval_command(
        dataroot: Annotated[Path, typer.Option(help=DATAROOT_HELP)],
        version: Annotated[str, typer.Option(help=VERSION_HELP)],
        model: Annotated[
            Path,
            typer.Option(help="Model folder (our bundle or a Qwen2.5-VL / Impromptu checkpoint)."),
        ],
        out: Annotated[Path, typer.Option(help="Output folder for results.json/md and plots.")],
        pruners: Annotated[str, typer.Option(help=PRUNERS_HELP)] = DEFAULT_PRUNERS,
        ratios: Annotated[
            str, typer.Option(help="Comma-separated prune ratios p (K = floor(N (1 - p))).")
        ] = DEFAULT_RATIOS,
        split: Annotated[str, typer.Option(help="Scenes to evaluate: val, train or all.")] = "val",
        max_samples: Annotated[
            int | None,
            typer.Option(help="Evaluate at most this many keyframes, spread over the split."),
        ] = None,
        max_scenes: Annotated[
            int | None,
            typer.Option(
                help="Evaluate only the split's first N scenes by name, every keyframe of each (a "
                "planner's frame memory sees each keyframe's predecessor)."
            ),
        ] = None,
        device: Annotated[str, typer.Option(help="Torch device: cpu or cuda.")] = "cpu",
        seed: Annotated[int, typer.Option(help="Seed of the random selector and torch.")] = 0,
        overlay_ratio: Annotated[
            float | None,
            typer.Option(help="Prune ratio of the kept-token overlays (default: the largest)."),
        ] = None,
        overlay_samples: Annotated[
            int, typer.Option(help="Samples (the first evaluated) that get overlays; 0 = none.")
        ] = 1,
        with_map: Annotated[
            bool,
            typer.Option(
                "--map/--no-map",
                help="Read the map expansion for intersection/off-road (--no-map: skip them).",
            ),
        ] = True,
        threads: Annotated[
            int | None, typer.Option(help="Torch CPU threads (default: torch's choice).")
        ] = None,
        ego_inputs: Annotated[
            str,
            typer.Option(
                help="What every planner reads of the ego state: full (history, speed, "
                "acceleration, yaw rate, steering, command) or minimal (command and speed); "
                "full,minimal evaluates both from one pass of the encoder, each under "
                "--out/<setting>."
            ),
        ] = "full",
        mask_root: Annotated[
            Path | None,
            typer.Option(help="Where fg_masks/ lives for the oracle probes (default: dataroot)."),
        ] = None,
        bootstrap_draws: Annotated[
            int, typer.Option(help="Scene-bootstrap resamples for the 95 % intervals.")
        ] = 2000,
        progress: Annotated[bool, typer.Option(help=PROGRESS_HELP)] = True,
        resolution: Annotated[
            str | None,
            typer.Option(
                help="Real checkpoints only: 'checkpoint' (default: Impromptu-VLA's own "
                "fine-tuning input, 672x392, 336 tokens) or 'paper' (FastDriveVLA's 1596x1596, "
                "3249 tokens)."
            ),
        ] = None,
        reference: Annotated[
            str,
            typer.Option(
                help="Reference point of trajectories, boxes and map: auto (the model's own: "
                "the LiDAR sensor for real checkpoints, as Impromptu-VLA / SparseDrive were "
                "trained; the rear axle for our bundles), rear_axle or lidar."
            ),
        ] = "auto",
    ) -> None:
        """Open-loop planning quality and latency of each pruner at each ratio (Table 1).

        Also: camera-free references (constant velocity, CTRA, the bundle's ego MLP), the probes
        that show whether token sets can be told apart (content effect, oracle gap, with
        scene-bootstrap intervals), and every row by what the ego does in the next 3 s.
        """
        from fastdrive_ros.core_types import EGO_INPUTS

        settings = parse_list(ego_inputs, what="--ego-inputs")
        if any(s not in EGO_INPUTS for s in settings) or len(set(settings)) != len(settings):
            raise typer.BadParameter(
                f"--ego-inputs must be one or more of {', '.join(EGO_INPUTS)}, each once"
            )
        if bootstrap_draws < 10:
            raise typer.BadParameter("--bootstrap-draws must be >= 10")
        pruner_names = parse_list(pruners, what="--pruners")
        ratio_values = parse_ratios(ratios)
        _set_threads(threads)
        from fastdrive_ros.eval.runner import run_eval_settings

        try:
            by_setting = run_eval_settings(
                dataroot=dataroot,
                version=version,
                model_folder=model,
                pruners=pruner_names,
                ratios=ratio_values,
                out=out,
                split=split,
                max_samples=max_samples,
                max_scenes=max_scenes,
                device=device,
                seed=seed,
                overlay_ratio=overlay_ratio,
                overlay_samples=overlay_samples,
                with_map=with_map,
                progress=progress,
                resolution=resolution,
                reference=reference,
                ego_inputs=settings,  # type: ignore[arg-type]
                mask_root=mask_root,
                bootstrap_draws=bootstrap_draws,
            )
        except (ValueError, OSError, ImportError) as exc:  # DatasetError is a ValueError
            raise fail(exc) from exc
        for setting, results in by_setting.items():
            folder = out / setting if len(by_setting) > 1 else out
            typer.echo(f"wrote {folder / 'results.json'}, {folder / 'results.md'} and plots")
            if results.discrimination.get("verdict"):
                typer.echo(results.discrimination["verdict"])
            for target in results.targets:
                typer.echo(f"[{target['status']}] {target['target']}: {target['detail']}")

    @app.command("camera-targets")
    def camera_targets_command(
        results: Annotated[
            list[Path],
            typer.Argument(
                help="results.json files of `fastdrive eval` runs (held-out worlds, each with "
                "--ego-inputs full or minimal and the probes oracle_fg, anti_oracle, shuffled)."
            ),
        ],
        out: Annotated[
            Path | None, typer.Option(help="Write the report here too (markdown).")
        ] = None,
        tables: Annotated[
            list[Path] | None,
            typer.Option(
                help="results.json of the runs the pruning tables come from (every method at "
                "every ratio, perhaps on fewer scenes); default: the runs above. Repeatable."
            ),
        ] = None,
    ) -> None:
        """Do the cameras matter? Issue 8's targets over worlds and ego-input settings.

        Also the pruning table between oracle and anti-oracle, per setting.
        """
        from fastdrive_ros.eval.camera_targets import Run, render_markdown

        try:
            runs = [Run.load(path) for path in results]
            table_runs = [Run.load(path) for path in tables] if tables else None
        except (ValueError, OSError, KeyError) as exc:
            raise fail(exc) from exc
        report = render_markdown(runs, table_runs)
        if out is not None:
            out.write_text(report, encoding="utf-8")
        typer.echo(report)

    @app.command("conflicts")
    def conflicts_command(
        seed: Annotated[int, typer.Option(help="World seed, as given to `fastdrive synth`.")],
        scenes: Annotated[int, typer.Option(help="Number of scenes.")] = 8,
        seconds: Annotated[float, typer.Option(help="Length of each scene (s).")] = 20.0,
        town_grid: Annotated[int, typer.Option(help="As `fastdrive synth --town-grid`.")] = 5,
        conflicts: Annotated[
            bool, typer.Option(help="The world of `fastdrive synth --conflicts`.")
        ] = False,
        out: Annotated[
            Path | None, typer.Option(help="Write the report here too (markdown).")
        ] = None,
        progress: Annotated[bool, typer.Option(help=PROGRESS_HELP)] = True,
    ) -> None:
        """Can this world's collision rate tell plans apart? Camera-blind plans, no rendering.

        Simulates the world `fastdrive synth` would write for these options and scores the logged
        future, constant velocity, CTRA and standing still with the evaluation's collision metric.
        """
        from tqdm import tqdm

        from fastdrive_ros.data.synth.generate import validate
        from fastdrive_ros.eval.conflicts import report_markdown, simulate_world

        try:  # synth's own checks; nothing is rendered, so any valid size and worker count
            validate(
                scenes=scenes, seconds=seconds, seed=seed, image_size=(1600, 900), workers=1,
                town_grid=town_grid,
            )  # fmt: skip
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from None
        with tqdm(total=scenes, desc="simulate", unit="scene", disable=not progress) as bar:
            keyframes = simulate_world(
                seed=seed,
                scenes=scenes,
                seconds=seconds,
                town_grid=town_grid,
                conflicts=conflicts,
                progress=lambda done: bar.update(done - bar.n),
            )
        world = f"seed {seed}" + (", with conflicts" if conflicts else "")
        report = report_markdown(keyframes, world)
        if out is not None:
            out.write_text(report + "\n", encoding="utf-8")
        typer.echo(report)

    @app.command("bench")
    def bench_command(
        config: Annotated[
            str, typer.Option(help="compact (the embedded default) or 3b (Qwen2.5-VL-3B shapes).")
        ] = "compact",
        device: Annotated[str, typer.Option(help="Torch device: cpu or cuda.")] = "cpu",
        ratios: Annotated[str, typer.Option(help="Comma-separated prune ratios.")] = (
            DEFAULT_RATIOS
        ),
        layers: Annotated[
            int | None,
            typer.Option(help="Time a reduced depth: N vision blocks and N LLM layers (CPU)."),
        ] = None,
        timing: Annotated[
            bool | None,
            typer.Option(
                "--timing/--no-timing",
                help="Time the stages (default: yes, except the full 3B model on a CPU).",
            ),
        ] = None,
        dtype: Annotated[
            str | None,
            typer.Option(help="float32, bfloat16 or float16 (default: bfloat16 on cuda)."),
        ] = None,
        repeats: Annotated[
            int, typer.Option(min=1, help="Timed repeats per stage (the median is reported).")
        ] = 5,
        warmup: Annotated[int, typer.Option(min=0, help="Untimed warm-up runs per stage.")] = 1,
        decode_tokens: Annotated[
            int, typer.Option(min=1, help="Decode steps timed per kept count (>= 1).")
        ] = 16,
        text_tokens: Annotated[
            int | None,
            typer.Option(
                help="Prompt text tokens (default: estimated from the project's prompt)."
            ),
        ] = None,
        out: Annotated[
            Path | None, typer.Option(help="JSON output (default: out/bench_<config>_<device>).")
        ] = None,
        threads: Annotated[
            int | None, typer.Option(help="Torch CPU threads (default: torch's choice).")
        ] = None,
        progress: Annotated[bool, typer.Option(help=PROGRESS_HELP)] = True,
    ) -> None:
        """Efficiency with random weights: tokens, FLOPs, encoder/pruner/prefill/decode times."""
        if config not in ("compact", "3b"):
            raise typer.BadParameter("--config must be compact or 3b")
        ratio_values = parse_ratios(ratios)
        _set_threads(threads)
        from fastdrive_ros.eval.bench_run import format_report, run_bench

        target = out or Path("out") / f"bench_{config}_{device.replace(':', '')}.json"
        try:
            report = run_bench(
                config=config,
                device=device,
                ratios=ratio_values,
                layers=layers,
                timing=timing,
                dtype=dtype,
                repeats=repeats,
                warmup=warmup,
                decode_tokens=decode_tokens,
                text_tokens=text_tokens,
                out=target,
                progress=progress,
            )
        except ValueError as exc:
            raise fail(exc) from exc
        typer.echo(format_report(report))
