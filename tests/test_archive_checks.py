"""``podium archive`` checks what it archives before it writes: the handler imports and is
one, ``--labels`` fit the model's classes, the ``--example`` answers, nothing is replaced
without ``--force``. Each refusal is one line, exit status 2, and no file."""

from __future__ import annotations

import shutil
from pathlib import Path

import joblib
import orjson
import pytest
from click.testing import CliRunner, Result
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from podium.cli import main
from tests.conftest import HANDLERS
from tests.test_example_digits import train_digits
from tests.test_mar import write_mar

IRIS_ROW = [5.1, 3.5, 1.4, 0.2]


def run_archive(tmp_path: Path, *args: str) -> Result:
    return CliRunner().invoke(main, ["archive", *args, "-o", str(tmp_path / "out")])


def refusal(tmp_path: Path, *args: str) -> str:
    """Run ``podium archive``, which must refuse: exit 2, one line on stderr, no archive."""
    result = run_archive(tmp_path, *args)
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert not (tmp_path / "out").exists()
    return lines[0].removeprefix("Error: ")


def archived(tmp_path: Path, *args: str) -> Path:
    result = run_archive(tmp_path, *args)
    assert result.exit_code == 0, result.output
    path = Path(result.stdout.strip().splitlines()[-1])
    assert path.is_file()
    return path


def write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


