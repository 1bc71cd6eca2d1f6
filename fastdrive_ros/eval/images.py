"""Camera images of a sample as one uint8 RGB batch (the input of the shared preprocessing)."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from fastdrive_ros.data.types import KeyframeSample


def load_camera_images(sample: KeyframeSample, camera_names: Sequence[str]) -> np.ndarray:
    """[C, H0, W0, 3] uint8 RGB in `camera_names` order.

    A missing camera, an unreadable file or mixed sizes raise an error naming the sample and file.
    """
    by_channel = {camera.channel: camera for camera in sample.cameras}
    images = []
    for name in camera_names:
        camera = by_channel.get(name)
        if camera is None:
            raise ValueError(
                f"sample {sample.token} has no {name} image (has {sorted(by_channel)}); the model "
                "expects these cameras"
            )
        bgr = cv2.imread(str(camera.path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise FileNotFoundError(f"cannot read camera image {camera.path} (missing or corrupt)")
        images.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    shapes = {image.shape for image in images}
    if len(shapes) != 1:
        raise ValueError(f"sample {sample.token}: cameras differ in size {sorted(shapes)}")
    return np.stack(images)


def resize_for_display(images: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """[C, H0, W0, 3] -> [C, H, W, 3] at the model's input size (so token cells line up)."""
    height, width = size
    return np.stack(
        [cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA) for image in images]
    )
