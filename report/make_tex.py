"""The report's numbers: read the JSON the runs wrote and write report/generated/*.tex.

    python report/make_tex.py            # then: cd report && latexmk -pdf report.tex

One rule for every file. output/metrics.json and each benchmark's output/<name>/<name>.json become
report/generated/<name>.tex, one \\newcommand per number or short list, named by the file and the path of keys in
camel case, digits spelled out: seeds.json's summary.warm.recon_psnr_db.mean is \\seedsSummaryWarmReconPsnrDbMean.
A list of records is indexed by each record's name (its key, kind or folder; study and row) or, when it has none,
by position: seeds.json's runs[1].cold.interp_d is \\seedsRunsTwoColdInterpD. A list's length is ...Count. The
tables of TABLES are one row per record, from a template. Values that a re-run changes by itself (times) are
marked `% time` at the end of their line. Nothing is typed by hand; a missing JSON is skipped with a note.
"""
import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ['metrics', 'seeds', 'ablations', 'cold_study', 'generalize', 'handout_cold', 'learned', 'occlusion',
           'bench', 'scale']
# not results: where and how a run was started, what a folder holds, long series (figures plot them)
SKIP = {'device', 'torch', 'img_dir', 'out_dir', 'resume', 'parallel', 'images', 'flags', 'command', 'code', 'what',
        'files', 'series', 'psnr_curve', 'curve'}
# (part of the dotted key path, format): the first that matches a number's path formats it
FORMATS = [('memory.', '.1f'), ('first_layer_norm', '.2f'), ('images_per_second', '.0f'), ('over_warm', '.2f'), ('time_ratio', '.2f'), ('share', 'pct'), ('hidden_fraction', 'pct'), ('z_mean', '+.2f'), ('minus', '+.2f'), ('_db', '.2f'),
           ('psnr', '.2f'), ('ess', '.2f'), ('z_std', '.2f'), ('interp_d', '.2f'), ('coverage', '.1f'),
           ('seconds_per_epoch', '.3f'), ('seconds', '.0f'), ('args.', 'g'), ('step_size', 'g'), ('configured_step', 'g')]
TABLES = {  # generated/<name>.tex: (source, template of one row per record; {#A}: A, B, ..., {#1}: 1, 2, ...)
    'ablations_table': ('ablations', r'{#A} & {start} & {label} & {recon_psnr_db} $\pm$ {recon_psnr_db_std} & '
                        r'{sample_nn_psnr_db_median} $\pm$ {sample_nn_psnr_db_median_std} & {sample_coverage} & '
                        r'{guard_events|sum} & {first_layer_norm} $\pm$ {first_layer_norm_std} \\'),
    'cold_study_table': ('cold_study', r'S{#1} & {label} & {recon_psnr_db} $\pm$ {recon_psnr_db_std} & '
                         r'{sample_nn_psnr_db_median} $\pm$ {sample_nn_psnr_db_median_std} & {sample_coverage} & '
                         r'{guard_events|sum} & {first_layer_norm} $\pm$ {first_layer_norm_std} \\'),
    'generalize_table': ('generalize', r'{folder} & {note} & {n_images} & {warm.recon_psnr_db} & {cold.recon_psnr_db} & '
                         r'{pca_psnr_db} & {warm.sample_coverage}\,/\,{cold.sample_coverage} & '
                         r'{warm.guard_events}\,/\,{cold.guard_events} & {warm|ended}\,/\,{cold|ended} \\'),
    'occlusion_table': ('occlusion', r'\texttt{{kind}} & {hidden_fraction}\% & {warm.abp_hidden_psnr_db} & '
                        r'{cold.abp_hidden_psnr_db} & {mean_hidden_psnr_db} & {pca_hidden_psnr_db} & '
                        r'{warm.abp_observed_psnr_db} & {guard_events.warm}\,/\,{guard_events.cold} \\'),
}
DIGITS = dict(zip('0123456789', ['Zero', 'One', 'Two', 'Three', 'Four', 'Five', 'Six', 'Seven', 'Eight', 'Nine']))


def macro_name(*words):
    """A TeX macro name from words: letters only (digits spelled), camel case: ('arg', 'beta1') -> argBetaOne."""
    parts = [p for w in words for p in re.split(r'[^A-Za-z0-9]+', str(w)) if p]
    name = parts[0] + ''.join(p[:1].upper() + p[1:] for p in parts[1:])
    return ''.join(DIGITS.get(c, c) for c in name)


def json_path(out_dir, name):
    """output/metrics.json; every benchmark writes output/<name>/<name>.json."""
    return out_dir / 'metrics.json' if name == 'metrics' else out_dir / name / f'{name}.json'


def is_time(path):
    return any('seconds' in str(p) for p in path)


def tex(s):
    """A string as TeX: kept as it is when it is TeX already ($ or backslash), else its specials escaped."""
    return s if ('$' in s or '\\' in s) else re.sub(r'([_%&#])', r'\\\1', s)


