"""The report reads every figure and number from files the runs wrote: check that what it references
exists and that the generated .tex files say what the JSON says."""
import re
import sys

from conftest import ROOT

sys.path.insert(0, str(ROOT / 'report'))
import make_tex  # noqa: E402

REPORT = ROOT / 'report'
TEX = sorted(REPORT.glob('*.tex'))


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
    for f in (REPORT / 'generated').glob('*.tex'):
        defined |= set(re.findall(r'\\newcommand\{\\(\w+)\}', f.read_text()))
    used = set(re.findall(r'\\((?:warm|cold|pca|abl|bench|arg|total|nImages|seed|gen|study|occ)[A-Z]\w*)', sources()))
    assert used and used <= defined, sorted(used - defined)


def test_generated_tex_matches_the_json(tmp_path):
    """What make_tex.py makes from output/*.json now is what the report was built from."""
    made = make_tex.make_all(ROOT / 'output', tmp_path)
    assert {'metrics.tex', 'results_table.tex', 'ablations.tex', 'bench.tex'} <= set(made)
    # every committed generated file comes from a JSON the runs wrote (no stale or hand-made tables)
    assert {p.name for p in (REPORT / 'generated').glob('*.tex')} == set(made)
    for name, text in made.items():
        assert (REPORT / 'generated' / name).read_text() == text, name


def test_macro_names_are_letters_only():
    assert make_tex.macro_name('arg', 'beta1') == 'argBetaOne'
    assert make_tex.macro_name('arg', 'mse_sigma') == 'argMseSigma'
    assert re.fullmatch(r'[A-Za-z]+', make_tex.macro_name('x', 'curvature_every', '2d'))
