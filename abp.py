"""Alternating back-propagation (ABP) for a ConvNet generator with a 2-D latent z.

Han, Lu, Zhu, Wu, "Alternating Back-Propagation for Generator Network", AAAI 2017; Computer Vision I, Project 5
(equations numbered as in the handout).

    python abp.py                           # the images in data/: warm + cold, every figure, output/metrics.json
    python abp.py --start warm              # one mode: all of it in output/warm/
    python abp.py --resume                  # continue runs stopped by Ctrl-C
    python abp.py --img_dir BIG_FOLDER      # any number of images, in mini-batches of 64

The model (eq. 1): I = g(z; theta) + eps, z ~ N(0, I_d), eps ~ N(0, sigma^2 I_D). Each epoch visits every image
once, a mini-batch at a time: (1) Langevin dynamics on the batch's z (eq. 6), (2) one Adam step on theta with z
fixed (eq. 7). Warm start continues each image's chain from its z of the previous epoch. Cold start keeps no z:
each chain starts at one of the batch's prior draws (a scrambled Sobol sequence) resampled by the image's
likelihood, or (`--cold_proposals 0`, the handout's cold start) at a prior draw of its own. Each image's step is
capped at its posterior's width, and a guard restores the last good state if training collapses.
"""
import argparse
import contextlib
import copy
import ctypes
import dataclasses
import hashlib
import io
import json
import logging
import math
import multiprocessing
import os
import random
import re
import signal
import sys
import time
import traceback
from pathlib import Path

# MKL, torch's BLAS on x86, caches the buffers of its matrix products, and on a large folder's metrics that cache
# grows by gigabytes. It reads this once, when torch loads it.
os.environ.setdefault('MKL_DISABLE_FAST_MM', '1')

import matplotlib  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402  (the object API: no pyplot, so importing abp sets no backend)
from matplotlib.offsetbox import AnnotationBbox, OffsetImage  # noqa: E402
from matplotlib.patches import Circle, Rectangle  # noqa: E402
from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter  # noqa: E402
from PIL import Image, ImageDraw, ImageOps  # noqa: E402
from tqdm import tqdm  # noqa: E402
# torchvision is imported where it is used: it takes longer to import than torch, and `import abp`, --help
# and a bad flag need none of it.

# -----------------------------------------------------------------------------
# config

device = 'cuda' if torch.cuda.is_available() else 'cpu'

GEN_WIDTH, GEN_MAX_CH = 16, 256   # generator channels at 64 px, doubling per halving of the side, capped
CURVATURE_EVERY = 10   # epochs between two measurements of the posterior widths behind the step cap
N_EVAL_SAMPLES = 100   # prior samples behind sample_nn_psnr_db_median / sample_coverage
N_FIG_SAMPLES = 36     # of those, how many {epoch}_sampled.png shows (6 x 6)
N_SHOWN = 12           # images in the reconstruction panels and the training GIF
N_MAPPED = 200         # codes drawn in the latent map
EVAL_CHUNK = 64        # images converted to float at a time for the metrics
PCA_FIT = 128          # images behind the PCA(2) baseline's fit, at most
INTERP_MARGIN = 1.1    # d_i = INTERP_MARGIN * max_j |z_ji|: the square holds every inferred z
GUARD_DROP_DB = 6.0    # the guard calls an epoch sick when its PSNR is this far below the run's best
GUARD_KEPT_GAIN = 0.25  # ... and has kept less than this share of its gain in dB over epoch 1
GUARD_PATIENCE = 2     # ... for this many epochs in a row: a collapse (a fit near 40 dB may dip and heal itself)
GUARD_GOOD_DB = 1.5    # ... and keeps a state to return to when it is within this of the best
GUARD_EVERY = 10       # epochs between two kept states
GUARD_MAX_EVENTS = 5   # recoveries before the run stops
GUARD_RULE = dict(drop_db=GUARD_DROP_DB, kept_gain=GUARD_KEPT_GAIN, patience=GUARD_PATIENCE)  # in every summary
PHOTO_JPEG = dict(quality=90, subsampling=0)   # figures of photographs: 4:4:4 JPEG, ~37 dB to the lossless file
MODE_COLOURS = {'warm': 'tab:blue', 'cold': 'tab:orange'}   # one colour per mode in every figure


class UserError(Exception):
    """A problem with the user's input: reported as one line, never a traceback."""


class Diverged(Exception):
    """Training became non-finite or collapsed, and the guard's recoveries did not help."""


class Interrupted(Exception):
    """Ctrl-C or SIGTERM arrived; a checkpoint has been written."""


def bounded(kind, low=0.0, high=math.inf, low_ok=False):
    """An argparse type: a finite number of `kind` (int or float) in (low, high] ([low, high] with low_ok)."""
    def check(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'a whole number' if kind is int else 'a number'}, got {text!r}")
        if not (math.isfinite(value) and (value >= low if low_ok else value > low) and value <= high):
            raise argparse.ArgumentTypeError(f"must be {'>=' if low_ok else '>'} {low:g}"
                                             + (f" and <= {high:g}" if high < math.inf else '') + f", got {text!r}")
        return value
    return check


def occlusion_kind(text):
    """argparse type for --occlude: 'none', 'pixels:P' with 0 < P < 1, 'block:B' or 'blocks:N:B' with N, B >= 1."""
    kind, *nums = text.strip().lower().split(':')
    try:
        values = [t(v) for t, v in zip({'none': (), 'pixels': (float,), 'block': (int,), 'blocks': (int, int)}[kind],
                                      nums, strict=True)]
    except (KeyError, ValueError):
        raise argparse.ArgumentTypeError(f"{text!r}: use none, pixels:P (e.g. pixels:0.7), block:B (e.g. block:32) "
                                         f"or blocks:N:B (e.g. blocks:4:16)")
    if not (0 < values[0] < 1 if kind == 'pixels' else all(v >= 1 for v in values)):
        raise argparse.ArgumentTypeError(f"{text!r}: " + ('the fraction P of hidden pixels must be between 0 and 1'
                                                          if kind == 'pixels' else 'N and B must be whole numbers >= 1'))
    return ':'.join([kind, *map(str, values)])


def build_parser():
    """Every flag and its default: the one place a default is written. [brackets]: the course's default."""
    pos_int, pos, unit, non_neg = bounded(int), bounded(float), bounded(float, high=1.0), bounded(float, low_ok=True)
    p = argparse.ArgumentParser(description='Alternating back-propagation on a folder of images '
                                '(the course\'s flags keep their names; the course\'s defaults in brackets).',
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument('--start', default='both', choices=['warm', 'cold', 'both'],
                   help='warm: z persists across epochs; cold: z re-inferred from the prior each epoch; '
                        'both: the two, and the figures that compare them [warm]')
    p.add_argument('--img_dir', default='data', help='folder of training images [images/]')
    p.add_argument('--out_dir', default='output', help='where run directories and comparisons go')
    p.add_argument('--resume', action='store_true', help='continue from OUT_DIR/<mode>/checkpoint.pt')
    p.add_argument('--seed', type=int, default=1, help='random seed [1]')
    p.add_argument('--nz', type=pos_int, default=2, help='latent dimension d [2]')
    p.add_argument('--img_size', type=pos_int, default=128, help='image side, a power of two >= 8 [128]')
    p.add_argument('--batch_size', type=pos_int, default=64,
                   help='images per mini-batch, one theta step each, so memory stays bounded on any folder '
                        '[the whole folder, 11 images, as one batch]')
    p.add_argument('--langevin_step_size', type=pos, default=0.03,
                   help='s of eq. 6, warm start (at most; see --langevin_step_cap) [0.05]')
    p.add_argument('--langevin_num_steps', type=pos_int, default=2,
                   help='Langevin steps per epoch, warm start: chains persist, so few suffice [120]')
    p.add_argument('--cold_langevin_step_size', type=pos, default=0.02, help='s of eq. 6, cold start [0.05]')
    p.add_argument('--cold_langevin_num_steps', type=pos_int, default=1,
                   help='Langevin steps per epoch, cold start, from the resampled proposal [120]')
    p.add_argument('--cold_proposals', type=bounded(int, low_ok=True), default=32,
                   help='cold start: prior draws per mini-batch, at least (two per image of the folder, at most eight '
                        'per image of the batch, when that is more), each image resampling one by its likelihood; '
                        '0 = one prior draw per image [0: the handout\'s cold start]')
    p.add_argument('--langevin_step_cap', type=non_neg, default=1.0,
                   help='cap each image\'s step s at this many posterior widths 1/sqrt(curvature of eq. 3 in z), '
                        'so a chain never overshoots however sharp g gets; 0 = off [0]')
    p.add_argument('--langevin_noise_scale', type=non_neg, default=1.0,
                   help='noise is scale * s * e: eq. 6 has 1, 0 = gradient descent [the skeleton\'s 4]')
    p.add_argument('--standardize_z', action=argparse.BooleanOptionalAction, default=None,
                   help='re-express z with mean 0, std 1 after each batch\'s chains, absorbing the map into the first '
                        'layer so g(z) is unchanged; unset: on for warm, off for cold [off]')
    p.add_argument('--mse_sigma', type=pos, default=2.0, help='sigma of eq. 3: 2 broadens the posterior [1]')
    p.add_argument('--prior_sigma', type=pos, default=1.0, help='std of the prior of z [1]')
    p.add_argument('--lr', type=pos, default=5e-3, help='Adam learning rate: few steps per epoch learn faster [4e-4]')
    p.add_argument('--beta1', type=unit, default=0.5, help='Adam beta1 [0.5]')
    p.add_argument('--beta2', type=unit, default=0.999, help='Adam beta2 [0.999]')
    p.add_argument('--gamma', type=unit, default=0.999,
                   help='per-epoch lr decay: 0.999 leaves 13%% of lr at epoch 2000; 0.996 left 1.8%% at 1000 [0.996]')
    p.add_argument('--n_epochs', type=pos_int, default=2000, help='epochs per start mode [2000]')
    p.add_argument('--ninterp', type=pos_int, default=12, help='interpolation panel side [12]')
    p.add_argument('--n_log', type=pos_int, default=100, help='log every n epochs [100]')
    p.add_argument('--n_plot', type=pos_int, default=1000,
                   help='figures + checkpoint every n epochs, and at the middle and the end [200]')
    p.add_argument('--n_stats', type=pos_int, default=20, help='loss curve point every n epochs [100]')
    p.add_argument('--occlude', type=occlusion_kind, default='none',
                   help='hide part of every training image (fixed masks from --seed): none, pixels:P (a fraction P '
                        'of pixels), block:B (one BxB square), blocks:N:B (N squares); training sees only the rest')
    return p


def with_defaults(args):
    """args with every flag it lacks filled in from the defaults (e.g. an autograder's bare Namespace)."""
    return argparse.Namespace(**{**vars(build_parser().parse_args([])), **vars(args)})


def parse_args(argv=None):
    """Flags -> argparse.Namespace (course names kept; see --help). Rejects combinations no run can use."""
    parser = build_parser()
    args = parser.parse_args(argv)
    s, out = args.img_size, Path(args.out_dir)
    if s < 8 or s & (s - 1):
        parser.error(f"--img_size {s}: the generator doubles 4x4 maps, so use a power of two >= 8 (e.g. 64, 128)")
    if args.occlude.startswith('block') and int(args.occlude.split(':')[-1]) >= s:
        parser.error(f"--occlude {args.occlude}: the square must be smaller than the images (--img_size {s})")
    if out.exists() and not out.is_dir():
        parser.error(f"--out_dir {out}: is a file; name a folder")
    parent = next((p for p in [out, *out.parents] if p.exists()), Path('.'))
    if not os.access(parent, os.W_OK):
        parser.error(f"--out_dir {out}: {parent} is not writable; choose another folder")
    return args


def set_seed(seed):
    """Seed PYTHONHASHSEED, random, numpy, torch (+cuda); returns seed."""
    os.environ['PYTHONHASHSEED'] = str(seed)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)
    return seed


