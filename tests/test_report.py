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
    used = set(re.findall(r'\\((?:warm|cold|pca|abl|bench|arg|total|nImages|seed|gen|study|occ|sweep|lrn|ho|spk|shp|sf)[A-Z]\w*)', sources()))
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


def json_numbers(obj, out=None):
    """Every number in a JSON document (recursively), as floats."""
    out = set() if out is None else out
    if isinstance(obj, dict):
        for v in obj.values():
            json_numbers(v, out)
    elif isinstance(obj, list):
        for v in obj:
            json_numbers(v, out)
    elif isinstance(obj, (int, float)) and not isinstance(obj, bool):
        out.add(float(obj))
    return out


def readme_claims(text):
    """(number as written, decimals, unit) for every figure README quotes in dB, seconds, or as a ratio."""
    return [(m.group(1), len(m.group(1).split('.')[1]) if '.' in m.group(1) else 0, m.group(2))
            for m in re.finditer(r'(?<![\w.])(\d+(?:\.\d+)?)\s?(dB|s\b|×)', text)]


def test_every_readme_number_is_in_a_committed_json():
    """Each figure README quotes in dB, in seconds or as a ratio (×) equals, at the decimals it is written
    with, some number of a committed output/*.json: a changed run that README was not updated for fails."""
    import json
    values = set()
    leads = [p for name in ('seeds', 'generalize', 'bench') for p in (ROOT / 'output').glob(f'*/{name}.json')]
    for path in [*(ROOT / 'output').glob('*.json'), *leads]:   # + the seeds, folders and bench of a lead
        json_numbers(json.loads(path.read_text()), values)
    claims = readme_claims((ROOT / 'README.md').read_text())
    assert len(claims) >= 10
    missing = [f'{num} {unit}' for num, dec, unit in claims
               if not any(f'{v:.{dec}f}' == num or f'{abs(v):.{dec}f}' == num for v in values)]
    assert missing == [], missing
