"""Writing rendered frames to a video file: MP4 (H.264 through imageio-ffmpeg, which ships
its own ffmpeg binary) or GIF (Pillow stores a frame equal to the one before once, with
their durations added), frame by frame so that a long recording does not sit in memory.
``pip install 'coltra[video]'``."""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType, TracebackType
from typing import Any

import numpy as np

__all__ = ["VIDEO_FORMATS", "VideoError", "VideoWriter", "check_video_path", "read_video"]

#: File suffixes a video can be written as.
VIDEO_FORMATS = (".mp4", ".gif")


class VideoError(ValueError):
    """A video that cannot be written: a bad path or suffix, a frame that is no image, or
    imageio missing."""


def check_video_path(path: str | Path) -> Path:
    """``path`` if a video can be written there (a known suffix, an existing directory),
    else a VideoError; checked before anything is played."""
    video = Path(path)
    if video.suffix.lower() not in VIDEO_FORMATS:
        raise VideoError(f"a video is written as {' or '.join(VIDEO_FORMATS)}, got {str(video)!r}")
    if not video.parent.is_dir():
        raise VideoError(f"cannot write {video}: {video.parent} is not a directory")
    _imageio()
    return video


def _imageio() -> ModuleType:
    try:
        return importlib.import_module("imageio.v2")
    except ImportError:
        raise VideoError(
            "writing a video needs imageio and imageio-ffmpeg: pip install 'coltra[video]'"
        ) from None


class VideoWriter:
    """Frames ``[height, width, 3]`` uint8 (an alpha channel is dropped) appended one by one
    to ``path``; every frame must have the first one's size. A context manager: the file is
    complete once it is closed."""

    def __init__(self, path: str | Path, fps: float = 30.0) -> None:
        self.path = check_video_path(path)
        suffix = self.path.suffix.lower()
        if not fps > 0:
            raise VideoError(f"frames per second must be > 0, got {fps!r}")
        self.fps = float(fps)
        self.frames = 0
        self._shape: tuple[int, ...] | None = None
        imageio = _imageio()
        options: dict[str, Any]
        if suffix == ".gif":
            options = {"duration": 1000.0 / self.fps, "loop": 0}  # ms per frame, forever
        else:
            # macro_block_size 1: keep the env's frame size (H.264 wants even sizes; odd
            # ones are padded by ffmpeg's filter below, not rescaled by imageio).
            options = {
                "fps": self.fps,
                "codec": "libx264",
                "macro_block_size": 1,
                "ffmpeg_log_level": "error",
                "output_params": ["-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2"],
            }
        self._writer = imageio.get_writer(self.path, mode="I", **options)

    def add(self, frame: Any) -> None:
        """Append one frame (what an env's ``render()`` returns in ``rgb_array`` mode)."""
        image = np.asarray(frame)
        if image.ndim != 3 or image.shape[-1] not in (3, 4) or image.dtype != np.uint8:
            raise VideoError(
                f"a frame must be an RGB image [height, width, 3] of uint8, got "
                f"{type(frame).__name__} {getattr(image, 'dtype', '')}{list(image.shape)}"
            )
        image = image[..., :3]
        if self._shape is None:
            self._shape = image.shape
        elif image.shape != self._shape:
            raise VideoError(
                f"frame {self.frames} is {list(image.shape)}, the video's frames are "
                f"{list(self._shape)}"
            )
        self._writer.append_data(np.ascontiguousarray(image))
        self.frames += 1

    def close(self) -> None:
        self._writer.close()

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()
        if kind is not None and self.frames == 0:
            self.path.unlink(missing_ok=True)  # nothing was recorded: leave no empty file


def read_video(path: str | Path) -> np.ndarray:
    """Every frame of a video file. ``[frames, height, width, 3]`` uint8"""
    imageio = _imageio()
    reader = imageio.get_reader(Path(path))
    try:
        return np.stack([np.asarray(frame)[..., :3] for frame in reader])
    finally:
        reader.close()
