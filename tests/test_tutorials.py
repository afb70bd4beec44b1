"""The tutorial notebooks of docs/tutorials: stored without outputs, and each runs from scratch
(``executed_tutorials``: nbclient, once per session) without an error and within the time limit.

The notebooks check their own results (``assert`` in their cells), so running them tests them.
"""
import nbformat
import pytest
from conftest import TUTORIALS, NotebookFailed, execute_notebook, tutorial_names

#: issue 12's series, in order
SERIES = ["01_course_rnn", "02_batches_states_lengths", "03_why_rnns_forget", "04_lstm_gru_equations",
          "05_your_own_cell", "06_char_model"]


def _stored(name: str):
    return nbformat.read(TUTORIALS / f"{name}.ipynb", as_version=4)


def _code_cells(notebook) -> list:
    return [cell for cell in notebook.cells if cell.cell_type == "code"]


def test_the_series_is_the_issues_six():
    assert tutorial_names() == SERIES


@pytest.mark.parametrize("name", tutorial_names())
def test_stored_without_outputs(name):
    notebook = _stored(name)
    nbformat.validate(notebook)
    stale = [i for i, cell in enumerate(notebook.cells) if cell.cell_type == "code"
             and (cell.outputs or cell.execution_count is not None or "execution" in cell.metadata)]
    assert not stale, (f"{name}: cells {stale} hold outputs, execution counts or execution times; clear them before "
                       f"committing (JupyterLab: Edit > Clear Outputs of All Cells)")
    assert notebook.metadata.kernelspec.name == "python3"


@pytest.mark.parametrize("name", tutorial_names())
def test_starts_with_its_title(name):
    first = _stored(name).cells[0]  # the site takes the page's title from it
    assert first.cell_type == "markdown" and first.source.startswith("# ")


@pytest.mark.parametrize("name", tutorial_names())
def test_runs_from_scratch(executed_tutorials, name):
    code = _code_cells(nbformat.read(executed_tutorials(name), as_version=4))
    assert [cell.execution_count for cell in code] == list(range(1, len(code) + 1))
    errors = [output.ename for cell in code for output in cell.outputs if output.output_type == "error"]
    assert not errors
    stderr = [output.text for cell in code for output in cell.outputs
              if output.output_type == "stream" and output.name == "stderr"]
    assert not stderr, f"{name}: writes to stderr (a warning or a progress bar the reader would see): {stderr}"


def _notebook(path, *sources):
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source) for source in sources])
    notebook.metadata.kernelspec = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, path)
    return path


def test_a_raising_cell_fails_the_notebook_in_its_working_directory(tmp_path):
    source = _notebook(tmp_path / "raises.ipynb", "open('here.txt', 'w').write('ran')", "1 / 0")
    with pytest.raises(NotebookFailed, match=r"(?s)raises.ipynb: .*1 / 0.*ZeroDivisionError"):
        execute_notebook(source, tmp_path / "out" / "raises.ipynb", tmp_path)
    assert (tmp_path / "here.txt").read_text() == "ran"
    assert not (tmp_path / "out").exists()


def test_a_notebook_past_the_limit_fails(tmp_path):
    source = _notebook(tmp_path / "slow.ipynb", "import time; time.sleep(60)")
    with pytest.raises(NotebookFailed, match=r"slow.ipynb: took more than 3 s"):
        execute_notebook(source, tmp_path / "slow-run.ipynb", tmp_path, limit_s=3)