def fmt(path, v):
    """One value as the report prints it; the format comes from its key path (FORMATS), else from its size."""
    if v is None or isinstance(v, bool):
        return {None: '--', True: 'yes', False: 'no'}[v]
    if isinstance(v, str):
        return tex(v)
    if isinstance(v, list):
        return ', '.join(fmt(path, x) for x in v)
    if isinstance(v, int):
        return str(v)
    key = '.'.join(map(str, path)).lower()
    spec = next((f for part, f in FORMATS if part in key), None)
    if spec == 'pct':
        return f'{100 * v:.0f}'
    if spec and spec.startswith('+'):
        return f'{round(v, 2) + 0.0:+.2f}'           # a rounded -0.00 is written +0.00
    if spec and spec.startswith('.') and spec.endswith('f'):   # a PSNR is written to 3 decimals: 23.1 is 23.100
        return f'{v:.{int(spec[1:-1]) if "psnr" in key else min(int(spec[1:-1]), digits_held(v))}f}'
    if spec:
        return f'{v:{spec}}'
    if abs(v) >= 1e6:                                # 3160705024.0 -> $3.2\times10^{9}$
        mantissa, exponent = f'{v:.1e}'.split('e')
        return f'${mantissa}\\times10^{{{int(exponent)}}}$'
    decimals = 0 if abs(v) >= 100 else 2 if abs(v) >= 0.095 else 3
    return f'{v:.{min(decimals, digits_held(v))}f}'


def digits_held(v):
    """The decimals a float holds as JSON stores it (3.0 -> 1, 0.0093 -> 4): a number never prints more."""
    return 6 if 'e' in repr(v) else max(1, len(repr(v).partition('.')[2]))


def record_name(r, i):
    """What a record of a list is called: its key, kind or folder (study and row), else its position from 1."""
    for keys in (('key',), ('kind',), ('folder', 'note'), ('study', 'row')):
        if keys[0] in r:
            return '_'.join(str(r[k]) for k in keys if k in r and r[k] != 'defaults')
    return str(i + 1)


def flatten(obj, path=()):
    """(key path, value) for every number, string and short list of them in a JSON document."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k not in SKIP or isinstance(v, int):             # a count of 'images' is a result; their names are not
                yield from flatten(v, path + (k,))
    elif isinstance(obj, list):
        if all(isinstance(v, dict) for v in obj):
            yield path + ('count',), len(obj)
            named = [record_name(r, i) for i, r in enumerate(obj)]
            if len(obj) <= 16 or not all(n.isdigit() for n in named):
                for name, r in zip(named, obj):
                    yield from flatten(r, path + (name,))
        elif len(obj) <= 4 and not any(isinstance(v, (dict, list)) for v in obj):
            yield path, obj
    else:
        yield path, obj


def macros(name, doc):
    """The lines of generated/<name>.tex: one \\newcommand per value; times end in `% time`."""
    lines, seen, means = [], {}, {}
    for path, v in flatten(doc):
        m = macro_name(name, *path)
        if m in seen:
            raise ValueError(f'{name}.json: {path} and {seen[m]} both make \\{m}')
        seen[m] = path
        text = fmt(path, v)
        if path[-1] == 'mean' and isinstance(v, float):
            means[path[:-1]] = len(text.partition('.')[2])
        elif path[-1] == 'std' and len(text.partition('.')[2]) > means.get(path[:-1], 9):   # mean +- std alike
            text = f'{v:.{means[path[:-1]]}f}'
        lines.append(f'\\newcommand{{\\{m}}}{{{text}}}' + ('% time' if is_time(path) else ''))
    return '\n'.join(lines) + '\n'


def lookup(r, dotted):
    for k in dotted.split('.'):
        if not isinstance(r, dict) or k not in r:
            return None
        r = r[k]
    return r


def table(doc, template):
    """One row of the template per record of the document (a list, or a dict's first list of records)."""
    rows = doc if isinstance(doc, list) else next(v for v in doc.values() if isinstance(v, list) and v and isinstance(v[0], dict))

    def row(i, r):
        def cell(m):
            field, _, filt = m.group(1).partition('|')
            if field == '#A':
                return chr(ord('A') + i)
            if field == '#1':
                return str(i + 1)
            v = lookup(r, field)
            if filt == 'sum' and v is not None:
                v = sum(v)
            if filt == 'ended' and v is not None:           # how a run ended: the guard gave up, it collapsed, or no
                return 'gave up' if v.get('gave_up') else fmt((), bool(v.get('collapsed')))
            return '--' if v is None else fmt(tuple(field.split('.')), v)
        return re.sub(r'\{([a-z_#A1][\w.#|]*)\}', cell, template)
    return '\n'.join(row(i, r) for i, r in enumerate(rows)) + '\n'


def make_all(out_dir, gen_dir):
    """Write generated/<name>.tex for each JSON that exists, and its tables; returns {file name: text}."""
    gen_dir.mkdir(parents=True, exist_ok=True)
    made = {}
    for name in SOURCES:
        path = json_path(out_dir, name)
        if not path.exists():
            print(f'make_tex.py: note: {path} is missing; generated/{name}.tex not written', file=sys.stderr)
            continue
        doc = json.loads(path.read_text())
        made[f'{name}.tex'] = macros(macro_name(name), doc)
        for tname, (source, template) in TABLES.items():
            if source == name:
                made[f'{tname}.tex'] = table(doc, template)
    for fname, text in made.items():
        tmp = gen_dir / f'.tmp-{fname}'
        tmp.write_text(text)
        tmp.replace(gen_dir / fname)
    return made


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--out_dir', default=str(ROOT / 'output'), help='where the runs wrote their JSON (default: output/)')
    p.add_argument('--gen_dir', default=str(ROOT / 'report' / 'generated'),
                   help='where the .tex files go (default: report/generated/)')
    a = p.parse_args()
    made = make_all(Path(a.out_dir), Path(a.gen_dir))
    print(f"wrote {', '.join(made)} in {a.gen_dir}")


if __name__ == '__main__':
    main()
