"""`simlab results`: the tidy table (column groups and order, grid row order, CSV) and `--describe`."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from simlab.cli import main
from simlab.experiments.results import ID_COLUMNS, describe, results, tidy_frame
from simlab.experiments.scenario import Scenario, forget_loaded_scenarios, load_scenario
from simlab.experiments.store import Store
from simlab.experiments.sweep import run_scenario

FIXTURES = Path(__file__).parent / "fixture_scenarios"
REPO_SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"

pytestmark = pytest.mark.usefixtures("fixture_scenarios")  # tests/experiments/conftest.py


@pytest.fixture(scope="module")
def toy_store(tmp_path_factory):
    """The toy scenario's 160 quick cells (4 values of n x 40 replicates), stored once for this module."""
    import os


    old = os.environ.get("SIMLAB_SCENARIOS")
    os.environ["SIMLAB_SCENARIOS"] = str(FIXTURES)
    forget_loaded_scenarios()
    path = tmp_path_factory.mktemp("results") / "toy.sqlite"
    store = Store(path)
    try:
        run_scenario(load_scenario("toy"), "quick", workers=1, store=store, progress=False)
    finally:
        store.close()
        forget_loaded_scenarios()
        if old is None:
            del os.environ["SIMLAB_SCENARIOS"]
        else:
            os.environ["SIMLAB_SCENARIOS"] = old
    return path


def test_columns_come_in_groups_id_params_metrics(toy_store):
    df = results("toy", toy_store)
    assert list(df.columns) == [*ID_COLUMNS, "n", "sleep", "diff", "err", "instance", "ratio"]
    assert df.attrs["groups"] == {"id": list(ID_COLUMNS), "params": ["n", "sleep"],
                                  "metrics": ["diff", "err", "instance", "ratio"], "bookkeeping": []}
    assert len(df) == 160 and (df["scenario"] == "toy").all()
    # grid order (n ascending as declared), then replicate: independent of the order cells finished in
    assert list(df["n"]) == sorted(df["n"]) and list(df["replicate"][:40]) == list(range(40))
    with_books = results("toy", toy_store, bookkeeping=True)
    assert list(with_books.columns[-2:]) == ["cell_key", "seconds"]
    assert with_books.attrs["groups"]["bookkeeping"] == ["cell_key", "seconds"]


def test_table_holds_the_stored_numbers(toy_store):
    df = results("toy", toy_store, bookkeeping=True)
    store = Store(toy_store, create=False)
    try:
        stored = {(r["cell_key"], r["replicate"]): r["err"] for r in store.rows("toy")}
    finally:
        store.close()
    assert {(k, r): e for k, r, e in zip(df["cell_key"], df["replicate"], df["err"])} == stored


def test_other_master_gives_an_empty_table_with_the_id_columns(toy_store):
    df = results("toy", toy_store, master=1)
    assert df.empty and list(df.columns) == list(ID_COLUMNS)
    assert tidy_frame(load_scenario("toy"), []).empty


def test_cli_csv_has_the_documented_header(toy_store, tmp_path):
    out = tmp_path / "toy.csv"
    assert main(["results", "toy", "--store", str(toy_store), "--csv", str(out)]) == 0
    lines = out.read_text().splitlines()
    assert lines[0] == "scenario,fingerprint,master,replicate,n,sleep,diff,err,instance,ratio"
    assert len(lines) == 161
    assert list(pd.read_csv(out)["err"]) == list(results("toy", toy_store)["err"])


def test_cli_describe_lists_metrics_meanings_and_claims(toy_store, capsys):
    assert main(["results", "toy", "--describe", "--store", str(toy_store)]) == 0
    text = capsys.readouterr().out
    assert "  err: (undocumented)\n      used by toy.rate (metric)" in text
    assert "  ratio: (undocumented)\n      used by toy.slow (metric), toy.ratio (metric)" in text
    assert "  n: values 10, 100, 1000, 10000\n      used by toy.rate (x), toy.slow (x)" in text
    assert "  instance: (undocumented)" in text          # returned by the cell, named by no claim: from the store


def test_describe_without_a_store_lists_the_declared_columns(tmp_path, capsys):
    assert main(["results", "toy", "--describe", "--store", str(tmp_path / "none.sqlite")]) == 0
    captured = capsys.readouterr()
    assert "err: (undocumented)" in captured.out and "instance" not in captured.out
    assert "does not exist" in captured.err and len(captured.err.strip().splitlines()) == 1


def test_missing_store_and_unknown_scenario_are_one_line_errors(tmp_path, capsys):
    assert main(["results", "toy", "--store", str(tmp_path / "none.sqlite")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "does not exist" in err[0]
    assert main(["results", "nosuch", "--store", str(tmp_path / "none.sqlite")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown scenario 'nosuch'" in err[0]
    assert main(["results", "nosuch", "--describe"]) == 2


def test_scenario_metrics_must_be_descriptions():
    toy = load_scenario("toy")
    with pytest.raises(ValueError, match="metrics must map"):
        Scenario(name="x", version="1", study="s", description="d", cell=toy.cell, grids=toy.grids,
                 seeds=toy.seeds, metrics={"err": ""})


def test_the_dpo_scenario_documents_every_metric_it_declares(monkeypatch):
    """scenarios/dpo.py is the example of `metrics=`: every metric its claims use is described."""

    monkeypatch.setenv("SIMLAB_SCENARIOS", str(REPO_SCENARIOS))
    forget_loaded_scenarios()
    cols = {c.name: c for c in describe("dpo")}
    assert cols["err2"].meaning.startswith("squared Euclidean error")
    assert "dpo.rate_n (metric)" in cols["err2"].used_by and "dpo.rate_n (also)" in cols["err2_I"].used_by
    assert all(c.meaning != "(undocumented)" for c in cols.values() if c.group == "metrics")
