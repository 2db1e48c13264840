import subprocess
import sys

from typer.testing import CliRunner

from quilt_llava import __version__
from quilt_llava.cli import make_app

# Each stage adds its commands here as it lands.
STAGES = ["narratives", "instruct", "eval", "demo", "train", "chat", "serve"]


def test_help_lists_every_stage():
    result = CliRunner().invoke(make_app(), ["--help"])
    assert result.exit_code == 0, result.output
    for stage in STAGES:
        assert stage in result.output


def test_version():
    result = CliRunner().invoke(make_app(), ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == __version__


def test_console_script_runs_as_module():
    proc = subprocess.run([sys.executable, "-m", "quilt_llava", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "narratives" in proc.stdout


def test_core_imports_without_heavy_extras():
    """The CLI shell and the core modules must not import torch, av, cv2, gradio or transformers."""
    code = (
        "import sys\n"
        "import quilt_llava.cli, quilt_llava.files, quilt_llava.console, quilt_llava.errors\n"
        "import quilt_llava.model.conversation, quilt_llava.model, quilt_llava.images, quilt_llava.eval.metrics\n"
        "import quilt_llava.eval.questions, quilt_llava.instruct, quilt_llava.instruct.llm, quilt_llava.train\n"
        "import quilt_llava.train.config, quilt_llava.instruct.region_qa\n"
        "quilt_llava.cli.make_app()\n"
        "heavy = [m for m in ('torch', 'av', 'cv2', 'gradio', 'transformers', 'sklearn', 'ray') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "", f"heavy modules imported at CLI start-up: {proc.stdout.strip()}"


def test_local_extraction_never_imports_ray(tmp_path):
    """``narratives extract`` with the local engine runs without loading ray (an optional extra)."""
    (tmp_path / "broken.mp4").write_bytes(b"\x00" * 512)
    (tmp_path / "list.txt").write_text("broken.mp4\n")
    code = (
        "import sys\n"
        "from quilt_llava.cli import make_app\n"
        "from typer.testing import CliRunner\n"
        f"r = CliRunner().invoke(make_app(), ['narratives', 'extract', {str(tmp_path / 'list.txt')!r}, '--out', "
        f"{str(tmp_path / 'out')!r}, '--workers', '2', '--quiet'])\n"
        "print(r.exit_code, 'ray' in sys.modules)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["1", "False"], proc.stdout


def test_missing_optional_dependency_names_the_extra():
    from quilt_llava.cli import missing_dependency

    hint = missing_dependency(ModuleNotFoundError("No module named 'av'", name="av"))
    assert hint is not None and "pip install 'quilt-llava[video]'" in str(hint)
    assert missing_dependency(ModuleNotFoundError("x", name="transformers.models")) is not None
    assert missing_dependency(ModuleNotFoundError("x", name="not_ours")) is None


def test_messages_with_brackets_print_literally(capsys):
    from quilt_llava.console import Output

    out = Output()
    out.error("install it with pip install 'quilt-llava[video]'")
    out.info("slide [x20] at /data/[a]/img.png")
    err = capsys.readouterr().err
    assert "quilt-llava[video]" in err and "[x20]" in err and "/data/[a]/img.png" in err
