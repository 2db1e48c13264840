"""Stage C: two-stage training (alignment, instruction tuning) through accelerate.

``TrainConfig`` and ``train`` import no heavy library at module load; torch and
transformers are imported when a run starts.
"""

from quilt_llava.train.config import TrainConfig
from quilt_llava.train.trainer import train

__all__ = ["TrainConfig", "train"]
