"""The synthetic world: procedural towns written as a nuScenes v1.0 dataset (`v1.0-synth`).

    from fastdrive_ros.data.synth import generate_dataset
    summary = generate_dataset(Path("data/synth"), scenes=10, seconds=20, seed=0,
                               image_size=(448, 252))

Layout under the dataset root (the devkit's dataroot):
  v1.0-synth/*.json             the 13 nuScenes tables (camera sample_data only, no LIDAR_TOP)
  samples/CAM_*/*.jpg           2 Hz keyframe images; sweeps/CAM_*/*.jpg the 12 Hz others
  fg_masks/<image path>.png     nuScenes-FG mask, 255 = foreground (layout.py)
  class_maps/<image path>.png   class id per pixel (layout.SEMANTIC_CLASSES)
  can_bus/<scene>_*.json        CAN bus expansion (pose, steeranglefeedback, vehicle_monitor,
                                route, meta) for `NuScenesCanBus`
  maps/expansion/<location>.json, maps/<hash>.png   map expansion 1.3 and the map-mask PNG
  synth/dataset.json, synth/scenes/<scene>.json      generator settings, per-keyframe behaviour
The towns are procedural; the four nuScenes location names label them only.
"""

from __future__ import annotations

from typing import Any

__all__ = ["DatasetSummary", "generate_dataset"]


def __getattr__(name: str) -> Any:
    # Lazy: `fastdrive --help` imports this package and must not pay for OpenCV and shapely.
    if name in __all__:
        from fastdrive_ros.data.synth import generate

        return getattr(generate, name)
    raise AttributeError(name)
