"""The documents that report measurements are views of benchmarks/results/*.json: regenerating
them gives the committed text, the README's numbers lead to sections that exist, and no result
names a path of the machine it ran on."""
import json
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
MACHINE_PATH = re.compile(r"(?<![\w.])/(tmp|work|root|home)/")


@pytest.mark.parametrize("module, committed", [("benchmarks.results_report", REPO / "RESULTS.md"),
                                               ("benchmarks.ntm_report", RESULTS / "ntm.md")])
def test_reports_are_generated_from_the_json(module, committed, tmp_path):
    import importlib

    out = tmp_path / committed.name
    importlib.import_module(module).main(out=out)
    assert out.read_text() == committed.read_text(), f"{committed.name} is stale: run python -m {module}"


def test_decode_report_is_generated_from_its_json(tmp_path):
    from benchmarks.decode_compare import md_text

    assert md_text(RESULTS) == (RESULTS / "decode.md").read_text()


def test_every_results_link_of_the_readme_names_a_section():
    readme = (REPO / "README.md").read_text()
    anchors = {re.sub(r"[^\w\- ]", "", h.strip("# ").lower()).replace(" ", "-")
               for h in (REPO / "RESULTS.md").read_text().splitlines() if h.startswith("#")}
    links = re.findall(r"\(RESULTS\.md#([\w-]+)\)", readme)
    assert len(links) >= 10
    assert sorted(set(links) - anchors) == []


def test_every_number_of_the_readme_results_is_in_its_section():
    sections, name = {}, None
    for line in (REPO / "RESULTS.md").read_text().splitlines():
        if line.startswith("## "):
            name = re.sub(r"[^\w\- ]", "", line[3:].lower()).replace(" ", "-")
        if name:
            sections[name] = sections.get(name, "") + line + "\n"
    missing = []
    for text, anchor in re.findall(r"\[([^\]]+)\]\(RESULTS\.md#([\w-]+)\)", (REPO / "README.md").read_text()):
        for number in re.findall(r"\d[\d,]*(?:\.\d+)?", text):
            if not re.search(rf"(?<![\d.,]){re.escape(number)}(?![\d,]|\.\d)", sections.get(anchor, "")):
                missing.append(f"{number} ({text}) not in section {anchor}")
    assert missing == []


def test_no_result_names_a_path_of_the_machine():
    files = sorted(RESULTS.glob("*.json")) + sorted(RESULTS.glob("*.md")) + [REPO / "RESULTS.md"]
    found = [f"{p.name}:{n}" for p in files for n, line in enumerate(p.read_text().splitlines(), 1)
             if MACHINE_PATH.search(line)]
    assert found == []


def test_every_result_records_its_commit():
    missing = [p.name for p in RESULTS.glob("*.json") if not json.loads(p.read_text()).get("recorded_in_commit")]
    assert missing == []