def set_cuda():
    """cuDNN settings for reproducible runs, and full fp32 (no TF32) in convolutions and matrix products: the step
    cap's finite differences (posterior_width, h = 1e-3) drown in TF32's 10-bit mantissa; returns None."""
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False


def get_logger(exp_dir, fresh=False):
    """A logging.Logger writing to stdout and to exp_dir/output.log (appended to; started afresh with fresh)."""
    Path(exp_dir).mkdir(parents=True, exist_ok=True)
    logger = logging.getLogger(f'abp.{Path(exp_dir).resolve()}')
    logger.setLevel(logging.INFO)
    logger.propagate = False
    for h in list(logger.handlers):
        logger.removeHandler(h)
        h.close()
    log_file = logging.FileHandler(Path(exp_dir) / 'output.log', 'w' if fresh else 'a')
    for h in (logging.StreamHandler(sys.stdout), log_file):
        h.setFormatter(logging.Formatter('%(asctime)s %(message)s', '%H:%M:%S'))
        logger.addHandler(h)
    return logger


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside `path`; rename it over `path` only if the write succeeded."""
    tmp = Path(path).with_name(f'.tmp-{Path(path).name}')   # same folder and suffix, so writers infer the format
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json(obj, path):
    """Write obj as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2) + '\n')


# -----------------------------------------------------------------------------
# data

def list_images(img_dir):
    """Sorted image files in img_dir (by extension Pillow knows, any case); hidden files skipped."""
    if not Path(img_dir).is_dir():
        what = 'is a file, not a folder' if Path(img_dir).exists() else 'does not exist'
        raise UserError(f"image folder {img_dir} {what}: put the course images "
                        f"(lion_1..5.jpg, tiger_1..6.jpg) there or pass --img_dir FOLDER")
    exts = {e.lower() for e in Image.registered_extensions()}
    return sorted(p for p in Path(img_dir).iterdir()
                  if p.is_file() and not p.name.startswith('.') and p.suffix.lower() in exts)


def to_rgb(img):
    """Any Pillow image -> 8-bit RGB: EXIF rotation applied, alpha composited on white, 16-bit rescaled."""
    img = ImageOps.exif_transpose(img)
    if img.mode in ('I', 'I;16', 'I;16B', 'I;16L', 'I;16N', 'F'):
        a = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith('I;16') or a.max() > 255 else 255.0
        img = Image.fromarray(np.clip(a / top * 255.0 + 0.5, 0, 255).astype(np.uint8), 'L')
    if img.mode in ('RGBA', 'LA', 'PA', 'RGBa', 'La') or (img.mode == 'P' and 'transparency' in img.info):
        rgba = img.convert('RGBA')
        img = Image.alpha_composite(Image.new('RGBA', rgba.size, (255, 255, 255, 255)), rgba)
    return img.convert('RGB')


def default_transform(img_size, as_uint8=False):
    """Shorter side -> img_size, centre crop to a square, tensor in [-1, 1] (or uint8 with as_uint8)."""
    from torchvision import transforms
    last = [transforms.PILToTensor()] if as_uint8 else [transforms.ToTensor(), transforms.Normalize((0.5,) * 3, (0.5,) * 3)]
    return transforms.Compose([transforms.Resize(img_size, interpolation=transforms.InterpolationMode.BICUBIC,
                                                 antialias=True), transforms.CenterCrop(img_size), *last])


def load_images(img_dir, transform, logger=None):
    """(tensor (N, 3, H, W) on the CPU, file names); unreadable files skipped with a warning. The tensor is filled
    in place, never stacked from a list: a large folder is held once, not twice."""
    paths, out, names = list_images(img_dir), None, []
    for path in paths:
        try:
            with Image.open(path) as img:
                t = transform(to_rgb(img))
        except Exception as e:  # Pillow raises many kinds for truncated or foreign files
            (logger.warning if logger else print)(f"warning: skipping {path}: not a readable image "
                                                  f"({type(e).__name__}: {e})")
            continue
        out = torch.empty(len(paths), *t.shape, dtype=t.dtype) if out is None else out
        if t.shape != out.shape[1:]:
            raise UserError(f"{path.name} comes out of the transform {tuple(t.shape)}, the first image "
                            f"{tuple(out.shape[1:])}: give the transform one size, e.g. Resize((128, 128))")
        out[len(names)] = t if t.dtype == torch.uint8 else t.clamp(-1, 1)
        names.append(path.name)
    if not names:
        raise UserError(f"no readable images in {img_dir}: put the course images "
                        f"(lion_1..5.jpg, tiger_1..6.jpg) or any .jpg/.png files there, or pass --img_dir FOLDER")
    return out[:len(names)], names


def load_img_tensors(img_dir, transform, device):
    """Every image in img_dir through transform -> tensor (N, 3, H, W) on device."""
    return load_images(img_dir, transform)[0].to(device)


def to_float(u8):
    """uint8 images -> float in [-1, 1] on the device, channels-last (faster convolutions on a CPU):
    the arithmetic of torchvision's ToTensor and Normalize(0.5, 0.5), so the values are the same."""
    return u8.to(device).float().div(255).sub(0.5).div(0.5).clamp(-1, 1).contiguous(memory_format=torch.channels_last)


def to_unit(x):
    """[-1, 1] -> [0, 1]."""
    return (x.clamp(-1, 1) + 1) / 2


def psnr(a, b, mask=None):
    """PSNR in dB per image of a, b (N, 3, H, W) in [-1, 1], measured in [0, 1]; with a mask (N, 1, H, W),
    over the pixels where it is > 0 only."""
    se = (to_unit(a) - to_unit(b)).pow(2)
    if mask is None:
        mse = se.flatten(1).mean(1)
    else:
        m = (mask > 0).expand_as(se)
        mse = torch.where(m, se, torch.zeros((), dtype=se.dtype, device=se.device)).flatten(1).sum(1) \
            / m.flatten(1).sum(1).clamp_min(1)
    return 10 * torch.log10(1.0 / mse.clamp_min(1e-10))


def shown_images(n, most=N_SHOWN):
    """Indices of at most `most` of n images, evenly spread: the comparison strips stay readable."""
    return list(range(n)) if n <= most else np.linspace(0, n - 1, most).round().astype(int).tolist()


def to_uint8(img, small=False):
    """(N, 3, H, W) in [-1, 1] -> uint8 on the CPU; with small, at half size from 64 px up (small GIFs)."""
    img = img.detach().float().cpu()
    if small and img.shape[-1] >= 64:
        img = nn.functional.interpolate(img, scale_factor=0.5, mode='area')
    return (to_unit(img) * 255 + 0.5).to(torch.uint8)


@dataclasses.dataclass
class Data:
    """The training images, decoded once and held as uint8 (a quarter of float's memory), and their names."""
    images: torch.Tensor   # (N, 3, H, W) uint8 on the CPU
    names: list

    def __len__(self):
        return len(self.names)

    def batch(self, idx):
        """Images idx (all for None) as float on the device, as the generator sees them."""
        return to_float(self.images if idx is None else self.images[idx])

    def fingerprint(self):
        """A hash of the images and their names: a checkpoint remembers what it was trained on."""
        h = hashlib.sha1('\n'.join(self.names).encode())
        h.update(self.images.contiguous().numpy())
        return h.hexdigest()

    def chunks(self):
        """(indices, float images) over all images, EVAL_CHUNK at a time: metrics never hold all in float."""
        for i in range(0, len(self), EVAL_CHUNK):
            idx = torch.arange(i, min(i + EVAL_CHUNK, len(self)))
            yield idx, self.batch(None if len(self) <= EVAL_CHUNK else idx)
            release_memory()


def release_memory():
    """Return the memory the process has freed to the system: glibc's malloc keeps freed buffers of up to 32 MB in
    its heap, and a loop over a large folder's chunks of such buffers fragments it."""
    libc = ctypes.CDLL(None) if sys.platform.startswith('linux') else None
    if hasattr(libc, 'malloc_trim'):
        libc.malloc_trim(0)


def load_data(args, logger=None):
    """The images of args.img_dir at args.img_size, as Data."""
    list_images(args.img_dir)           # a missing folder fails in one line before torchvision is even imported
    return Data(*load_images(args.img_dir, default_transform(args.img_size, as_uint8=True), logger))


def make_masks(kind, n, size, seed):
    """Masks (n, 1, size, size), True = observed, for --occlude `kind`; None for 'none'. From their own generator
    seeded by `seed`, so they never disturb training's random numbers."""
    name, *nums = kind.split(':')
    if name == 'none':
        return None
    rng = torch.Generator().manual_seed(seed)
    masks = torch.ones(n, 1, size, size, dtype=torch.bool)
    if name == 'pixels':        # salt-and-pepper: each pixel hidden with chance P; drawn in chunks (the same draws)
        for i in range(0, n, EVAL_CHUNK):
            chunk = masks[i:i + EVAL_CHUNK]
            chunk[:] = torch.rand(len(chunk), 1, size, size, generator=rng) >= float(nums[0])
        return masks
    count, side = (1, int(nums[0])) if name == 'block' else map(int, nums)
    for i in range(n):
        for y, x in torch.randint(0, size - side + 1, (count, 2), generator=rng).tolist():
            masks[i, :, y:y + side, x:x + side] = False
    return masks


