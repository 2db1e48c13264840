"""Which videos a ``narratives extract`` run covers: a video, a folder of videos, or a list file.

A list file (``.txt``, ``.list`` or ``.lst``) names one video per line; blank lines and
lines starting with ``#`` are skipped, relative paths are read from the list file's
folder. Every path is made absolute, so that workers on other machines (a Ray
cluster) are handed the same path the user meant; it must then be visible at that
path on every node (a shared filesystem).

Problems with single entries (a missing file, two videos whose outputs would land in
the same ``<video_id>/`` folder) are returned by entry, not raised, so that the rest
of a long list still runs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from quilt_llava.errors import InputError

LIST_SUFFIXES = (".txt", ".list", ".lst")
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:/")


@dataclass
class VideoInputs:
    videos: list[Path] = field(default_factory=list)  # absolute paths, in the order given
    problems: dict[str, str] = field(default_factory=dict)  # entry -> why it is left out


def is_video_list(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in LIST_SUFFIXES


def read_video_list(path: Path) -> VideoInputs:
    """The videos named in a list file (see the module docstring)."""
    from quilt_llava.narratives.batch import VIDEO_EXTENSIONS

    inputs = VideoInputs()
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(str(path), f"cannot read the list of videos ({exc})") from None
    for lineno, line in enumerate(lines, start=1):
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        where = f"{path}:{lineno}"
        if _URL.match(entry):
            inputs.problems[where] = (
                f"{entry}: URLs are not supported; list paths on a filesystem that every "
                "worker sees (copy or mount the videos first)"
            )
            continue
        video = Path(entry).expanduser()
        video = (video if video.is_absolute() else path.parent / video).resolve()
        if not video.is_file():
            inputs.problems[where] = f"{video}: no such video file"
        elif video.suffix.lower() not in VIDEO_EXTENSIONS:
            inputs.problems[where] = f"{video}: not a video file (expected one of {', '.join(VIDEO_EXTENSIONS)})"
        else:
            inputs.videos.append(video)
    if not inputs.videos and not inputs.problems:
        raise InputError(str(path), "the list names no videos")
    return inputs


def one_folder_per_video(inputs: VideoInputs) -> VideoInputs:
    """Leave out the second and later videos whose output folder (their video id) is already taken."""
    from quilt_llava.narratives.rows import video_id_for

    owner: dict[str, Path] = {}
    kept = VideoInputs(problems=dict(inputs.problems))
    for video in inputs.videos:
        vid = video_id_for(video)
        first = owner.setdefault(vid, video)
        if first == video and video not in kept.videos:
            kept.videos.append(video)
        elif first != video:
            kept.problems[str(video)] = (
                f"{video}: its output folder {vid}/ is already that of {first}; "
                "rename one of them (the video id is the file name without extension)"
            )
    return kept


def is_url(text: str) -> bool:
    """``s3://...``, ``gs://...``, ``https://...`` (also after pathlib folded ``//`` into ``/``)."""
    return bool(_URL.match(text))
