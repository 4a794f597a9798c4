"""The report reads every figure and number from output/: check that what it references exists and agrees."""
import json
import re

import abp
from conftest import ROOT

REPORT = ROOT / 'report'
TEX = [REPORT / 'report.tex', REPORT / 'analysis.tex']


def sources():
    return '\n'.join(p.read_text() for p in TEX)


def test_every_figure_exists():
    figs = re.findall(r'\\includegraphics(?:\[[^\]]*\])?\{([^}]+)\}', sources())
    assert len(figs) >= 8
    for f in figs:
        assert (ROOT / 'output' / f).is_file(), f


def test_every_input_exists():
    inputs = re.findall(r'\\input(?:table)?\{([^}]+)\}', sources())
    assert any('metrics.tex' in i for i in inputs) and any('ablations.tex' in i for i in inputs)
    for i in inputs:
        path = (REPORT / i) if i.endswith('.tex') else (REPORT / f'{i}.tex')
        assert path.is_file(), i


def test_every_macro_the_report_uses_is_generated():
    defined = set()
    for f in ('metrics.tex', 'ablations_macros.tex', 'bench.tex'):
        defined |= set(re.findall(r'\\newcommand\{\\(\w+)\}', (ROOT / 'output' / f).read_text()))
    used = set(re.findall(r'\\((?:warm|cold|pca|abl|bench|arg|total|nImages)\w*)', sources()))
    assert used and used <= defined, sorted(used - defined)


def test_report_numbers_match_metrics_json():
    m = json.loads((ROOT / 'output' / 'metrics.json').read_text())
    assert (ROOT / 'output' / 'metrics.tex').read_text() == abp.tex_macros(m)
    assert (ROOT / 'output' / 'results_table.tex').read_text() == abp.results_table(m)


def test_ablation_tables_match_ablations_json():
    rows = json.loads((ROOT / 'output' / 'ablations.json').read_text())
    assert len(rows) == len(abp.ABLATIONS)
    assert (ROOT / 'output' / 'ablations.tex').read_text() == abp.ablation_table(rows)
    assert (ROOT / 'output' / 'ablations_macros.tex').read_text() == abp.ablation_macros(rows)
