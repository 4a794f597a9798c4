"""The report reads every figure and number from files the runs wrote: check that what it references
exists and that the generated .tex files say what the JSON says."""
import json
import re
import shutil
import subprocess
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
    assert any('metrics.tex' in i for i in inputs) and any('ablations_table.tex' in i for i in inputs)
    for i in inputs:
        path = (REPORT / i) if i.endswith('.tex') else (REPORT / f'{i}.tex')
        assert path.is_file(), i


def test_every_macro_the_report_uses_is_generated():
    defined = set()
    for f in (REPORT / 'generated').glob('*.tex'):
        defined |= set(re.findall(r'\\newcommand\{\\(\w+)\}', f.read_text()))
    prefixes = '|'.join(make_tex.macro_name(s) for s in make_tex.SOURCES)
    used = set(re.findall(rf'\\((?:{prefixes})[A-Z]\w*)', sources()))
    assert len(used) >= 50 and used <= defined, sorted(used - defined)


def without_times(text):
    """A generated file with the values of its time macros (the lines marked `% time`) blanked."""
    return re.sub(r'\{[^{}\n]*\}% time$', '{}% time', text, flags=re.M)


def test_generated_tex_matches_the_json(tmp_path):
    """What make_tex.py makes from output/ now is what the report was built from, times aside: a run of
    `python abp.py` re-writes the timings of output/metrics.json and nothing else."""
    made = make_tex.make_all(ROOT / 'output', tmp_path)
    assert {'metrics.tex', 'seeds.tex', 'ablations_table.tex'} <= set(made)
    # every committed generated file comes from a JSON the runs wrote (no stale or hand-made tables)
    assert {p.name for p in (REPORT / 'generated').glob('*.tex')} == set(made)
    for name, text in made.items():
        assert without_times((REPORT / 'generated' / name).read_text()) == without_times(text), name


def test_the_comparison_ignores_times_and_nothing_else(tmp_path):
    """A new timing in metrics.json leaves the comparison above equal; any other changed number breaks it."""
    out = tmp_path / 'output'
    out.mkdir()
    shutil.copy(ROOT / 'output' / 'metrics.json', out / 'metrics.json')
    m = json.loads((out / 'metrics.json').read_text())
    committed = make_tex.make_all(out, tmp_path / 'a')['metrics.tex']
    m['total_seconds'] *= 3
    m['warm']['seconds'] += 100
    m['cold']['seconds_per_epoch'] /= 2
    (out / 'metrics.json').write_text(json.dumps(m))
    retimed = make_tex.make_all(out, tmp_path / 'b')['metrics.tex']
    assert retimed != committed and without_times(retimed) == without_times(committed)
    m['warm']['recon_psnr_db'] += 0.01
    (out / 'metrics.json').write_text(json.dumps(m))
    assert without_times(make_tex.make_all(out, tmp_path / 'c')['metrics.tex']) != without_times(committed)


def test_macro_names_and_formats():
    assert make_tex.macro_name('arg', 'beta1') == 'argBetaOne'
    assert make_tex.macro_name('occlusion', 'pixels:0.7', 'mean') == 'occlusionPixelsZeroSevenMean'
    assert re.fullmatch(r'[A-Za-z]+', make_tex.macro_name('x', 'curvature_every', '2d'))
    assert make_tex.fmt(('warm', 'recon_psnr_db'), 31.447) == '31.45'
    assert make_tex.fmt(('warm', 'z_mean'), [-0.001, 0.2]) == '+0.00, +0.20'
    assert make_tex.fmt(('share_above_35db',), 0.205) == '20'
    assert make_tex.fmt(('label',), 'lion_2.jpg') == r'lion\_2.jpg'
    assert make_tex.fmt(('label',), r'noise $4s\,e$') == r'noise $4s\,e$'
    assert make_tex.fmt(('copy_db',), 3.0) == '3.0' and make_tex.fmt(('x',), 28.1) == '28.1'   # never more digits
    assert make_tex.fmt(('cold', 'recon_psnr_db'), 23.1) == '23.10'      # than it holds; a PSNR holds three


def test_a_std_prints_with_its_means_precision():
    text = make_tex.macros('s', {'wander': {'mean': 0.4431, 'std': 0.0093}})
    assert r'\newcommand{\sWanderMean}{0.44}' in text and r'\newcommand{\sWanderStd}{0.01}' in text


