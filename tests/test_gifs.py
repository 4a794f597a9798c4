"""The GIFs' geometry: the latent walk's path through the codes and the minimap beside it."""
import math

import pytest
import torch

import abp

RED = (220, 30, 30)


def ring(k, nz, radius=2.0, seed=0):
    """k codes around a circle in dims 0 and 1 at uneven angles (so the spline's segments differ in length),
    shuffled (walk_path orders them), random in the other dims."""
    gaps = torch.tensor([1.0, 2.0, 3.0, 1.5, 2.5, 1.2, 2.2], dtype=torch.float64)[:k]
    order = torch.randperm(k, generator=torch.Generator().manual_seed(seed))
    angle = (gaps.cumsum(0) / gaps.sum() * 2 * math.pi)[order]
    codes = torch.randn(k, nz, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    codes[:, 0], codes[:, 1] = radius * angle.cos() + 0.3, radius * angle.sin() - 0.1
    return codes.float()


def frame_steps(path):
    """Distances between consecutive frames, the last to the first included (the walk loops)."""
    return (path.roll(-1, 0) - path).norm(dim=1)


@pytest.mark.parametrize('k,nz', [(5, 2), (7, 3), (3, 2)])
def test_walk_path_visits_every_code(k, nz):
    """(frames, nz), float32, and every code is passed within ~one frame spacing, a small fraction of the
    distance between codes (a Catmull-Rom spline goes through its control points: a wrong coefficient,
    or a code left out of the loop, misses some by far)."""
    codes, frames = ring(k, nz), 64 * k
    path = abp.walk_path(codes, frames)
    assert path.shape == (frames, nz) and path.dtype == torch.float32
    spacing = frame_steps(path).sum() / frames                  # ~ the path's length / frames
    nearest = torch.cdist(codes, path).min(1).values
    assert torch.all(nearest <= 1.5 * spacing), (nearest, spacing)
    assert torch.all(nearest < 0.05 * torch.pdist(codes).min()), nearest


@pytest.mark.parametrize('k,nz', [(5, 2), (7, 3), (3, 2)])
def test_walk_path_is_a_closed_loop_at_even_speed(k, nz):
    """The frames lie at about equal arc length (within ~12% here, from the spline's sampling; equal steps
    of the spline's parameter would give 0.5x to 1.8x on these uneven segments), and the last one leads
    back to the first as any other step does: the GIF loops without a jump."""
    steps = frame_steps(abp.walk_path(ring(k, nz), 4 * k))
    assert torch.all(steps > 0.75 * steps.mean()) and torch.all(steps < 1.33 * steps.mean()), steps / steps.mean()


def test_walk_path_of_a_one_dimensional_latent_sweeps_its_codes():
    """nz = 1: the path runs along the line through every code and stays near their range."""
    codes = torch.tensor([[0.5], [-1.0], [2.0]])
    path = abp.walk_path(codes, 60)
    assert path.shape == (60, 1)
    assert torch.cdist(codes, path).min(1).values.max() < 0.2
    assert path.min() >= -1.0 - 0.5 and path.max() <= 2.0 + 0.5


def test_walk_path_of_one_code_stays_there():
    """A single code (a folder of one image): every frame is that code."""
    path = abp.walk_path(torch.tensor([[0.3, -0.7]]), 10)
    assert path.shape == (10, 2) and torch.allclose(path.double(), torch.tensor([[0.3, -0.7]]).double().expand(10, 2))


def test_walk_path_of_one_code_can_be_generated():
    """The path of a single code goes through the generator like any other (a float64 path would not)."""
    img = abp.generate(abp.GenNet(nz=2, img_size=8), abp.walk_path(torch.tensor([[0.3, -0.7]]), 10))
    assert img.shape == (10, 3, 8, 8)


def red_pixels(img):
    """(x, y) of every pixel of the red marker's colour."""
    w, h = img.size
    px = img.load()
    return [(x, y) for x in range(w) for y in range(h) if px[x, y] == RED]


@pytest.mark.parametrize('point,where', [((0.0, 0.0), (20, 20)),        # centre of the square
                                         ((2.0, 0.0), (20, 40)),        # +d in dim 0: bottom edge
                                         ((0.0, 0.5), (40, 20)),        # +d in dim 1: right edge
                                         ((-2.0, -0.5), (0, 0)),        # -d, -d: top-left corner
                                         ((1.0, -0.25), (10, 30)),      # half-way to +d0, -d1
                                         ((5.0, -2.0), (0, 40))])       # outside: pinned to the edge
def test_minimap_puts_the_red_point_where_it_is_in_the_square(point, where):
    """minimap(codes, point, d, size): a size x size picture of (-d, d)^2 oriented as the interpolation panel,
    dim 1 to the right and dim 0 downwards, each dimension scaled by its own d; the red marker is centred on the
    point (kept in the picture when the point lies outside the square)."""
    d = torch.tensor([2.0, 0.5])
    codes = torch.tensor([[-1.0, 0.4], [1.5, 0.1]])
    img = abp.minimap(codes, torch.tensor(point), d, 41)
    assert img.size == (41, 41) and img.mode == 'RGB'
    red = red_pixels(img)
    assert where in red, (where, red)
    cx, cy = (sum(p[i] for p in red) / len(red) for i in (0, 1))
    assert abs(cx - where[0]) <= 2.5 and abs(cy - where[1]) <= 2.5, (cx, cy, where)   # clipped at the edges


@pytest.mark.parametrize('row,col', [(0, 0), (0, 4), (4, 0), (1, 3), (2, 2)])
def test_minimap_is_oriented_as_the_interpolation_panel(row, col):
    """The code of the panel's tile (row, col) (interp_grid, as save_interp lays it out) is drawn at the same
    place of the minimap: column col from the left, row row from the top."""
    n, size, d = 5, 41, torch.tensor([2.0, 0.5])
    point = abp.interp_grid(2, n, d, 'cpu')[row * n + col]
    red = red_pixels(abp.minimap(torch.zeros(0, 2), point, d, size))
    cx, cy = (sum(p[i] for p in red) / len(red) for i in (0, 1))
    want = (col / (n - 1) * (size - 1), row / (n - 1) * (size - 1))
    assert abs(cx - want[0]) <= 2.5 and abs(cy - want[1]) <= 2.5, (cx, cy, want)


def test_minimap_draws_the_codes_in_grey():
    """Each code is a grey dot at its place: (-1, 0.4) and (1.5, 0.1) in (-2, 2) x (-0.5, 0.5), rows z[0]."""
    img = abp.minimap(torch.tensor([[-1.0, 0.4], [1.5, 0.1]]), torch.tensor([0.0, -0.45]), torch.tensor([2.0, 0.5]), 41)
    assert img.getpixel((36, 10)) == (60, 60, 60) and img.getpixel((24, 35)) == (60, 60, 60)
    assert img.getpixel((20, 20)) == (245, 245, 245)            # the background elsewhere