@pytest.fixture(scope="module")
def iris(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3-class LogisticRegression, as a joblib file."""
    features, target = load_iris(return_X_y=True)
    path = tmp_path_factory.mktemp("iris") / "iris.joblib"
    joblib.dump(LogisticRegression(max_iter=300).fit(features, target), path)
    return path


@pytest.fixture(scope="module")
def digits_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The digits example's ONNX model: logits of shape [batch, 10]."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("torch")
    return train_digits(tmp_path_factory.mktemp("digits"))["onnx"]


# --- the handler: it compiles, imports, and is one --------------------------------------


def test_a_missing_handler_class_is_refused(tmp_path: Path) -> None:
    shutil.copyfile(HANDLERS / "echo.py", tmp_path / "echo.py")
    line = refusal(tmp_path, "m", "--handler", f"{tmp_path / 'echo.py'}:Nope")
    assert line == "echo.py has no Handler subclass named Nope"


def test_a_class_that_is_no_handler_is_refused(tmp_path: Path) -> None:
    handler = write(tmp_path / "handler.py", "class Model:\n    pass\n")
    line = refusal(tmp_path, "m", "--handler", f"{handler}:Model")
    assert line == "handler.py has no Handler subclass named Model"


def test_a_syntax_error_is_refused_with_its_line(tmp_path: Path) -> None:
    handler = write(
        tmp_path / "handler.py",
        "from podium import Handler\n\nclass Broken(Handler)\n    pass\n",
    )
    line = refusal(tmp_path, "m", "--handler", handler)
    assert line.startswith("handler.py line 3: SyntaxError: "), line


def test_an_import_error_is_refused_with_its_line(tmp_path: Path) -> None:
    handler = write(tmp_path / "handler.py", "import os\nimport no_such_module_here\n")
    line = refusal(tmp_path, "m", "--handler", handler)
    assert line == ("handler.py line 2: ModuleNotFoundError: No module named 'no_such_module_here'")


def test_a_module_without_a_handler_is_refused(tmp_path: Path) -> None:
    handler = write(tmp_path / "handler.py", "VALUE = 1\n")
    line = refusal(tmp_path, "m", "--handler", handler)
    assert line == "handler.py defines no Handler subclass and no handle() function"


def test_a_module_with_two_handlers_must_name_one(tmp_path: Path) -> None:
    handler = write(
        tmp_path / "handler.py",
        "from podium import Handler\n\nclass A(Handler): ...\n\nclass B(Handler): ...\n",
    )
    line = refusal(tmp_path, "m", "--handler", handler)
    assert line == "handler.py defines several handlers (A, B); name one"
    archived(tmp_path, "m", "--handler", f"{handler}:B")


def test_the_handler_imports_its_sibling_files_as_a_worker_does(tmp_path: Path) -> None:
    helper = write(tmp_path / "helper.py", "ANSWER = 42\n")
    handler = write(
        tmp_path / "handler.py",
        "from helper import ANSWER\n\ndef handle(requests, context):\n"
        "    return [ANSWER for _ in requests]\n",
    )
    # Without the helper in the archive the worker could not import the handler.
    line = refusal(tmp_path, "m", "--handler", handler)
    assert line == "handler.py line 1: ModuleNotFoundError: No module named 'helper'"
    archived(tmp_path, "m", "--handler", handler, "--extra-files", helper)


def test_a_handler_that_exits_at_import_cannot_take_the_command_down(tmp_path: Path) -> None:
    handler = write(tmp_path / "handler.py", "print('noise')\nimport os\nos._exit(3)\n")
    line = refusal(tmp_path, "m", "--handler", handler)
    assert "exit status 3" in line, line


def test_a_torchserve_handler_is_found_as_torchserve_finds_it(tmp_path: Path) -> None:
    (tmp_path / "m.weights").write_bytes(b"w")
    empty = write(tmp_path / "ts_handler.py", "VALUE = 1\n")
    base = ("m", "--handler", "torchserve", "--model", str(tmp_path / "m.weights"))
    line = refusal(tmp_path, *base, "--extra-files", empty, "--option", "handler=ts_handler.py")
    assert "ts_handler must define exactly one handler class or a handle() function" in line
    broken = write(tmp_path / "broken.py", "def handle(data, context)\n    return data\n")
    line = refusal(tmp_path, *base, "--extra-files", broken, "--option", "handler=broken.py")
    assert line.startswith("broken.py line 1: SyntaxError: "), line
    good = write(tmp_path / "good.py", "def handle(data, context):\n    return data\n")
    archived(tmp_path, *base, "--extra-files", good, "--option", "handler=good.py")


# --- --labels against the model's classes ----------------------------------------------


def test_labels_must_match_an_sklearn_models_classes(tmp_path: Path, iris: Path) -> None:
    line = refusal(tmp_path, "iris", "--model", str(iris), "--labels", "a,b")
    assert line == "--labels has 2 names but the model has 3 classes"
    archived(tmp_path, "iris", "--model", str(iris), "--labels", "setosa,versicolor,virginica")


def test_labels_must_match_an_onnx_models_output_width(tmp_path: Path, digits_onnx: Path) -> None:
    line = refusal(tmp_path, "digits", "--model", str(digits_onnx), "--labels", "0,1,2")
    assert line == "--labels has 3 names but the model has 10 classes"
    named = refusal(
        tmp_path, "digits", "--model", str(digits_onnx), "--labels", "a", "--option", "output=y"
    )
    assert named == 'option "output": the model has no output "y"'
    archived(tmp_path, "digits", "--model", str(digits_onnx), "--labels", ",".join("0123456789"))


def test_labels_must_match_a_torch_signature(tmp_path: Path) -> None:
    (tmp_path / "m.pt").write_bytes(b"w")
    signature = '{"outputs": {"logits": {"dtype": "float32", "shape": [null, 4]}}}'
    line = refusal(
        tmp_path,
        *("m", "--model", str(tmp_path / "m.pt"), "--labels", "a,b,c"),
        *("--option", f"signature={signature}"),
    )
    assert line == "--labels has 3 names but the model has 4 classes"


def test_labels_must_match_a_transformers_config(tmp_path: Path) -> None:
    folder = tmp_path / "bert"
    folder.mkdir()
    config = {"architectures": ["BertForSequenceClassification"], "id2label": {"0": "a", "1": "b"}}
    (folder / "config.json").write_bytes(orjson.dumps(config))
    (folder / "model.safetensors").write_bytes(b"w")
    (folder / "vocab.txt").write_text("[PAD]\n")
    line = refusal(tmp_path, "bert", "--model", str(folder), "--labels", "x,y,z")
    assert line == "--labels has 3 names but the model has 2 classes"
    archived(tmp_path, "bert", "--model", str(folder), "--labels", "x,y")


# --- --example through the handler: --check, the default, --no-check ---------------------


def test_check_runs_a_good_example(tmp_path: Path, iris: Path) -> None:
    example = write(tmp_path / "example.json", orjson.dumps(IRIS_ROW).decode())
    path = archived(tmp_path, "iris", "--model", str(iris), "--example", example, "--check")
    assert path.name == "iris-1.0.podium"


def test_check_refuses_an_example_the_handler_rejects(tmp_path: Path, iris: Path) -> None:
    example = write(tmp_path / "example.json", '{"nothing": 1}')
    args = ("iris", "--model", str(iris), "--example", example)
    line = refusal(tmp_path, *args, "--check")
    assert line == (
        "--example failed with status 400: expected one of the fields inputs, instances, text, data"
    )
    # Cheap (a small sklearn model): checked by default too, unless --no-check.
    assert refusal(tmp_path, *args) == line
    archived(tmp_path, *args, "--no-check")


def test_check_refuses_a_handler_that_raises(tmp_path: Path) -> None:
    handler = write(
        tmp_path / "handler.py",
        "def handle(requests, context):\n    raise KeyError('weights')\n",
    )
    example = write(tmp_path / "example.json", "1")
    line = refusal(tmp_path, "m", "--handler", handler, "--example", example)
    assert line == "--example failed with status 500: KeyError: 'weights'"


def test_check_refuses_a_handler_that_cannot_initialize(tmp_path: Path) -> None:
    handler = write(
        tmp_path / "handler.py",
        "from podium import Handler\n\nclass H(Handler):\n"
        "    def initialize(self, context):\n        open(context.model_dir / 'gone.bin')\n",
    )
    line = refusal(tmp_path, "m", "--handler", handler, "--check")
    assert line.startswith("the model did not load: handler.py line 5: FileNotFoundError: "), line


def test_the_default_check_skips_costly_handlers(tmp_path: Path) -> None:
    # A torch model is not loaded unless --check asks: these weights are junk.
    (tmp_path / "m.pt").write_bytes(b"junk")
    example = write(tmp_path / "example.json", "[1.0]")
    archived(tmp_path, "m", "--model", str(tmp_path / "m.pt"), "--example", example)


# --- never replace an archive without --force -------------------------------------------


def test_an_existing_archive_is_kept_without_force(tmp_path: Path) -> None:
    handler = str(HANDLERS / "echo.py")
    first = archived(tmp_path, "echo", "--handler", handler, "--batch-size", "4")
    before = first.read_bytes()
    result = run_archive(tmp_path, "echo", "--handler", handler, "--batch-size", "8")
    assert result.exit_code == 2, result.output
    assert result.stderr.strip() == f"Error: {first} exists: use --force to replace it"
    assert first.read_bytes() == before
    assert sorted(p.name for p in first.parent.iterdir()) == [first.name]
    replaced = archived(tmp_path, "echo", "--handler", handler, "--batch-size", "8", "--force")
    assert replaced == first and first.read_bytes() != before


def test_nothing_is_written_when_a_check_fails_after_a_good_archive(
    tmp_path: Path, iris: Path
) -> None:
    first = archived(tmp_path, "iris", "--model", str(iris))
    before = first.read_bytes()
    result = run_archive(tmp_path, "iris", "--model", str(iris), "--labels", "a", "--force")
    assert result.exit_code == 2, result.output
    assert first.read_bytes() == before
    assert sorted(p.name for p in first.parent.iterdir()) == [first.name]


def test_a_converted_mar_is_kept_without_force(tmp_path: Path) -> None:
    source = write_mar(
        tmp_path / "m.mar",
        {"runtime": "python", "model": {"modelName": "m", "modelVersion": "1", "handler": "h.py"}},
        {"h.py": b"def handle(data, context):\n    return data\n"},
    )
    first = archived(tmp_path, "--from-mar", str(source))
    before = first.read_bytes()
    again = run_archive(tmp_path, "--from-mar", str(source))
    assert again.exit_code == 2, again.output
    assert again.stderr.strip() == f"Error: {first} exists: use --force to replace it"
    assert first.read_bytes() == before
    assert archived(tmp_path, "--from-mar", str(source), "--force") == first
    assert archived(tmp_path, "--from-mar", str(source), "--version", "2").name == "m-2.podium"


def test_no_check_archives_without_running_the_handler(tmp_path: Path) -> None:
    # For a host without the server's packages: nothing of the archive's code runs.
    handler = write(tmp_path / "handler.py", "import package_only_on_the_server\n")
    archived(tmp_path, "m", "--handler", handler, "--no-check")