def test_a_list_of_records_is_named_by_its_records():
    doc = {'runs': [{'key': 'sir32', 'psnr': 1.0}, {'psnr': 2.0}], 'guard_events': [], 'seconds': 3.0}
    text = make_tex.macros('s', doc)
    assert r'\newcommand{\sRunsSirThreeTwoPsnr}{1.00}' in text and r'\newcommand{\sRunsTwoPsnr}{2.00}' in text
    assert r'\newcommand{\sGuardEventsCount}{0}' in text and r'\newcommand{\sSeconds}{3}% time' in text


def json_numbers(obj, out=None, key=''):
    """Every number in a JSON document (recursively), as (the keys above it joined by '.', the number as a float)."""
    out = set() if out is None else out
    if isinstance(obj, dict):
        for k, v in obj.items():
            json_numbers(v, out, f'{key}.{k}')
    elif isinstance(obj, list):
        for v in obj:
            json_numbers(v, out, key)
    elif isinstance(obj, (int, float)) and not isinstance(obj, bool):
        out.add((key.lower(), float(obj)))
    return out


def committed_json_numbers():
    """Every number of the committed JSON files output/*.json and output/*/*.json, as git's HEAD holds them (the
    working tree's where git is not at hand): a fresh `python abp.py` re-writes the timings in the working tree,
    and README and the report quote the committed run."""
    try:
        names = subprocess.run(['git', 'ls-tree', '-r', '--name-only', 'HEAD', 'output'], cwd=ROOT, check=True,
                               capture_output=True, text=True).stdout.split()
        texts = [subprocess.run(['git', 'show', f'HEAD:{n}'], cwd=ROOT, check=True, capture_output=True,
                                text=True).stdout for n in names if n.endswith('.json') and n.count('/') <= 2]
    except (OSError, subprocess.CalledProcessError):
        paths = [*(ROOT / 'output').glob('*.json'), *(ROOT / 'output').glob('*/*.json')]
        texts = [p.read_text() for p in paths]
    values = set()
    for text in texts:
        json_numbers(json.loads(text), values)
    return values


def quoted(text, units):
    """(number as written, decimals, unit) for every figure text quotes in one of units (a regex alternation)."""
    return [(m.group(1), len(m.group(1).split('.')[1]) if '.' in m.group(1) else 0, m.group(2))
            for m in re.finditer(rf'(?<![\w.{{\\])(\d+(?:\.\d+)?)(?:\s|\\,|~)?({units})', text)]


MEMORY = ('MiB', 'GB', 'MB')


def not_in_json(claims, values):
    """The claims that equal no JSON number at the decimals they are written with; a memory figure only a number
    whose keys name memory (rss, mib, memory)."""
    return [f'{num} {unit}' for num, dec, unit in claims
            if not any(f'{v:.{dec}f}' == num or f'{abs(v):.{dec}f}' == num for k, v in values
                       if unit not in MEMORY or any(w in k for w in ('rss', 'mib', 'memory')))]


def test_every_readme_number_is_in_a_committed_json():
    """Each figure README quotes in dB, in seconds or as a ratio (×) equals, at the decimals it is written
    with, some number of a committed JSON: a changed run that README was not updated for fails; a re-run that
    only re-wrote the timings does not."""
    claims = quoted((ROOT / 'README.md').read_text(), r'dB|s\b|×|MiB|GB|MB')
    assert len(claims) >= 10
    assert not_in_json(claims, committed_json_numbers()) == []


def prose(tex):
    """report.tex's text as a reader sees it, without comments, macros' names or the options of a command."""
    tex = re.sub(r'(?<!\\)%.*', '', tex)
    tex = re.sub(r'\\(?:includegraphics|label|ref|input|hspace|vspace)\*?(?:\[[^\]]*\])?\{[^}]*\}', '', tex)
    return re.sub(r'\\[A-Za-z]+', ' ', tex)


def test_every_number_the_report_types_with_a_unit_is_in_a_committed_json():
    """The report's numbers come from make_tex's macros; one typed into report.tex in dB, seconds or bytes
    (the prose and the captions) must equal, at its decimals, a number of a committed JSON, as README's do."""
    claims = quoted(prose((REPORT / 'report.tex').read_text()), r'dB|s\b|MiB|GB|MB')
    assert not_in_json(claims, committed_json_numbers()) == []


def test_the_prose_check_sees_a_typed_number():
    """prose + quoted find a number typed with a unit, and leave macros and figure widths alone."""
    text = prose(r'took 0.5\,GB and \metricsWarmSeconds\,s; \includegraphics[width=0.6\linewidth]{a.png} 12 dB % 99 dB')
    assert [(n, u) for n, _, u in quoted(text, r'dB|s\b|MiB|GB|MB')] == [('0.5', 'GB'), ('12', 'dB')]
