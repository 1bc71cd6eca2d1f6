"""eval room (DESIGN.md section 3): open-loop metrics, the evaluation harness, efficiency bench.

    fastdrive eval --dataroot DIR --version v1.0-synth --model models/default --out OUT
        [--pruners reconpruner,fastv,...] [--ratios 0,0.25,0.5,0.75] [--max-samples N]
    fastdrive bench --config compact|3b [--device cpu|cuda] [--layers N]

Modules: metrics / geometry / constant_velocity (FACTS.md metrics and the no-image reference),
flops (analytic token counts and FLOPs), harness / runner / vla_adapter / model_api (the loop and
run_eval), records / report_md / targets / plots / overlays (results.json, results.md, PNGs),
bench / bench_timing / bench_run (`fastdrive bench`), cli.
"""
