"""The command line, run in-process and as a subprocess."""
import subprocess
import sys

import pytest

from numpy_rnn.cli import main


def test_gradcheck_prints_the_notebook_lines(capsys):
    assert main(["gradcheck", "--seed", "3"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Gradient check with a single output neuron:\nGradient check for dW passed")
    assert "\nGradient check with multiple output neurons:\n" in out
    assert out.count("passed (difference") == 10 and "failed" not in out


def test_sizes_and_output_sizes(capsys):
    assert main(["gradcheck", "--input-size", "3", "--hidden-size", "7", "--seq-len", "4", "--output-sizes", "2"]) == 0
    assert capsys.readouterr().out.count("passed") == 5


@pytest.mark.parametrize("argv, message", [
    (["gradcheck", "--hidden-size", "-1"], "argument --hidden-size: expected a positive integer, got -1"),
    (["gradcheck", "--seq-len", "x"], "expected a positive integer, got 'x'"),
    (["gradcheck", "--dtype", "float32"], "expected x in float64, got float32"),
    (["nosuch"], "invalid choice: 'nosuch'"),
])
def test_bad_arguments_exit_2_without_traceback(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_module_entry_point_and_help():
    result = subprocess.run([sys.executable, "-m", "numpy_rnn", "gradcheck", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "--output-sizes" in result.stdout
    result = subprocess.run([sys.executable, "-m", "numpy_rnn", "demo"], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.count("passed") == 10