def batches(n, batch_size, seed, epoch):
    """One epoch's mini-batches: index tensors covering 0..n-1 once, near-equal and at most batch_size each, in an
    order seeded by (seed, epoch), so a resumed run draws the same; [None] (all, in order) when one batch holds all."""
    if n <= batch_size:
        return [None]
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch))
    return list(torch.tensor_split(order, math.ceil(n / batch_size)))


def rows_of(t, idx):
    """The rows idx of t, a mini-batch's share of a per-image tensor (all of t for idx None; None stays None)."""
    return t if t is None or idx is None else t[idx]


# -----------------------------------------------------------------------------
# generator g(z; theta), eq. 2: z^(l-1) = g_l(W_l z^(l) + b_l)

class GenNet(nn.Module):
    """Generator: z (N, nz) -> images (N, 3, img_size, img_size) in [-1, 1].

    With the defaults (img_size 128) the stages are
        z (nz) -> fc -> 256 x 4 x 4 -> 128 x 8 x 8 -> 64 x 16 x 16 -> 32 x 32 x 32 -> 16 x 64 x 64 -> 3 x 128 x 128
    Each ConvTranspose2d(4, stride 2) doubles the side and halves the channels, so every stage costs about the
    same FLOPs; the last emits RGB through tanh. No BatchNorm: it would couple the images of a batch, and
    every Langevin pass would disturb its statistics."""

    def __init__(self, nz=2, img_size=128, width=GEN_WIDTH, max_ch=GEN_MAX_CH):
        super().__init__()
        self.nz, self.img_size = nz, img_size
        sides = [4 * 2 ** k for k in range(img_size.bit_length() - 3)]         # 4, 8, ..., img_size / 2
        ch = [max(1, min(max_ch, width * 64 // r)) for r in sides]               # 256, 128, 64, 32, 16
        self.fc = nn.Linear(nz, ch[0] * 16)                                      # z -> ch[0] x 4 x 4
        self.net = nn.Sequential(
            nn.Unflatten(1, (ch[0], 4, 4)), nn.LeakyReLU(0.2),
            *[m for cin, cout in zip(ch, ch[1:]) for m in (nn.ConvTranspose2d(cin, cout, 4, 2, 1), nn.LeakyReLU(0.2))],
            nn.ConvTranspose2d(ch[-1], 3, 4, 2, 1), nn.Tanh())                   # img_size / 2 -> img_size, RGB

    def forward(self, z):
        return self.net(self.fc(z))


def weights_init_xavier(m):
    """Xavier-normal weights, zero biases for Linear/Conv layers; use as module.apply(...); returns None."""
    if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.xavier_normal_(m.weight)
        if m.bias is not None:
            nn.init.zeros_(m.bias)


@torch.no_grad()
def generate(gen, z, chunk=64):
    """g(z) in chunks (figures and metrics never need gradients)."""
    return torch.cat([gen(z[i:i + chunk]) for i in range(0, len(z), chunk)])


def sample_gaussian_prior(batch_size, nz, sig=1, dev=None):
    """z ~ sig * N(0, I): tensor (batch_size, nz) on dev (default: the module device)."""
    return sig * torch.randn(batch_size, nz, device=dev or device)


# -----------------------------------------------------------------------------
# inference: Langevin dynamics on z (eq. 6)

def sq_error(x_hat, x, mask=None):
    """||I - g(z)||^2 per image (N,), summed over the observed pixels only when a mask (N, 1, H, W) is given."""
    diff = x - x_hat
    if mask is not None:      # where, not a product: whatever lies in the holes (even NaN) never enters
        diff = torch.where(mask > 0, diff, torch.zeros((), dtype=diff.dtype, device=diff.device))
    return diff.pow(2).flatten(1).sum(1)


def energy(x_hat, x, z, mse_sigma, prior_sigma, mask=None):
    """-log p(z, I; theta) + const per image (eq. 3): ||I - g(z)||^2 / (2 sigma^2) + ||z||^2 / (2 prior_sigma^2)."""
    return sq_error(x_hat, x, mask) / (2 * mse_sigma ** 2) + z.pow(2).sum(1) / (2 * prior_sigma ** 2)


def langevin(gen, z, x, chain, s, mask=None, trace=None):
    """chain.steps Langevin steps (eq. 6) from z (N, nz) given x (N, 3, H, W), step s (a number or (N, 1)) ->
    new z, detached. Gradients are taken for z only (autograd.grad), so theta's .grad is never touched. If
    `trace` is a list, one dict per step is appended: mean energy, |z| and step."""
    noise = chain.noise * s                                 # eq. 6 has 1 * s; the course skeleton 4 * s
    z = z.detach().clone()
    for _ in range(chain.steps):
        z.requires_grad_(True)
        e = energy(gen(z), x, z, chain.sigma, chain.prior_sigma, mask)
        grad = torch.autograd.grad(e.sum(), z)[0]                    # = -d/dz log p(z, I; theta)
        z_new = z.detach() - 0.5 * s * s * grad + noise * torch.randn_like(z)   # eq. 6
        if trace is not None:
            trace.append({'energy': e.mean().item(), 'z_norm': z.detach().norm(dim=1).mean().item(),
                          'step': (z_new - z.detach()).norm(dim=1).mean().item()})
        z = z_new
    return z.detach()


class Model(nn.Module):
    """Model(args): generator Gnet + Langevin inference; forward(z) -> Gnet(z)."""

    def __init__(self, args):
        super().__init__()
        self.args = with_defaults(args)
        self.Gnet = GenNet(nz=self.args.nz, img_size=self.args.img_size)
        self.Gnet.apply(weights_init_xavier)
        self.Gnet.to(memory_format=torch.channels_last)     # faster convolutions on the CPU, the same maths

    def sample_langevin(self, z, x, mask=None, trace=None):
        """Langevin (eq. 6) from z (N, nz) given x (N, 3, H, W): args.langevin_num_steps steps of
        args.langevin_step_size (uncapped) -> new z (N, nz), detached. The course's method; training runs
        langevin with its mode's Chain and capped steps (abp_epoch)."""
        chain = chain_for(self.args, 'warm')
        return langevin(self.Gnet, z, x, chain, chain.step_size, mask, trace)

    def forward(self, z):
        return self.Gnet(z)


@torch.no_grad()
def posterior_width(gen, z, mse_sigma, prior_sigma, mask=None, h=1e-3):
    """Per image, the posterior's std along its narrowest direction at z, (N, 1): 1 / sqrt(lambda_max), the
    largest eigenvalue of eq. 3's curvature in z, J^T J / sigma^2 + I / prior_sigma^2 (Gauss-Newton), with
    J = dg/dz from finite differences (nz + 1 generator passes).

    Why: without its noise, eq. 6 is gradient descent with rate s^2/2, stable only while s^2/2 * lambda_max < 2,
    i.e. s < 2 * width. As g separates the images, J grows and a fixed s overshoots; the overshoot spreads z,
    and the warm standardisation turns that spread into a still larger J, until training collapses."""
    n, nz = z.shape
    probes = torch.cat([z] + [z + h * e for e in torch.eye(nz, device=z.device, dtype=z.dtype)])
    g = generate(gen, probes).flatten(1).double()
    jac = torch.stack([(g[(k + 1) * n:(k + 2) * n] - g[:n]) / h for k in range(nz)], 2)    # (N, D, nz)
    if mask is not None:                                    # only observed pixels shape the posterior
        jac = jac * mask.expand(n, 3, *mask.shape[2:]).flatten(1).unsqueeze(2).to(jac.dtype)
    lam = torch.linalg.eigvalsh(jac.transpose(1, 2) @ jac)[:, -1] / mse_sigma ** 2 + 1 / prior_sigma ** 2
    return lam.rsqrt().float().unsqueeze(1)


# -----------------------------------------------------------------------------
# warm against cold start: each mode's recipe (chain_for, from its own flags), warm's re-standardisation of z,
# cold's prior proposals, and where each epoch's chains start (chain_start). The loop runs whichever Chain it is
# given: it reads the mode only through the Chain's fields

@dataclasses.dataclass(frozen=True)
class Chain:
    """A start mode's whole inference recipe (eq. 6), resolved from the flags once (chain_for): the loop runs it,
    its messages name it and metrics.json reports it."""
    mode: str           # 'warm' or 'cold'
    steps: int          # Langevin steps per epoch
    step_size: float    # s of eq. 6, before the per-image cap
    cap: float          # s is at most cap posterior widths (0 = no cap)
    noise: float        # the noise is noise * s * e (eq. 6: 1)
    sigma: float        # sigma of eq. 3
    prior_sigma: float  # std of the prior of z
    standardize: bool   # re-standardise z after the chains (standardize_latents)
    proposals: int      # cold: prior draws per batch, at least (0 = one prior draw per image)

    @property
    def init(self):
        """Where each epoch's chains start: 'warm' (the image's current z), 'sir' or 'prior'."""
        return 'warm' if self.mode == 'warm' else 'sir' if self.proposals > 0 else 'prior'

    def step(self, width, scale=1.0):
        """s of eq. 6 per image: step_size, at most cap * width (N, 1), times the guard's scale."""
        s = self.step_size if self.cap <= 0 or width is None else torch.clamp(self.cap * width, max=self.step_size)
        return s * scale

    def n_proposals(self, batch, n_images):
        """Prior draws for a batch of `batch` of the folder's n_images: at least `proposals`; two per image of the
        folder, so that each image's code keeps a draw near it however many images share the prior, but at most
        eight per image of the batch (their cost); rounded up to a power of two, where Sobol draws are balanced."""
        return max(self.proposals, 1 << max(0, min(2 * n_images, 8 * batch) - 1).bit_length())


def chain_for(args, mode):
    """The Chain of `mode` ('warm' or 'cold') from the flags in args: the two recipes side by side."""
    same = dict(cap=args.langevin_step_cap, noise=args.langevin_noise_scale, sigma=args.mse_sigma,
                prior_sigma=args.prior_sigma)
    if mode == 'warm':      # each chain goes on from the image's z of the last epoch: a few small steps track it
        return Chain('warm', args.langevin_num_steps, args.langevin_step_size, **same, proposals=0,
                     standardize=True if args.standardize_z is None else args.standardize_z)
    if mode == 'cold':      # each chain starts afresh from the prior, so its z is at the prior's scale already
        return Chain('cold', args.cold_langevin_num_steps, args.cold_langevin_step_size, **same,
                     proposals=args.cold_proposals, standardize=bool(args.standardize_z))
    raise ValueError(f"start mode must be 'warm' or 'cold', got {mode!r}")


@torch.no_grad()
def standardize_latents(gen, z):
    """Re-express z (N, nz) with mean 0 and std 1 per dimension, absorbing the affine map into the generator's
    first layer: g(z), and with it eq. 3's data term, is unchanged exactly; the prior term is not (it pulls z
    towards N(0, I)'s scale). Returns the new z.

    Why: the data term is invariant to z -> c z + m (the first layer can undo it) and the prior's pull per
    Langevin step, s^2/2 * z, is far weaker than the likelihood's, so the scale of the inferred z drifts and
    samples from N(0, I) miss the images' z."""
    if z.shape[0] < 2:
        return z
    m, c = z.mean(0), z.std(0).clamp_min(1e-3)
    gen.fc.bias += gen.fc.weight @ m
    gen.fc.weight *= c
    return (z - m) / c


def sq_dists(x, g, mask=None):
    """||x_i - g_m||^2 between every image and every generated image, (N, M); with a mask, over image i's
    observed pixels: sum m x^2 - 2 (m x) . g + m . g^2."""
    g = g.flatten(1)
    g2 = g.pow(2).sum(1)                                    # (M,): sum_p g_mp^2
    if mask is not None:
        g2 = mask.expand_as(x).flatten(1).to(g.dtype) @ g.pow(2).T      # (N, M): over image i's observed pixels
        x = torch.where(mask > 0, x, torch.zeros((), dtype=x.dtype, device=x.device))
    x = x.flatten(1)
    return (x.pow(2).sum(1, keepdim=True) - 2 * x @ g.T + g2).clamp_min(0)


def quasi_prior(n, nz, sig=1, dev=None):
    """n draws (n, nz) from sig * N(0, I) that cover it evenly: a scrambled Sobol sequence (seeded from torch's
    generator) through the normal quantile. Each draw alone is distributed as the prior; together, for n a power
    of two and nz = 2, every dyadic box of prior mass 1/n (in quantile coordinates) holds exactly one of them. On dev
    (default: the module device)."""
    seed = int(torch.randint(0, 2 ** 31 - 1, ()))
    u = torch.quasirandom.SobolEngine(nz, scramble=True, seed=seed).draw(n, dtype=torch.float64)
    return (sig * torch.special.ndtri(u.clamp(1e-9, 1 - 1e-9))).float().to(dev or device)


@torch.no_grad()
def prior_proposals(gen, x, n_proposals, mse_sigma, prior_sigma, mask=None):
    """Cold-start chain starts (N, nz): M = n_proposals prior draws (quasi_prior) generated in one pass shared by
    the batch; image i takes draw m with probability proportional to p(I_i | z_m) = N(I_i; g(z_m), sigma^2 I)
    (eq. 1): sampling-importance-resampling with the prior as the proposal, whose term of eq. 3 cancels."""
    zeta = quasi_prior(n_proposals, gen.nz, prior_sigma, x.device)
    log_w = (-sq_dists(x, generate(gen, zeta), mask) / (2 * mse_sigma ** 2)).nan_to_num(nan=-math.inf)
    # a sick generator (non-finite images) leaves nothing to weigh by: draw uniformly, and the guard sees the loss
    log_w = torch.where(torch.isfinite(log_w).any(1, keepdim=True), log_w, torch.zeros((), device=log_w.device))
    return zeta[torch.multinomial(torch.softmax(log_w, 1), 1).squeeze(1)]


def chain_start(chain, gen, z, x, mask=None, n_images=None):
    """Where a batch's chains start: warm -> the images' current z; cold -> prior proposals resampled by
    likelihood (Chain.n_proposals for a batch of the folder's n_images, default the batch's), or (proposals 0)
    one prior draw per image."""
    if chain.init == 'warm':        # warm: the chain persists
        return z
    if chain.init == 'prior':       # cold, the handout's: one prior draw per image
        return sample_gaussian_prior(len(x), gen.nz, chain.prior_sigma)
    return prior_proposals(gen, x, chain.n_proposals(len(x), n_images or len(x)), chain.sigma, chain.prior_sigma, mask)


# -----------------------------------------------------------------------------
# learning: one gradient step on theta given the inferred z (eq. 7)

def recon_loss(x_hat, x, mse_sigma, mask=None):
    """Loss for theta: mean over images of ||I - g(z)||^2 / (2 sigma^2), eq. 3's data term; its gradient is eq. 7."""
    return sq_error(x_hat, x, mask).mean() / (2 * mse_sigma ** 2)


def learn_step(model, optimizer, z, x, mse_sigma, mask=None):
    """One Adam step on theta with z fixed; returns (loss tensor, x_hat detached)."""
    x_hat = model(z.detach())
    loss = recon_loss(x_hat, x, mse_sigma, mask)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach(), x_hat.detach()


# -----------------------------------------------------------------------------
# training: the state, the guard, the loop

@dataclasses.dataclass
class State:
    """Everything training changes, and everything a checkpoint holds."""
    model: Model
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    z: torch.Tensor                    # (N, nz) every image's code: warm's persistent chains, cold's last epoch
    z_eval: torch.Tensor               # fixed prior samples for the sample metrics and figures
    mask: torch.Tensor = None          # (N, 1, H, W) bool, True = observed (--occlude)
    width: torch.Tensor = None         # (N, 1) posterior widths behind the step cap, measured every CURVATURE_EVERY
    psnr: torch.Tensor = None          # (N,) the last epoch's reconstruction PSNR, whole images
    psnr_parts: torch.Tensor = None    # (N, 2) with --occlude: that PSNR over the observed and the hidden pixels
    recon: torch.Tensor = None         # the last epoch's g(z) of the shown images (shown_images)
    data_id: str = ''                  # the images trained on (Data.fingerprint): --resume checks it
    epoch: int = 0
    seconds: float = 0.0
    stats: dict = dataclasses.field(default_factory=lambda: {'epoch': [], 'loss': [], 'psnr_db': []})
    snapshots: dict = dataclasses.field(default_factory=dict)   # epoch -> recon, for the comparison figure
    traces: dict = dataclasses.field(default_factory=dict)      # epoch -> Langevin trace, first and last epoch
    frames: dict = dataclasses.field(default_factory=dict)      # epoch -> uint8 recon, for training_<mode>.gif
    best_db: float = -math.inf         # the guard: best epoch PSNR so far,
    first_db: float = None             # the first epoch's,
    low_epochs: int = 0                # the epochs in a row that looked collapsed,
    events: list = dataclasses.field(default_factory=list)     # its recoveries,
    step_scale: float = 1.0            # its factor on the Langevin steps,
    good: dict = None                  # and the state it returns to


MODULES = ('model', 'optimizer', 'scheduler')   # saved through state_dict(); the rest of State as it is
ON_DEVICE = ('z', 'z_eval', 'width')            # State's tensors on the model's device; the others on the CPU


def new_state(args, n, dev=None):
    """A fresh State for n images on dev (default: the module's device): generator, Adam (eq. 7) with its decay,
    codes z drawn from the prior."""
    set_seed(args.seed)
    dev = dev or device
    model = Model(args).to(dev)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr, betas=(args.beta1, args.beta2))
    state = State(model, optimizer, torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=args.gamma),
                  z=sample_gaussian_prior(n, args.nz, args.prior_sigma, dev),
                  z_eval=sample_gaussian_prior(N_EVAL_SAMPLES, args.nz, args.prior_sigma, dev),
                  width=torch.ones(n, 1, device=dev),
                  mask=make_masks(args.occlude, n, args.img_size, args.seed))
    state.good = keep_good_state(state)
    return state


def keep_good_state(state):
    """A copy of what a recovery restores."""
    return copy.deepcopy({'epoch': state.epoch, 'z': state.z, 'width': state.width, 'stats': state.stats,
                          **{k: getattr(state, k).state_dict() for k in MODULES}})


def restore_good_state(state):
    """Put the kept good state back (the run continues from its epoch) and forget what later epochs recorded."""
    good = copy.deepcopy(state.good)
    for k in MODULES:
        getattr(state, k).load_state_dict(good.pop(k))
    for k, v in good.items():
        setattr(state, k, v)
    for k in ('snapshots', 'traces', 'frames'):
        setattr(state, k, {e: v for e, v in getattr(state, k).items() if e <= state.epoch})


def guard(state, loss, psnr_db, chain_energy, chain, args, logger):
    """After an epoch: if it is sick (a non-finite loss or z, or a collapse: GUARD_PATIENCE epochs with a PSNR
    GUARD_DROP_DB below the run's best that also gave back most of the gain over epoch 1), restore the last good
    state, halve the lr (and the Langevin steps, if the chains made the fit worse), log one line and return True;
    else keep a good state now and then. Raises Diverged after GUARD_MAX_EVENTS recoveries.
    (A non-finite parameter shows up as a non-finite loss one epoch later.)"""
    state.first_db = psnr_db if state.first_db is None else state.first_db
    kept_gain = state.first_db + GUARD_KEPT_GAIN * (state.best_db - state.first_db)
    low = psnr_db < min(state.best_db - GUARD_DROP_DB, kept_gain)
    state.low_epochs = state.low_epochs + 1 if low else 0
    what = None
    if not math.isfinite(loss):
        what = 'the loss became non-finite'
    elif not torch.isfinite(state.z).all():
        what = 'the latent z became non-finite'
    elif state.low_epochs >= GUARD_PATIENCE:
        what = f"the reconstruction PSNR fell to {psnr_db:.1f} dB (best {state.best_db:.1f} dB)"
    if what is None:
        state.best_db = max(state.best_db, psnr_db)
        if (psnr_db >= state.best_db - GUARD_GOOD_DB and state.epoch - state.good['epoch'] >= GUARD_EVERY
                and all(torch.isfinite(p).all() for p in state.model.parameters())):
            state.good = keep_good_state(state)
        return False
    lr, epoch = state.optimizer.param_groups[0]['lr'], state.epoch
    if len(state.events) >= GUARD_MAX_EVENTS:
        step_flag = '--cold_langevin_step_size' if chain.mode == 'cold' else '--langevin_step_size'
        raise Diverged(f"{what} at epoch {epoch} after {len(state.events)} recoveries; lower {step_flag} "
                       f"(now {chain.step_size}) or --lr (now {args.lr}), or raise --mse_sigma")
    chains_worse = math.isfinite(loss) and chain_energy is not None and loss > 2 * chain_energy
    restore_good_state(state)
    state.low_epochs = 0
    for group in state.optimizer.param_groups:
        group['lr'] = lr / 2
    state.step_scale *= 0.5 if chains_worse else 1.0
    state.events.append({'epoch': epoch, 'what': what, 'back_to': state.epoch, 'lr': lr / 2,
                         'step_scale': state.step_scale})
    logger.warning(f"guard: {what} at epoch {epoch}; back to epoch {state.epoch} with lr {lr / 2:.2e}"
                   + (f" and Langevin steps x{state.step_scale:g}" if chains_worse else ''))
    return True


def abp_epoch(state, data, x_all, chain, args, trace=None):
    """One epoch of ABP, a mini-batch at a time: (1) Langevin on the batch's z (eq. 6), (2) one Adam step on
    theta given the detached z (eq. 7). x_all: every image in float when one batch holds them all, else None.
    Fills state.psnr, state.psnr_parts and state.recon; returns (mean loss, mean PSNR over the observed pixels)."""
    gen, losses, psnr_seen = state.model.Gnet, [], torch.empty(len(data))
    state.psnr = torch.empty(len(data)) if state.mask is not None else psnr_seen
    state.psnr_parts = None if state.mask is None else torch.empty(len(data), 2)
    keep = torch.tensor(shown_images(len(data)))
    state.recon = torch.empty(len(keep), *data.images.shape[1:])
    for idx in batches(len(data), args.batch_size, args.seed, state.epoch):
        x = x_all if idx is None else data.batch(idx)
        mask = None if state.mask is None else rows_of(state.mask, idx).to(device, torch.float32)
        # (1) inferential back-propagation: warm continues each chain, cold starts from the prior
        z = chain_start(chain, gen, rows_of(state.z, idx), x, mask, len(data))
        if chain.cap > 0 and state.epoch % CURVATURE_EVERY == 0:
            w = posterior_width(gen, z, chain.sigma, chain.prior_sigma, mask)
            state.width = w if idx is None else state.width.index_copy(0, idx.to(device), w)
        z = langevin(gen, z, x, chain, chain.step(rows_of(state.width, idx), state.step_scale), mask,
                     None if losses else trace)
        state.z = z if idx is None else state.z.index_copy(0, idx.to(device), z)
        if chain.standardize:                               # fix the gauge: every image's z at N(0, I)'s scale
            state.z = standardize_latents(gen, state.z)
        # (2) learning back-propagation on the detached z
        loss, x_hat = learn_step(state.model, state.optimizer, rows_of(state.z, idx), x, chain.sigma, mask)
        losses.append(loss.item())
        rows = torch.arange(len(data)) if idx is None else idx
        psnr_seen[rows] = psnr(x_hat, x, mask).cpu()
        if state.mask is not None:          # the true images' hidden pixels: measured here, never trained on
            state.psnr[rows] = psnr(x_hat, x).cpu()
            state.psnr_parts[rows] = torch.stack([psnr_seen[rows], psnr(x_hat, x, 1 - mask).cpu()], 1)
        hit = torch.isin(rows, keep)                        # the batch's images that figures show
        state.recon[torch.searchsorted(keep, rows[hit])] = x_hat[hit.to(device)].float().cpu()
    if len(losses) > 1:
        release_memory()                                    # a folder in many batches: see release_memory
    return sum(losses) / len(losses), psnr_seen.mean().item()


def train(state, data, chain, args, exp_dir, logger, hook=None):
    """Epochs state.epoch + 1 .. args.n_epochs of ABP, with the guard, logs, figures and checkpoints on their
    schedules. hook(state, loss, psnr_db), if given, is called after every epoch the guard kept: benchmarks
    watch the loop through it."""
    set_cuda()                                              # also for callers that never pass main or run
    t_begin, seconds_before = time.perf_counter(), state.seconds
    # figures and a checkpoint every n_plot epochs, at the middle and the end; GIF frames evenly in log(epoch)
    snap_at = {*range(args.n_plot, args.n_epochs + 1, args.n_plot), max(1, args.n_epochs // 2), args.n_epochs}
    frame_at = set(np.unique(np.geomspace(1, args.n_epochs, 16).round().astype(int)).tolist())
    x_all = data.batch(None) if len(data) <= args.batch_size else None    # one batch: convert once
    ckpt = Path(exp_dir) / 'checkpoint.pt'
    in_worker = multiprocessing.parent_process() is not None     # a parallel run: cold's bar on the second line
    bar = tqdm(desc=chain.mode, unit='ep', disable=None, initial=state.epoch, total=args.n_epochs,
               dynamic_ncols=True, position=int(in_worker and chain.mode == 'cold'))
    while state.epoch < args.n_epochs:
        trace = []
        loss, psnr_db = abp_epoch(state, data, x_all, chain, args, trace)        # eq. 6, then eq. 7
        state.scheduler.step()
        state.epoch += 1
        state.seconds = seconds_before + time.perf_counter() - t_begin
        if guard(state, loss, psnr_db, trace[0]['energy'] if trace else None, chain, args, logger):
            bar.n = state.epoch                                 # rewound to the last good state
            continue
        bar.update(1)
        log_progress(state, loss, psnr_db, chain.mode, args, exp_dir, logger, bar)
        if state.epoch in (1, args.n_epochs):
            state.traces[state.epoch] = trace                   # Langevin diagnostics, early and late
        if state.epoch in frame_at:
            state.frames[state.epoch] = to_uint8(state.recon[shown_images(len(state.recon))], small=True)
        if state.epoch in snap_at:
            save_snapshot(state, args, exp_dir)
            save_state(state, args, chain, ckpt)
        if hook:
            hook(state, loss, psnr_db)
        if StopFlag.requested:
            save_state(state, args, chain, ckpt)
            raise Interrupted(f"stopped at epoch {state.epoch} of {chain.mode}; checkpoint in {ckpt}; "
                              f"continue with --resume")
    bar.close()


def log_progress(state, loss, psnr_db, mode, args, exp_dir, logger, bar):
    """Loss-curve points, stat.png, the progress bar and log lines, on their schedules."""
    epoch, z = state.epoch, state.z
    if epoch % args.n_stats == 0 or epoch == args.n_epochs:
        for k, v in (('epoch', epoch), ('loss', loss), ('psnr_db', psnr_db)):
            state.stats[k].append(v)
    if epoch % args.n_log == 0 or epoch == args.n_epochs:      # plotting costs ~0.3 s: not every point
        plot_stats(exp_dir, {k: state.stats[k] for k in ('loss', 'psnr_db')}, state.stats['epoch'])
    if epoch % args.n_log == 0 or epoch == 1:
        bar.set_postfix(loss=f'{loss:.1f}', psnr=f'{psnr_db:.1f}dB')
        mean, std = (', '.join(f'{v:+.2f}' for v in t.tolist()) for t in (z.mean(0), z.std(0) if len(z) > 1 else z[:0, 0]))
        logger.info(f"{mode} epoch {epoch:5d} loss {loss:10.3f} psnr {psnr_db:6.2f} dB z mean ({mean}) std "
                    f"({std or '-'}) lr {state.optimizer.param_groups[0]['lr']:.2e}")


def save_snapshot(state, args, exp_dir):
    """The skeleton's three figures for this epoch: reconstructions, prior samples, interpolation."""
    epoch, shown = state.epoch, state.recon[shown_images(len(state.recon))]
    state.snapshots[epoch] = shown
    save_images(shown, Path(exp_dir) / f'{epoch:04d}_recon.png', nrow=len(shown))
    save_images(generate(state.model.Gnet, state.z_eval[:N_FIG_SAMPLES]), Path(exp_dir) / f'{epoch:04d}_sampled.png', 6)
    save_interp(state.model, args, interp_half_width(state.z), device, Path(exp_dir) / f'{epoch:04d}_interp.png')


def save_state(state, args, chain, path):
    """The one checkpoint: State (its modules as state_dicts), the flags, the chain and torch's RNG states
    (training draws from them alone); written atomically."""
    ck = {f.name: getattr(state, f.name) for f in dataclasses.fields(State) if f.name not in MODULES}
    ck.update({k: getattr(state, k).state_dict() for k in MODULES}, args=vars(args), chain=dataclasses.asdict(chain),
              rng=torch.get_rng_state(), cuda_rng=torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None)
    with atomic_path(path) as tmp:
        torch.save(ck, tmp)


RESUME_MUST_MATCH = ('nz', 'img_size', 'occlude', 'batch_size', 'seed')


def read_checkpoint(path):
    """A checkpoint's contents, every tensor on the CPU (wherever it was written); UserError if unreadable."""
    try:
        return torch.load(path, map_location='cpu', weights_only=False)
    except Exception as e:
        raise UserError(f"cannot read checkpoint {path} ({type(e).__name__}); delete it or run without --resume")


def load_state(state, path, args, chain):
    """Restore a checkpoint written by save_state into state, in place, on the device of state's model (a checkpoint
    moves between CPU and GPU), and torch's RNG states. Raises UserError if it is unreadable or was written by a run
    with another model, mode or images (when state.data_id is set). Returns a note on what it could not restore."""
    ck, dev = read_checkpoint(path), state.z.device
    old, old_mode = ck.get('args', {}), ck.get('chain', {}).get('mode')
    diff = [f"--{k} {old.get(k)}" for k in RESUME_MUST_MATCH if old.get(k) != getattr(args, k)]
    diff += [f"--start {old_mode}"] if old_mode != chain.mode else []
    if diff or 'z' not in ck or ck['z'].shape != state.z.shape:
        what = ', '.join(diff) if diff else 'an older abp.py' if 'z' not in ck else f"{ck['z'].shape[0]} images"
        raise UserError(f"checkpoint {path} was written with {what}; resume with the same flags and images, "
                        f"or run without --resume")
    if state.data_id and ck.get('data_id') != state.data_id:
        raise UserError(f"checkpoint {path} was written " + ('by an older abp.py' if 'data_id' not in ck else
                        f"for other images than those in {args.img_dir}") + "; resume with the run's own --img_dir, "
                        "or run without --resume")
    for f in dataclasses.fields(State):
        if f.name in MODULES:
            getattr(state, f.name).load_state_dict(ck[f.name])     # each module casts to its own device
        elif f.name in ck:                                          # (a field newer than the checkpoint: as new)
            setattr(state, f.name, ck[f.name])
    for k in ON_DEVICE:                                             # the kept good state holds z and width too
        if torch.is_tensor(getattr(state, k)):
            setattr(state, k, getattr(state, k).to(dev))
        if torch.is_tensor(state.good.get(k)):
            state.good[k] = state.good[k].to(dev)
    torch.set_rng_state(ck['rng'])
    if not torch.cuda.is_available():
        return 'the checkpoint\'s GPU random state is not restored (no GPU here)' if ck['cuda_rng'] else ''
    if ck['cuda_rng'] is None:
        return 'the checkpoint was written without a GPU: the GPU\'s random numbers start afresh'
    torch.cuda.set_rng_state_all(ck['cuda_rng'])
    return ''


class StopFlag:
    """Set by SIGINT/SIGTERM (request, the handler); the loop checks it between epochs: checkpoints stay whole."""
    requested = False

    @staticmethod
    def request(signum, frame):
        StopFlag.requested = True


# -----------------------------------------------------------------------------
# evaluation

def nearest_neighbours(samples, images):
    """For each sample, (PSNR to its nearest image, index of that image); images a tensor or Data (searched
    EVAL_CHUNK images at a time)."""
    s = to_unit(samples).flatten(1).double()
    best, where = torch.full((len(s),), math.inf, dtype=torch.float64, device=s.device), None
    for rows, x in (images.chunks() if isinstance(images, Data) else [(torch.arange(len(images)), images)]):
        b, i = (torch.cdist(s, to_unit(x).flatten(1).double()).pow(2) / s.shape[1]).min(1)
        where = rows.to(s.device)[i] if where is None else torch.where(b < best, rows.to(s.device)[i], where)
        best = torch.minimum(best, b)
    return 10 * torch.log10(1.0 / best.clamp_min(1e-10)).float(), where


def interp_half_width(z):
    """The interpolation square's half-width d per dimension: INTERP_MARGIN * max |z| over the images."""
    return INTERP_MARGIN * z.abs().amax(0).clamp_min(1e-3)


def pca_fit(x, k=2):
    """The linear factor model of images x (N, 3, H, W): (mean, top-k principal directions), in float64."""
    flat = x.flatten(1).double()
    mean = flat.mean(0, keepdim=True)
    vt = torch.linalg.svd(flat - mean, full_matrices=False)[2]
    return mean, vt[:min(k, vt.shape[0])]


def pca_recon(x, k=2, fit=None):
    """Reconstruct x from its mean and top-k principal components (of x, or the given fit)."""
    mean, vt = fit or pca_fit(x, k)
    return (mean + (x.flatten(1).double() - mean) @ vt.T @ vt).float().view_as(x)


def pca_of(data, k=2):
    """pca_fit of the images (at most PCA_FIT of them, evenly spread)."""
    return pca_fit(data.batch(None if len(data) <= PCA_FIT else torch.tensor(shown_images(len(data), PCA_FIT))).cpu(), k)


def occlusion_metrics(kind, state):
    """With --occlude: the share of hidden pixels, and the last epoch's PSNR of g(z) to the true images on the
    observed and on the hidden pixels (state.psnr_parts; the baselines live in bench/occlusion.py)."""
    observed, hidden = state.psnr_parts.mean(0).tolist()
    return {'kind': kind, 'hidden_fraction': round(1 - state.mask.count_nonzero().item() / state.mask.numel(), 4),
            'abp_observed_psnr_db': round(observed, 3), 'abp_hidden_psnr_db': round(hidden, 3)}


def evaluate(state, data):
    """Metrics of one mode: reconstruction PSNR, prior-sample quality and coverage, latent statistics."""
    nn_psnr, nn_idx = nearest_neighbours(generate(state.model.Gnet, state.z_eval), data)
    z = state.z
    return {'recon_psnr_db': round(state.psnr.mean().item(), 3),
            'recon_psnr_db_per_image': [round(v, 3) for v in state.psnr.tolist()],
            'sample_nn_psnr_db_median': round(nn_psnr.median().item(), 3),
            'sample_coverage': int(nn_idx.unique().numel()),
            'z_mean': [round(v, 4) for v in z.mean(0).tolist()],
            'z_std': [round(v, 4) for v in z.std(0).tolist()] if len(z) > 1 else [0.0] * z.shape[1]}


# -----------------------------------------------------------------------------
# figures

def save_images(img, path, nrow):
    """Save img (N, 3, H, W) in [-1, 1] as a grid with nrow images per row to path; returns None."""
    from torchvision.utils import save_image
    with atomic_path(path) as tmp:
        save_image(to_unit(img.detach().float().cpu()), tmp, nrow=nrow, padding=2, pad_value=1.0)


def interp_grid(nz, ninterp, d, dev):
    """ninterp^2 latents: dims 0 and 1 span [-d[i], d[i]] (row: dim 0, column: dim 1), others 0."""
    d = torch.as_tensor(d, dtype=torch.float32, device=dev).flatten()
    axes = [torch.linspace(-float(d[i]), float(d[i]), ninterp, device=dev) for i in range(min(2, nz))]
    rows, cols = torch.meshgrid(axes[0], axes[-1] if nz > 1 else torch.zeros(ninterp, device=dev), indexing='ij')
    z = torch.zeros(ninterp * ninterp, nz, device=dev)
    z[:, :2] = torch.stack([rows.flatten(), cols.flatten()], 1)[:, :nz]
    return z


def save_interp(model, args, z_std, device, path):
    """Save an args.ninterp x args.ninterp panel, dim i spanning [-z_std[i], z_std[i]], to path; returns None.
    (z_std is the course's name: it holds the half-widths d of the square, interp_half_width(z) here.)"""
    gen = model.Gnet if hasattr(model, 'Gnet') else model
    save_images(generate(gen, interp_grid(args.nz, args.ninterp, z_std, device)), path, nrow=args.ninterp)


def save_fig(fig, path, dpi=120):
    """Save a matplotlib figure atomically, as its path's suffix says: figures of photographs as a 4:4:4 JPEG
    (PHOTO_JPEG: about 37 dB from the lossless render, above the 31 dB of what they show, a third of a PNG's
    size), the rest as PNG."""
    with atomic_path(path) as tmp:
        if Path(path).suffix.lower() not in ('.jpg', '.jpeg'):
            return fig.savefig(tmp, dpi=dpi, bbox_inches='tight')
        buf = io.BytesIO()
        fig.savefig(buf, format='png', dpi=dpi, bbox_inches='tight')
        Image.open(buf).convert('RGB').save(tmp, format='JPEG', **PHOTO_JPEG)


def plot_stats(exp_dir, stats, interval):
    """One panel per key of stats (name -> values) against interval; writes stat.png and stat.pdf; returns None."""
    fig = Figure(figsize=(6, 2.6 * len(stats)))
    for ax, (k, v) in zip(fig.subplots(len(stats), 1, squeeze=False)[:, 0], stats.items()):
        ax.plot(list(interval)[:len(v)], v)
        ax.set(title=k, xlabel='epoch', yscale='log' if k == 'loss' and min(v, default=0) > 0 else 'linear')
        ax.grid(alpha=0.3)
    fig.tight_layout()
    for ext in ('png', 'pdf'):
        with atomic_path(Path(exp_dir) / f'stat.{ext}') as tmp:
            fig.savefig(tmp, dpi=120)


def grid_image(img, nrow, pad_value=1.0):
    """(N, 3, H, W) in [-1, 1] -> numpy H' x W' x 3 grid of nrow images per row in [0, 1], 2-px padding."""
    from torchvision.utils import make_grid
    return make_grid(to_unit(img.float().cpu()), nrow=nrow, padding=2, pad_value=pad_value).permute(1, 2, 0).numpy()


def plot_recon_comparison(rows, path, title=''):
    """rows: list of (label, images (N, 3, H, W)); one labelled strip per row."""
    n = rows[0][1].shape[0]
    fig = Figure(figsize=(1.0 * max(n, 4), 1.15 * len(rows)))
    for ax, (label, img) in zip(fig.subplots(len(rows), 1, squeeze=False)[:, 0], rows):
        ax.imshow(grid_image(img, n))
        ax.set_ylabel(label, rotation=0, ha='right', va='center', fontsize=12)   # >= 7 pt at text width
        ax.set(xticks=[], yticks=[])
    fig.axes[0].set_title(title, fontsize=12)
    fig.subplots_adjust(hspace=0.05)
    save_fig(fig, path)


def image_groups(names):
    """A label per file, its name's leading letters (lion_3.jpg -> lion), when that groups the images
    meaningfully: 2 to 10 groups of 2 or more. Otherwise every image is in one group, 'images'."""
    prefix = [(re.match(r'[^\W\d_]+', Path(n).stem) or [''])[0].lower() for n in names]
    sizes = {p: prefix.count(p) for p in prefix}
    ok = 2 <= len(sizes) <= 10 and '' not in sizes and min(sizes.values()) >= 2
    return prefix if ok else ['images'] * len(names)


def first_two_dims(v):
    """(N, nz) or (nz,) -> (N, 2) on the CPU: the plane the maps show; a 1-D latent sits on the z[0] axis."""
    v = v.detach().cpu().float().reshape(-1, v.shape[-1])
    return torch.cat([v, torch.zeros(len(v), 2)], 1)[:, :2]


def blacken_hidden(x, mask):
    """The occluded input as a person sees it: hidden pixels black."""
    return torch.where(mask > 0, x, torch.full((), -1.0, dtype=x.dtype, device=x.device))


def walk_path(codes, frames):
    """A closed, smooth path through every code (K, nz): the codes in order of their angle around their mean
    (first two dimensions), joined by a Catmull-Rom spline; `frames` points at equal arc length, (frames, nz)."""
    c = codes.detach().cpu().double()
    if len(c) < 2:
        return c.repeat(frames, 1).float()
    d = c[:, :2] - c[:, :2].mean(0)
    c = c[torch.atan2(d[:, 1], d[:, 0]).argsort() if c.shape[1] > 1 else c[:, 0].argsort()]
    p = torch.cat([c[-1:], c, c[:2]])                     # closed: wrap around
    t = torch.linspace(0, 1, 33, dtype=c.dtype)[:-1, None]
    segments = []
    for p0, p1, p2, p3 in zip(p, p[1:], p[2:], p[3:]):    # Catmull-Rom from p1 to p2
        a, b, c2, d3 = 2 * p1, p2 - p0, 2 * p0 - 5 * p1 + 4 * p2 - p3, 3 * p1 - p0 - 3 * p2 + p3
        segments.append(0.5 * (a + b * t + c2 * t ** 2 + d3 * t ** 3))
    dense = torch.cat(segments)
    arc = torch.cat([torch.zeros(1, dtype=c.dtype), dense.diff(dim=0).norm(dim=1).cumsum(0)])   # length so far
    at = torch.linspace(0, float(arc[-1]), frames + 1, dtype=c.dtype)[:-1]
    return dense[torch.searchsorted(arc, at).clamp(max=len(dense) - 1)].float()


def minimap(codes, point, d, size):
    """A size x size picture of the latent square (-d, d)^2, oriented as the interpolation panel (z[1] to the right,
    z[0] downwards): the codes as dots, the current point in red."""
    img = Image.new('RGB', (size, size), (245, 245, 245))
    draw = ImageDraw.Draw(img)
    rc = (first_two_dims(torch.cat([codes.reshape(-1, codes.shape[-1]), point.reshape(1, -1)]))
          / first_two_dims(d)[0].clamp_min(1e-3) + 1) / 2                      # (row, column) in [0, 1]
    xy = rc.flip(1).clamp(0, 1) * (size - 1)                                  # (x, y) = (column, row) in pixels
    draw.rectangle([0, 0, size - 1, size - 1], outline=(0, 0, 0))
    for (x, y), r, colour in [(v, 2, (60, 60, 60)) for v in xy[:-1].tolist()] + [(xy[-1].tolist(), 4, (220, 30, 30))]:
        draw.ellipse([x - r, y - r, x + r, y + r], fill=colour)
    return img


def save_gif(frames, path, ms_per_frame):
    """PIL images -> an endlessly looping GIF at path, atomically."""
    with atomic_path(path) as tmp:
        frames[0].save(tmp, format='GIF', save_all=True, append_images=frames[1:], duration=ms_per_frame, loop=0,
                       optimize=True)


def recon_rows(results, data, args):
    """[(label, images)]: training images, PCA and each mode's reconstructions at the middle and final epochs."""
    x = to_float(data.images[shown_images(len(data))]).cpu()
    rows = [('training', x), ('PCA, k=2', pca_recon(x, fit=pca_of(data)))]
    return rows + [(f'{m} @ {e}', r['state'].snapshots[e]) for m, r in results.items()
                   for e in (max(1, args.n_epochs // 2), args.n_epochs) if e in r['state'].snapshots]


def figure_recon(results, data, args, path):
    """recon_rows as one figure (N_SHOWN images at most)."""
    n = len(shown_images(len(data)))
    plot_recon_comparison(recon_rows(results, data, args), path, f'{n} of {len(data)} images' if n < len(data) else '')


def figure_samples(results, data, args, path):
    """Each mode's g(z) for N_FIG_SAMPLES prior draws, side by side."""
    fig = Figure(figsize=(6 * len(results), 6.3))
    for ax, (m, r) in zip(fig.subplots(1, len(results), squeeze=False)[0], results.items()):
        ax.imshow(grid_image(generate(r['state'].model.Gnet, r['state'].z_eval[:N_FIG_SAMPLES]), 6))
        ax.set_title(f'{m} start: g(z), z ~ N(0, I)', fontsize=14)             # >= 7 pt at text width
        ax.axis('off')
    fig.suptitle('random samples from the prior', fontsize=15)
    fig.tight_layout(rect=(0, 0, 1, 0.95))                  # the title above the panels' own
    save_fig(fig, path)


def figure_loss(results, data, args, path):
    """Each mode's loss curve, log scale, guard recoveries as crosses."""
    fig = Figure(figsize=(4.6, 2.8))          # drawn at the size it prints in the report
    ax = fig.subplots()
    for m, r in results.items():
        stats, hits = r['state'].stats, [e['epoch'] for e in r['state'].events]
        line, = ax.plot(stats['epoch'], stats['loss'], label=m, color=MODE_COLOURS[m])
        if hits and stats['loss']:
            ax.plot(hits, [max(stats['loss'])] * len(hits), 'x', color=line.get_color(), label=f'{m}: guard recovery')
    ax.set(yscale='log', xlabel='epoch', ylabel=r'mean $\|I - g(z)\|^2 / (2\sigma^2)$')
    ax.yaxis.set_major_locator(LogLocator(subs=(1, 2, 5)))       # 10, 20, 50, 100, ...: readable without powers
    ax.yaxis.set_major_formatter(ScalarFormatter())
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    save_fig(fig, path, dpi=240)


def figure_occlusion(results, data, args, path):
    """The true images, the occluded input and each mode's recovery g(z) (N_SHOWN at most)."""
    keep = shown_images(len(data))
    x, mask = data.batch(torch.tensor(keep)).cpu(), next(iter(results.values()))['state'].mask[keep].float()
    rows = [('true', x), (f'input: {args.occlude}', blacken_hidden(x, mask))]
    rows += [(f'{m} recovery', r['state'].recon) for m, r in results.items()]
    plot_recon_comparison(rows, path, 'learning from incomplete images: hidden pixels black in the input')


def figure_interp(mode, state, data, args, out_dir):
    """interp_<mode>.jpg: the ninterp x ninterp panel over (-d, d)^2, its z values on the axes: rows are z[0] from
    -d[0] (top) to d[0], columns z[1] from -d[1] (left) to d[1], as figure_latent_map draws the plane."""
    d, n = interp_half_width(state.z), args.ninterp
    img = generate(state.model.Gnet, interp_grid(args.nz, n, d, d.device))
    dd, size = first_two_dims(d)[0], img.shape[-1] + 2           # a tile and its padding, in pixels
    fig = Figure(figsize=(3.4, 3.6))         # drawn at half the report's text width, where it prints
    ax = fig.subplots()
    ax.imshow(grid_image(img, n))
    centres = [2 + size * k + (size - 2) / 2 for k in range(n)]
    for set_ticks, i in ((ax.set_xticks, 1), (ax.set_yticks, 0)):
        set_ticks(centres, [f'{v:.2f}' for v in torch.linspace(-float(dd[i]), float(dd[i]), n).tolist()], fontsize=7.5)
    ax.tick_params(axis='x', labelrotation=90)
    ax.tick_params(length=2, pad=1)
    ax.set_xlabel('z[1] (columns)', fontsize=8)
    ax.set_ylabel('z[0] (rows)', fontsize=8)
    ax.set_title(f'{mode} start, d = ({", ".join(f"{v:.2f}" for v in d.tolist())})', fontsize=8)
    save_fig(fig, out_dir / f'interp_{mode}.jpg', dpi=240)


def figure_latent_map(mode, state, data, args, out_dir):
    """latent_map_<mode>.png: the images' inferred z (N_MAPPED at most) on the plane as thumbnails framed by group
    (image_groups), prior 1- and 2-sigma circles and the interpolation square (-d, d)^2, oriented as the panel:
    z[1] to the right, z[0] downwards."""
    keep = shown_images(len(data), N_MAPPED)
    z, d = first_two_dims(state.z[keep]), first_two_dims(interp_half_width(state.z))[0].clamp_min(1e-3)
    groups = image_groups([data.names[i] for i in keep])
    colours = dict(zip(sorted(set(groups)), matplotlib.colormaps['tab10'].colors))
    fig = Figure(figsize=(4.6, 5.2))
    ax = fig.subplots()
    for r, ls in ((1, '-'), (2, '--')):
        ax.add_patch(Circle((0, 0), r, fill=False, ls=ls, color='grey', label=f'prior {r} sigma'))
    ax.add_patch(Rectangle((-d[1], -d[0]), 2 * d[1], 2 * d[0], fill=False, color='black', lw=1.5,
                           label='interpolation square'))
    thumbs = to_unit(to_float(data.images[keep])).cpu().permute(0, 2, 3, 1).numpy()
    zoom = 22 / thumbs.shape[1] * min(1.0, (40 / len(thumbs)) ** 0.5)   # smaller thumbnails for many images
    for zi, im, g in zip(z, thumbs, groups):
        ax.add_artist(AnnotationBbox(OffsetImage(im, zoom=zoom), (zi[1].item(), zi[0].item()),
                                     bboxprops=dict(edgecolor=colours[g], lw=2), pad=0.1))
    for g, c in colours.items():
        ax.plot([], [], 's', color=c, label=g)
    lim = max(2.3, float(d.max()) * 1.15, float(z.abs().max()) * 1.2)
    ax.set(xlim=(-lim, lim), ylim=(lim, -lim), aspect='equal')  # z[0] grows downwards, as the panel's rows
    ax.set_xlabel('z[1] (interpolation columns)', fontsize=10)   # >= 7 pt at half the text width
    ax.set_ylabel('z[0] (interpolation rows)', fontsize=10)
    ax.tick_params(labelsize=10)
    ax.set_title(f'{mode} start: inferred z of the training images'
                 + (f' ({len(keep)} of {len(data)})' if len(keep) < len(data) else ''), fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(loc='upper center', bbox_to_anchor=(0.5, -0.13), ncol=2, fontsize=10, frameon=False)
    save_fig(fig, out_dir / f'latent_map_{mode}.png')


def figure_training_gif(mode, state, data, args, out_dir):
    """training_<mode>.gif: the reconstructions as training went on, one frame per kept epoch."""
    from torchvision.utils import make_grid
    out = []
    for epoch, img in sorted(state.frames.items()):
        grid = make_grid(img, nrow=min(len(img), 6), padding=2, pad_value=255).permute(1, 2, 0).numpy()
        frame = Image.new('RGB', (grid.shape[1], grid.shape[0] + 16), (255, 255, 255))
        frame.paste(Image.fromarray(grid), (0, 16))
        ImageDraw.Draw(frame).text((4, 2), f'{mode} start, epoch {epoch}', fill=(0, 0, 0))
        out.append(frame)
    save_gif(out, out_dir / f'training_{mode}.gif', 400)


def figure_latent_walk(mode, state, data, args, out_dir):
    """latent_walk_<mode>.gif: g(z) along walk_path through (at most 24 of) the codes, beside a map of where z is."""
    codes, d = state.z[shown_images(len(state.z), 24)], interp_half_width(state.z)
    path_z = walk_path(codes, 48).to(codes.device)
    frames = []
    for im, z in zip(to_uint8(generate(state.model.Gnet, path_z)).permute(0, 2, 3, 1).numpy(), path_z):
        frame = Image.new('RGB', (2 * im.shape[1], im.shape[0]), (255, 255, 255))
        frame.paste(Image.fromarray(im), (0, 0))
        frame.paste(minimap(codes, z, d, im.shape[0]), (im.shape[1], 0))
        frames.append(frame)
    save_gif(frames, out_dir / f'latent_walk_{mode}.gif', 100)


def draw_figures(results, data, args, out_dir):
    """Every figure of a run into out_dir: the modes side by side, then each mode's own. A figure that fails is
    reported in one line and skipped: the modes' results, already written, are never lost to it."""
    out_dir = Path(out_dir)
    draws = [('compare_recon.jpg', figure_recon, (results, data, args, out_dir / 'compare_recon.jpg')),
             ('compare_samples.jpg', figure_samples, (results, data, args, out_dir / 'compare_samples.jpg')),
             ('compare_loss.png', figure_loss, (results, data, args, out_dir / 'compare_loss.png'))]
    if args.occlude != 'none':
        draws.append(('occlusion.jpg', figure_occlusion, (results, data, args, out_dir / 'occlusion.jpg')))
    for mode, r in results.items():
        for figure in (figure_interp, figure_latent_map, figure_training_gif, figure_latent_walk):
            name = f'{figure.__name__[len("figure_"):]} ({mode})'
            draws.append((name, figure, (mode, r['state'], data, args, out_dir)))
    for name, draw, inputs in draws:
        try:
            draw(*inputs)
        except Exception as e:       # a figure is never worth the run: say so and go on
            print(f"warning: could not draw {name} ({type(e).__name__}: {e})", file=sys.stderr)


def summary(results, data):
    """The run's metrics: each mode's, PCA(2)'s reconstruction PSNR (the linear baseline with as many factors as
    z), the number of images, of prior samples behind the sample metrics and of the generator's parameters, and
    the guard's rule (a run it acted on depends on it)."""
    fit = pca_of(data)
    pca_db = torch.cat([psnr(pca_recon(x.cpu(), fit=fit), x.cpu()) for _, x in data.chunks()]).mean().item()
    model = next(iter(results.values()))['state'].model
    return {**{m: r['metrics'] for m, r in results.items()}, 'pca': {'recon_psnr_db': round(pca_db, 3)},
            'n_images': len(data), 'n_eval_samples': N_EVAL_SAMPLES,
            'n_params': sum(p.numel() for p in model.parameters()), 'guard_rule': GUARD_RULE}


# -----------------------------------------------------------------------------
# main

def run(args, exp_dir, logger, chain=None, data=None):
    """Train one start mode (chain, by default chain_for(args, args.start)) and write its figures and metrics.json
    into exp_dir; data is load_data(args) if not given. Returns {'metrics', 'state'}. With --start both (and no
    chain), trains both modes as `python abp.py` does, into exp_dir, and returns run_modes' summary."""
    args = with_defaults(args)
    set_cuda()
    if chain is None and args.start == 'both':      # the skeleton's run(args, exp_dir, logger) on our default
        logger.info(f"both start modes: each logs into {Path(exp_dir) / '<mode>'}/output.log, figures in {exp_dir}")
        return run_modes(args, exp_dir, data)
    chain, exp_dir = chain or chain_for(args, args.start), Path(exp_dir)
    exp_dir.mkdir(parents=True, exist_ok=True)
    data = data or load_data(args, logger)
    logger.info(f"{chain.mode} start: {len(data)} images from {args.img_dir}, device {device}"
                + (f", mini-batches of {args.batch_size}" if len(data) > args.batch_size else '')
                + ('' if args.occlude == 'none' else f", occluded: {args.occlude}"))
    state, ckpt = new_state(args, len(data)), exp_dir / 'checkpoint.pt'
    state.data_id = data.fingerprint()
    if state.mask is not None:                      # what training sees: hidden pixels black
        shown = shown_images(len(data))
        save_images(blacken_hidden(to_float(data.images[shown]), state.mask[shown].to(device)),
                    exp_dir / 'occluded_input.png', nrow=len(shown))
    if args.resume and ckpt.exists():
        note = load_state(state, ckpt, args, chain)
        logger.info(f"resumed from {ckpt} at epoch {state.epoch}" + (f"; {note}" if note else ''))
    try:
        train(state, data, chain, args, exp_dir, logger)
    except Diverged:                                # the kept good state becomes the checkpoint, if newer
        if not ckpt.exists() or read_checkpoint(ckpt)['epoch'] < state.good['epoch']:
            restore_good_state(state)
            save_state(state, args, chain, ckpt)
        raise
    metrics = evaluate(state, data)
    if state.mask is not None:
        metrics['occlusion'] = occlusion_metrics(args.occlude, state)
    metrics.update(epochs=args.n_epochs, seconds=round(state.seconds, 2),
                   seconds_per_epoch=round(state.seconds / args.n_epochs, 4),
                   interp_d=[round(v, 4) for v in interp_half_width(state.z).tolist()],
                   langevin_steps=chain.steps, langevin_step_size=chain.step_size, beta1=args.beta1,
                   first_layer_norm=round(state.model.Gnet.fc.weight.norm().item(), 3),   # grows if chains overshoot
                   cold_init=chain.init if chain.mode == 'cold' else None, guard_events=state.events,
                   images=data.names)
    write_json(metrics, exp_dir / 'metrics.json')
    write_json({str(k): v for k, v in state.traces.items()}, exp_dir / 'langevin_trace.json')
    logger.info(f"{chain.mode} done in {state.seconds:.1f} s: recon {metrics['recon_psnr_db']:.2f} dB, samples NN "
                f"{metrics['sample_nn_psnr_db_median']:.2f} dB, coverage {metrics['sample_coverage']}/{len(data)}"
                + (f", {len(state.events)} guard recoveries" if state.events else ''))
    return {'metrics': metrics, 'state': state}


def use_parallel(n_modes):
    """Train the two modes at once, in two processes? With no GPU, two or more threads, and only when this file is
    the program (`python abp.py`): a spawned process re-imports the program's main script, so a caller's script
    without an `if __name__ == '__main__'` guard (an autograder's, say) must not be spawned."""
    main_file = getattr(sys.modules.get('__main__'), '__file__', None)
    return (n_modes == 2 and device == 'cpu' and torch.get_num_threads() >= 2 and main_file is not None
            and Path(main_file).resolve() == Path(__file__).resolve())


def run_worker(args, chain, data, threads, conn):
    """One mode of a parallel run, in its own process: run(...) with `threads` torch threads throughout (a thread
    count changes the order of floating-point sums, so a run that took more threads midway, when the other mode
    finished, would depend on timing), stopping at the next epoch on Ctrl-C or SIGTERM. Sends ('ok', '') or
    (the exception's class name, its message) through conn; the result stays on disk."""
    torch.set_num_threads(threads)
    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, StopFlag.request)
    exp_dir = Path(args.out_dir) / chain.mode
    try:
        run(args, exp_dir, get_logger(exp_dir, fresh=not args.resume), chain, data)
        conn.send(('ok', ''))
    except (UserError, Diverged, Interrupted) as e:
        conn.send((type(e).__name__, str(e)))
    except Exception:           # a bug: its traceback, as text, for the parent to show
        conn.send(('RuntimeError', f"the {chain.mode} process failed:\n{traceback.format_exc()}"))


def run_parallel(args, chains, data):
    """{mode: run's result} for both chains, trained at the same time in spawned processes with half the threads
    each, read back from their checkpoints. A stop request (Ctrl-C reaches every process; SIGTERM to this one is
    passed on) checkpoints both. Raises the first mode's error after both have ended."""
    ctx, threads, procs, replies = multiprocessing.get_context('spawn'), max(1, torch.get_num_threads() // 2), {}, {}
    for chain in chains:
        recv, send = ctx.Pipe(duplex=False)
        procs[chain.mode] = (ctx.Process(target=run_worker, args=(args, chain, data, threads, send), daemon=True), recv)
        procs[chain.mode][0].start()
        send.close()
    while len(replies) < len(procs):
        for mode, (proc, conn) in procs.items():
            if StopFlag.requested and proc.is_alive():      # SIGTERM to this process only: pass it on
                os.kill(proc.pid, signal.SIGTERM)
            if mode not in replies and conn.poll(0.25):
                try:
                    replies[mode] = conn.recv()
                except EOFError:       # the process died without a word (killed, out of memory)
                    replies[mode] = ('UserError', f"the {mode} process ended unexpectedly; continue with --resume")
    for proc, _ in procs.values():
        proc.join()
    errors = {e.__name__: e for e in (UserError, Diverged, Interrupted, RuntimeError)}
    failed = [replies[c.mode] for c in chains if replies[c.mode][0] in errors]
    if failed:          # the first mode's kind of error, with every mode's message of that kind
        raise errors[failed[0][0]]('; '.join(msg for kind, msg in failed if kind == failed[0][0]))
    results, data_id = {}, data.fingerprint()
    for chain in chains:
        exp_dir, state = Path(args.out_dir) / chain.mode, new_state(args, len(data))
        state.data_id = data_id
        load_state(state, exp_dir / 'checkpoint.pt', args, chain)
        results[chain.mode] = {'metrics': json.loads((exp_dir / 'metrics.json').read_text()), 'state': state}
    return results


def run_modes(args, out_dir, data=None, t0=None):
    """args.start's modes ('both': warm and cold, in parallel where use_parallel says) into out_dir/<mode>/, then
    the figures that compare them and the summary: out_dir/metrics.json for both, out_dir/<mode>/summary.json for
    one (it never overwrites what a run of both left). Returns the summary."""
    t0 = time.perf_counter() if t0 is None else t0
    out_dir = Path(out_dir)
    args = argparse.Namespace(**{**vars(args), 'out_dir': str(out_dir)})     # where the workers write, too
    chains = [chain_for(args, m) for m in (['warm', 'cold'] if args.start == 'both' else [args.start])]
    parallel = use_parallel(len(chains))
    data = data or load_data(args)                      # once for every mode; a bad folder fails here
    out_dir.mkdir(parents=True, exist_ok=True)
    results = run_parallel(args, chains, data) if parallel else \
        {c.mode: run(args, out_dir / c.mode, get_logger(out_dir / c.mode, fresh=not args.resume), c, data)
         for c in chains}
    path = out_dir / ('metrics.json' if args.start == 'both' else f'{args.start}/summary.json')
    draw_figures(results, data, args, path.parent)
    metrics = summary(results, data)
    metrics.update(total_seconds=round(time.perf_counter() - t0, 2), device=device, parallel=parallel,
                   torch=torch.__version__, args=vars(args))
    write_json(metrics, path)
    print(f"done in {time.perf_counter() - t0:.0f} s; figures and metrics in {path.parent}/")
    return metrics


def main(argv=None):
    """Parse flags, train the requested start mode(s), write figures and metrics; returns None."""
    args, t0 = parse_args(argv), time.perf_counter()
    set_cuda()
    old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        for s in old:
            signal.signal(s, StopFlag.request)
        run_modes(args, args.out_dir, t0=t0)
    except UserError as e:
        sys.exit(f"abp.py: error: {e}")
    except Diverged as e:
        sys.exit(f"abp.py: diverged: {e}; the last good checkpoint is kept")
    except Interrupted as e:
        print(f"abp.py: {e}", file=sys.stderr)
        sys.exit(130)
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        StopFlag.requested = False


if __name__ == '__main__':
    main()
